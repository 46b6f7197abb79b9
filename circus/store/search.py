"""Searching: projects and jobsets by substring, jobs and store paths by prefix (on their
indexes: a substring of a job or path would read every build), each bounded by `limit`.
The `_whole` forms return every column a Hydra document needs, so a search is a fixed
number of statements however much matches."""

from __future__ import annotations

from typing import TypeAlias

import asyncpg

from circus.db.queries import Q

Conn: TypeAlias = asyncpg.Pool | asyncpg.Connection


def like(text: str) -> str:
    """An ILIKE pattern matching `text` anywhere, its wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _prefix_range(prefix: str) -> tuple[str, str]:
    """[prefix, upper): every string that starts with `prefix`, in byte order."""
    return prefix, prefix + "\U0010ffff"


async def projects(conn: Conn, text: str, limit: int) -> list[asyncpg.Record]:
    return list(await conn.fetch(Q.search_projects, like(text), limit))


async def jobsets(conn: Conn, text: str, limit: int) -> list[asyncpg.Record]:
    return list(await conn.fetch(Q.search_jobsets, like(text), limit))


async def jobs(conn: Conn, prefix: str, limit: int) -> list[asyncpg.Record]:
    return list(await conn.fetch(Q.search_jobs, *_prefix_range(prefix), limit))


async def builds_by_path(conn: Conn, prefix: str, limit: int) -> list[asyncpg.Record]:
    """Builds whose derivation or an output starts with the store path `prefix`."""
    return list(await conn.fetch(Q.search_builds_by_path, *_prefix_range(prefix), limit))


async def projects_whole(conn: Conn, text: str, limit: int) -> list[asyncpg.Record]:
    return list(await conn.fetch(Q.search_projects_whole, like(text), limit))


async def jobsets_whole(conn: Conn, text: str, limit: int) -> list[asyncpg.Record]:
    return list(await conn.fetch(Q.search_jobsets_whole, like(text), limit))


async def latest_successes_by_job(conn: Conn, prefix: str, limit: int) -> list[int]:
    """The newest successful build of each job whose name starts with `prefix`."""
    rows = await conn.fetch(Q.search_builds_by_job, *_prefix_range(prefix), limit)
    return [row["id"] for row in rows]


async def builds_with_output(conn: Conn, path: str, limit: int) -> list[int]:
    rows = await conn.fetch(Q.search_builds_with_output, path, limit)
    return [row["id"] for row in rows]

