"""Starred jobs: the jobs a user follows, each a jobset and a job name, with the names of
its jobset and project as /api/v1/me/starred-jobs shows them."""

from __future__ import annotations

from typing import TypeAlias

import asyncpg

from circus.db.queries import Q

Conn: TypeAlias = asyncpg.Pool | asyncpg.Connection


async def page(conn: Conn, user_id: int, limit: int, offset: int) -> list[asyncpg.Record]:
    """The user's stars by id, with jobset and project names."""
    return list(await conn.fetch(Q.starred_page, user_id, limit, offset))


async def count(conn: Conn, user_id: int) -> int:
    total: int = await conn.fetchval(Q.starred_count, user_id)
    return total


async def add(conn: Conn, user_id: int, jobset_id: int, job: str) -> asyncpg.Record | None:
    """(id, created) of the user's star on that job: made now, or found when it was
    there already (created false). None when there is no such jobset."""
    if await conn.fetchval(Q.jobset_id_if_exists, jobset_id) is None:
        return None
    row: asyncpg.Record = await conn.fetchrow(Q.starred_insert, user_id,
                                              jobset_id, job)
    return row


async def get(conn: Conn, star_id: int) -> asyncpg.Record | None:
    """The star, as `page` shows it."""
    row: asyncpg.Record | None = await conn.fetchrow(Q.starred_get, star_id)
    return row


async def delete(conn: Conn, star_id: int, user_id: int) -> int | None:
    """The id of the star deleted; None when the user has no such star."""
    deleted: int | None = await conn.fetchval(Q.starred_delete, star_id, user_id)
    return deleted


async def with_latest_builds(conn: Conn, user_id: int, limit: int,
                             offset: int) -> list[asyncpg.Record]:
    """The user's stars by project, jobset and job, each with its job's newest build
    (`build_id`, `state`, `buildstatus`, `finished_at`; NULL when it has none)."""
    return list(await conn.fetch(Q.starred_with_latest_builds, user_id, limit, offset))


async def find(conn: Conn, user_id: int, jobset_id: int, job: str) -> int | None:
    """The id of the user's star on that job, if there is one."""
    found: int | None = await conn.fetchval(Q.starred_find, user_id, jobset_id, job)
    return found
