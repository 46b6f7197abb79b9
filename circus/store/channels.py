"""Channels: a name that follows a jobset's newest fully green evaluation (or the one
an admin promoted), and what a channel serves of that evaluation."""

from __future__ import annotations

from typing import TypeAlias

import asyncpg

from circus.db.queries import Q

Conn: TypeAlias = asyncpg.Pool | asyncpg.Connection


async def page(conn: Conn, project_id: int | None, limit: int,
               offset: int) -> list[asyncpg.Record]:
    """Newest first, of one project or of all."""
    return list(await conn.fetch(Q.channels_page, project_id, limit, offset))


async def count(conn: Conn, project_id: int | None) -> int:
    found: int = await conn.fetchval(Q.channels_count_of, project_id)
    return found


async def named_like(conn: Conn, text: str | None, limit: int,
                     offset: int) -> list[asyncpg.Record]:
    """By name, those whose name contains `text` (all for None), with their project's,
    jobset's and current evaluation's names."""
    return list(await conn.fetch(Q.channels_named_like, text, limit, offset))


async def named_like_count(conn: Conn, text: str | None) -> int:
    found: int = await conn.fetchval(Q.channels_named_like_count, text)
    return found


async def by_id(conn: Conn, channel_id: int) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(Q.channel_by_id, channel_id)
    return row


async def by_name(conn: Conn, name: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(Q.channel_by_name, name)
    return row


async def with_names(conn: Conn, channel_id: int) -> asyncpg.Record | None:
    """The channel with its project's and jobset's names and its evaluation's state."""
    row: asyncpg.Record | None = await conn.fetchrow(Q.channel_with_names, channel_id)
    return row


async def insert(conn: Conn, project_id: int, jobset_id: int, name: str,
                 description: str) -> asyncpg.Record | None:
    """The new channel; None when the jobset is not the project's. A taken name raises
    asyncpg.UniqueViolationError."""
    row: asyncpg.Record | None = await conn.fetchrow(Q.channel_insert, project_id, jobset_id,
                                                     name, description)
    return row


async def update(conn: Conn, channel_id: int, name: str,
                 description: str) -> asyncpg.Record | None:
    """The channel renamed; None when there is none (a taken name raises as insert)."""
    row: asyncpg.Record | None = await conn.fetchrow(Q.channel_update, channel_id, name,
                                                     description)
    return row


async def delete(conn: Conn, channel_id: int) -> bool:
    return await conn.fetchval(Q.channel_delete, channel_id) is not None


async def promote(conn: Conn, channel_id: int, evaluation_id: int) -> asyncpg.Record | None:
    """The channel pointed at the evaluation; None unless it is of the channel's jobset."""
    row: asyncpg.Record | None = await conn.fetchrow(Q.channel_promote, channel_id,
                                                     evaluation_id)
    return row


async def evaluation(conn: Conn, evaluation_id: int) -> asyncpg.Record | None:
    """(id, commit_hash, jobset_id, finished_at) of the evaluation a channel serves."""
    row: asyncpg.Record | None = await conn.fetchrow(Q.channel_evaluation, evaluation_id)
    return row


async def jobs(conn: Conn, evaluation_id: int) -> list[asyncpg.Record]:
    """The evaluation's successful jobs with their output names and paths, by job."""
    return list(await conn.fetch(Q.channel_jobs, evaluation_id))


async def advance(conn: Conn, channel_ids: list[int],
                  build_ids: list[int]) -> list[asyncpg.Record]:
    """(id, current_evaluation_id) of the channels (chosen by id, or by a successful
    build of their jobset) that moved to their jobset's newest green evaluation."""
    return list(await conn.fetch(Q.channels_advance, channel_ids, build_ids))
