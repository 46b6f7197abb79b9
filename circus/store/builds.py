"""Builds as the operations change them: cancel, restart, bump, keep, and failing the
queued builds that wait on one that will never succeed. Each runs on the connection it
is given, so a caller joins several in one transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeAlias

import asyncpg

from circus.db.queries import Q

Conn: TypeAlias = asyncpg.Pool | asyncpg.Connection


async def get(conn: Conn, build_id: int) -> asyncpg.Record | None:
    """The build with its project's and jobset's names."""
    row: asyncpg.Record | None = await conn.fetchrow(Q.api_build_get, build_id)
    return row


async def cancel(conn: Conn, ids: Sequence[int]) -> list[asyncpg.Record]:
    """(id, job) of those that were queued or running and are now cancelled."""
    return list(await conn.fetch(Q.builds_cancel, list(ids)))


async def fail_dependents(conn: Conn, build_id: int, message: str) -> list[int]:
    """The queued builds that waited on `build_id` (directly or not), now failed."""
    return [row["id"] for row in await conn.fetch(Q.build_fail_dependents, build_id, message)]


async def restart(conn: Conn, ids: Sequence[int],
                  codes: Iterable[int] | None = None) -> list[int]:
    """Those finished (with one of `codes`, or any) and now queued again."""
    wanted = None if codes is None else [int(code) for code in codes]
    return [row["id"] for row in await conn.fetch(Q.builds_restart, list(ids), wanted)]


async def clear_results(conn: Conn, ids: Sequence[int]) -> None:
    """Outputs, products, metrics, steps and log of builds run again."""
    await conn.execute(Q.builds_clear_results, list(ids))


async def bump(conn: Conn, build_id: int) -> int | None:
    """Its new global priority, ahead of every queued build; None when not queued."""
    row = await conn.fetchrow(Q.build_bump, build_id)
    return None if row is None else int(row["global_priority"])


async def keep(conn: Conn, build_id: int, value: bool) -> bool:
    """Whether the build exists (and now has keep = value)."""
    return await conn.fetchrow(Q.build_keep, build_id, value) is not None
