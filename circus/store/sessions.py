"""Sessions: a login held by a browser, stored as the SHA-256 of its cookie's token with
its CSRF token, for a user or an API key (server/accounts/sessions.py makes the tokens).

A session ends when it expires, when it is deleted (logout), when its key is deleted,
and when its user is disabled or changes password or role (migration 0008's trigger);
`by_token` finds none of those.
"""

from __future__ import annotations

from typing import TypeAlias

import asyncpg

from circus.db.queries import Q

Conn: TypeAlias = asyncpg.Pool | asyncpg.Connection


async def insert(conn: Conn, token_hash: str, csrf_token: str, *, user_id: int | None,
                 api_key_id: int | None, lifetime: float) -> asyncpg.Record:
    """(id, expires_at) of a session good for `lifetime` seconds from now."""
    row: asyncpg.Record = await conn.fetchrow(Q.session_insert, token_hash, csrf_token,
                                              user_id, api_key_id, lifetime)
    return row


async def purge_expired(conn: Conn) -> None:
    await conn.execute(Q.sessions_purge_expired)


async def by_token(conn: Conn, token_hash: str) -> asyncpg.Record | None:
    """(id, csrf_token, user_id, api_key_id, expires_at, name, role) of the session, with
    the name and role of the user or key it stands for; None when it no longer holds."""
    row: asyncpg.Record | None = await conn.fetchrow(Q.session_by_token, token_hash)
    return row


async def delete(conn: Conn, token_hash: str) -> bool:
    """Whether there was such a session."""
    status: str = await conn.execute(Q.session_delete, token_hash)
    return status != "DELETE 0"


async def keep(conn: asyncpg.Connection, session_id: int | None) -> None:
    """Spare one session (None: none) when the user changes later in this transaction,
    which ends the others: the setting lasts until the transaction does, so `conn` must
    be inside one."""
    await conn.execute(Q.session_keep, session_id)
