"""Jobs: the builds of one attribute of a jobset, named by (project, jobset, job) as
Hydra's job URLs and the badges name them."""

from __future__ import annotations

from typing import TypeAlias

import asyncpg

from circus.db.queries import Q

Conn: TypeAlias = asyncpg.Pool | asyncpg.Connection
Names: TypeAlias = tuple[str, str, str]


async def latest_build(conn: Conn, names: Names,
                       successful: bool = False) -> asyncpg.Record | None:
    """(id, state, buildstatus) of the job's newest build (newest successful one);
    None when it has none."""
    row: asyncpg.Record | None = await conn.fetchrow(Q.job_latest_build, *names, successful)
    return row


async def latest_finished_build(conn: Conn, names: Names) -> asyncpg.Record | None:
    """(id, state, buildstatus) of the job's newest finished build."""
    row: asyncpg.Record | None = await conn.fetchrow(Q.job_latest_finished_build, *names)
    return row


async def latest_success(conn: Conn, names: Names, system: str | None,
                         evaluation_finished: bool) -> int | None:
    """The id of the job's newest successful build (for `system`, of an evaluation whose
    builds all finished); None when there is none."""
    found: int | None = await conn.fetchval(Q.job_latest_success, *names, system,
                                            evaluation_finished)
    return found
