"""Evaluations as the API and Hydra's pages read them: listed (filtered or one jobset's
finished ones), one with its inputs, errors and build counts, and a jobset's latest
good one. Each runs on the connection it is given."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import asyncpg

from circus.db.queries import Q

Conn: TypeAlias = asyncpg.Pool | asyncpg.Connection


async def page(conn: Conn, project_id: int | None, jobset_id: int | None,
               status: str | None, limit: int, offset: int) -> list[asyncpg.Record]:
    """Newest first, with their `jobset` and `project` names and `project_id`; each
    filter None for any."""
    return list(await conn.fetch(Q.evaluations_page, project_id, jobset_id, status,
                                 limit, offset))


async def count(conn: Conn, project_id: int | None, jobset_id: int | None,
                status: str | None) -> int:
    """How many `page` would list in all."""
    found: int = await conn.fetchval(Q.evaluations_count, project_id, jobset_id, status)
    return found


async def get(conn: Conn, evaluation_id: int) -> asyncpg.Record | None:
    """The evaluation with its `jobset` and `project` names and `project_id`."""
    row: asyncpg.Record | None = await conn.fetchrow(Q.evaluation_get, evaluation_id)
    return row


async def inputs(conn: Conn, evaluation_id: int) -> list[asyncpg.Record]:
    """(name, type, uri, revision, value) of what it evaluated, by name."""
    return list(await conn.fetch(Q.evaluation_inputs, evaluation_id))


async def errors(conn: Conn, evaluation_id: int) -> list[asyncpg.Record]:
    """(job, error_message) of the jobs that failed to evaluate, by job."""
    return list(await conn.fetch(Q.evaluation_errors, evaluation_id))


async def build_counts(conn: Conn, evaluation_id: int) -> asyncpg.Record:
    """(total, new, queued, running, succeeded, failed) of its builds."""
    row: asyncpg.Record = await conn.fetchrow(Q.evaluation_build_counts, evaluation_id)
    return row


async def finished_page(conn: Conn, jobset_id: int, limit: int,
                        offset: int) -> list[asyncpg.Record]:
    """The jobset's evaluations that are not running, newest first."""
    return list(await conn.fetch(Q.evaluations_finished_page, jobset_id, limit, offset))


async def with_new_builds_page(conn: Conn, limit: int, offset: int) -> list[asyncpg.Record]:
    """Finished evaluations of every jobset that brought new builds, newest first, with
    `previous_id`: the jobset's one before that did too."""
    return list(await conn.fetch(Q.evaluations_with_new_builds_page, limit, offset))


async def builds_counted(conn: Conn, ids: Sequence[int]) -> dict[int, asyncpg.Record]:
    """(total, scheduled, succeeded) of each evaluation's builds (those with any)."""
    rows = await conn.fetch(Q.evaluations_build_counts, list(ids))
    return {row["evaluation_id"]: row for row in rows}


async def finished_count(conn: Conn, jobset_id: int) -> int:
    found: int = await conn.fetchval(Q.evaluations_finished_count, jobset_id)
    return found


async def latest_succeeded_id(conn: Conn, project: str, jobset: str) -> int | None:
    """The newest succeeded evaluation of the jobset named so; None when it has none."""
    found: int | None = await conn.fetchval(Q.evaluation_latest_succeeded_id, project,
                                            jobset)
    return found


async def exists(conn: Conn, evaluation_id: int) -> bool:
    return await conn.fetchval(Q.evaluation_exists, evaluation_id) is not None


async def previous_id(conn: Conn, evaluation_id: int) -> int | None:
    """The evaluation of the same jobset before this one."""
    found: int | None = await conn.fetchval(Q.evaluation_previous, evaluation_id)
    return found


async def jobs(conn: Conn, evaluation_id: int) -> list[asyncpg.Record]:
    """(job, build_id, drv_path, state, buildstatus) of each of its jobs."""
    return list(await conn.fetch(Q.evaluation_jobs, evaluation_id))


async def reserve_id(conn: Conn) -> asyncpg.Record:
    """(id, taken_at): the next evaluation's id, its row not written yet."""
    row: asyncpg.Record = await conn.fetchrow(Q.evaluation_reserve_id)
    return row


async def latest_of(conn: Conn, jobset_id: int) -> asyncpg.Record | None:
    """(inputs_hash, status) of the jobset's newest evaluation."""
    row: asyncpg.Record | None = await conn.fetchrow(Q.evaluation_latest_of_jobset, jobset_id)
    return row


async def build_ids(conn: Conn, evaluation_id: int) -> list[int]:
    """The ids of its builds, ascending."""
    return [r["build_id"] for r in await conn.fetch(Q.evaluation_build_ids, evaluation_id)]


async def inputs_of(conn: Conn, ids: Sequence[int]) -> list[asyncpg.Record]:
    """(evaluation_id, name, type, uri, revision, value) of these evaluations' inputs."""
    return list(await conn.fetch(Q.evaluations_inputs, ids))


async def members_of(conn: Conn, ids: Sequence[int]) -> list[asyncpg.Record]:
    """(evaluation_id, build_id) of these evaluations' builds."""
    return list(await conn.fetch(Q.evaluations_members, ids))
