"""Notifications out: the events the database's triggers write, the deliveries made of
them, and the retry queue's claims. Each runs on the connection it is given."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TypeAlias

import asyncpg
import attrs

from circus.db.queries import Q

Conn: TypeAlias = asyncpg.Pool | asyncpg.Connection


@attrs.frozen
class NewTask:
    """One delivery to write: `sequence_key` orders it against others, `dedup_key`
    (when set) makes a second one with the same key a no-op."""

    target: str
    project_id: int | None
    sequence_key: str
    dedup_key: str | None
    payload: dict[str, Any]


async def lock_events(conn: asyncpg.Connection) -> bool:
    """True when this transaction may expand events (no other process is)."""
    return bool(await conn.fetchval(Q.notification_events_lock))


async def take_events(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    return list(await conn.fetch(Q.notification_events_take, limit))


async def delete_events(conn: asyncpg.Connection, ids: Sequence[int]) -> None:
    await conn.execute(Q.notification_events_delete, list(ids))


async def evaluation(conn: Conn, evaluation_id: int) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(Q.notification_evaluation,
                                                     evaluation_id)
    return row


async def evaluations_of_build(conn: Conn, build_id: int,
                               limit: int) -> list[asyncpg.Record]:
    """(id, commit_hash, jobset, project_id, project, repository_url), newest first."""
    return list(await conn.fetch(Q.notification_evaluations_of_build, build_id, limit))


async def evaluation_builds(conn: Conn, evaluation_id: int) -> list[asyncpg.Record]:
    return list(await conn.fetch(Q.notification_evaluation_builds, evaluation_id))


async def build(conn: Conn, build_id: int) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(Q.notification_build, build_id)
    return row


async def insert_tasks(conn: Conn, tasks: Sequence[NewTask], max_attempts: int) -> int:
    """How many were new; the queue is notified when the caller's transaction commits."""
    if not tasks:
        return 0
    row = await conn.fetchrow(
        Q.notification_tasks_insert, [t.target for t in tasks],
        [t.project_id for t in tasks], [t.sequence_key for t in tasks],
        [t.dedup_key for t in tasks], [json.dumps(t.payload) for t in tasks],
        list(range(len(tasks))), max_attempts)
    inserted: int = row["inserted"]
    return inserted


async def claim(conn: Conn, limit: int, lease_seconds: float) -> list[asyncpg.Record]:
    return list(await conn.fetch(Q.notification_tasks_claim, limit, lease_seconds))


async def mark_done(conn: Conn, task_id: int, attempts: int) -> bool:
    """False when the claim was lost (the lease ran out and another sender took it)."""
    return await conn.fetchval(Q.notification_task_done, task_id, attempts) is not None


async def mark_attempt_failed(conn: Conn, task_id: int, attempts: int, retry_in: float,
                              error: str) -> str | None:
    """'pending' (tried again in `retry_in` s) or 'failed'; None when the claim was lost."""
    found: str | None = await conn.fetchval(Q.notification_task_attempt_failed, task_id,
                                            attempts, retry_in, error)
    return found


async def seconds_until_due(conn: Conn) -> float | None:
    found: float | None = await conn.fetchval(Q.notification_tasks_seconds_until_due)
    return found


async def purge(conn: Conn, days: int) -> None:
    await conn.execute(Q.notification_tasks_purge, days)


async def page(conn: Conn, status: str | None, project_id: int | None, limit: int,
               offset: int) -> list[asyncpg.Record]:
    return list(await conn.fetch(Q.notification_tasks_page, status, project_id, limit,
                                 offset))


async def count(conn: Conn, status: str | None, project_id: int | None) -> int:
    found: int = await conn.fetchval(Q.notification_tasks_count, status, project_id)
    return found


async def get(conn: Conn, task_id: int) -> asyncpg.Record | None:
    """The task with `superseded_by`: a later delivery of its sequence already done."""
    row: asyncpg.Record | None = await conn.fetchrow(Q.notification_task_get, task_id)
    return row


async def retry(conn: Conn, task_id: int, max_attempts: int) -> asyncpg.Record | None:
    """The task, pending again; None unless it had failed."""
    row: asyncpg.Record | None = await conn.fetchrow(Q.notification_task_retry, task_id,
                                                     max_attempts)
    return row


async def project_settings(conn: Conn, project_id: int) -> asyncpg.Record | None:
    """(settings, secrets, updated_at) of the project's own notification settings."""
    row: asyncpg.Record | None = await conn.fetchrow(Q.project_notifications_get, project_id)
    return row


async def put_project_settings(conn: Conn, project_id: int, settings: dict[str, Any],
                               sealed_secrets: bytes | None) -> None:
    await conn.execute(Q.project_notifications_put, project_id, settings, sealed_secrets)
