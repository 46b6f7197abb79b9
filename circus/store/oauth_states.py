"""OAuth states: the `state` of each GitHub login under way, stored as its SHA-256 so any
server process may take the callback, and good for one callback only."""

from __future__ import annotations

from typing import TypeAlias

import asyncpg

from circus.db.queries import Q

Conn: TypeAlias = asyncpg.Pool | asyncpg.Connection


async def remember(conn: Conn, state_hash: str, lifetime: float) -> None:
    """Keep the state for `lifetime` seconds (and forget those that have expired)."""
    await conn.execute(Q.oauth_state_insert, state_hash, lifetime)


async def take(conn: Conn, state_hash: str) -> bool:
    """Whether the state was remembered and has not expired; once taken it is gone, so
    a second callback with it finds nothing."""
    return await conn.fetchval(Q.oauth_state_take, state_hash) is not None
