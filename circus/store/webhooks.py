"""Webhooks from forges: each project's (encrypted) secrets, the deliveries received
once each, and the jobsets a push or a pull request asks to evaluate. Each runs on the
connection it is given, so a caller joins several in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import asyncpg

from circus.db.queries import Q

Conn: TypeAlias = asyncpg.Pool | asyncpg.Connection


async def create(conn: Conn, project_id: int, forge: str,
                 sealed: bytes) -> asyncpg.Record | None:
    """(id, project_id, forge, created_at); None when the project has one for the forge."""
    row: asyncpg.Record | None = await conn.fetchrow(Q.webhook_create, project_id, forge,
                                                     sealed)
    return row


async def of_project(conn: Conn, project_id: int) -> list[asyncpg.Record]:
    return list(await conn.fetch(Q.webhooks_of_project, project_id))


async def delete(conn: Conn, project_id: int, webhook_id: int) -> bool:
    return await conn.fetchval(Q.webhook_delete, project_id, webhook_id) is not None


async def sealed_secret(conn: Conn, project_id: int, forge: str) -> bytes | None:
    found: bytes | None = await conn.fetchval(Q.webhook_secret, project_id, forge)
    return found


async def record_delivery(conn: Conn, project_id: int, forge: str, delivery: str,
                          event: str) -> int | None:
    """The delivery's row id; None when it was received before."""
    found: int | None = await conn.fetchval(Q.webhook_delivery_record, project_id, forge,
                                            delivery, event)
    return found


async def purge_deliveries(conn: Conn, days: int) -> None:
    await conn.execute(Q.webhook_deliveries_purge, days)


async def request_for_push(conn: Conn, project_id: int, branch: str, is_default: bool,
                           delivery_id: int | None) -> list[str]:
    """Names of the jobsets now due because `branch` was pushed (the evaluator is
    notified when the caller's transaction commits)."""
    rows = await conn.fetch(Q.jobsets_request_evaluation_for_push, project_id, branch,
                            is_default, delivery_id)
    return sorted(row["name"] for row in rows)


async def projects_by_repository(conn: Conn, urls: Sequence[str],
                                 forge: str) -> list[asyncpg.Record]:
    """(id, name, secret) of the projects whose repository is one of `urls` (lower case,
    without ".git"), secret being the sealed one for `forge` or None."""
    return list(await conn.fetch(Q.projects_by_repository, list(urls), forge))


async def pull_request_template(conn: Conn, project_id: int,
                                base_branch: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(Q.pull_request_template_jobset,
                                                     project_id, base_branch)
    return row


async def upsert_pull_request_jobset(conn: asyncpg.Connection, template: asyncpg.Record,
                                     name: str, description: str, ref: str, number: int,
                                     delivery_id: int | None) -> int | None:
    """The request's jobset id, due now; None when `name` is another jobset's."""
    row = await conn.fetchrow(Q.pull_request_jobset_upsert, template["project_id"],
                              template["id"], name, description, ref, number, delivery_id)
    if row is None:
        return None
    await conn.execute(Q.pull_request_jobset_copy_inputs, row["id"], template["id"])
    found: int = row["id"]
    return found


async def close_pull_request_jobset(conn: Conn, project_id: int, number: int) -> str | None:
    found: str | None = await conn.fetchval(Q.pull_request_jobset_close, project_id, number)
    return found


async def purge_pull_request_jobsets(conn: Conn, days: int) -> int:
    return len(await conn.fetch(Q.pull_request_jobsets_purge, days))
