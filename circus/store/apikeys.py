"""API keys: the admin's list, create and delete, and a presented key found by its hash.

Only the SHA-256 of a key is stored (services/apikeys.py makes and hashes keys), so no
row here ever holds a usable key. Keys from the configuration are applied by
services/declarative.py, not here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import asyncpg

from circus.db.queries import Q

Conn: TypeAlias = asyncpg.Pool | asyncpg.Connection


async def page(conn: Conn, limit: int, offset: int) -> list[asyncpg.Record]:
    """(id, name, role, declarative, created_at, last_used_at) of keys, by id."""
    return list(await conn.fetch(Q.api_keys_list, limit, offset))


async def count(conn: Conn) -> int:
    total: int = await conn.fetchval(Q.api_keys_count)
    return total


async def insert(conn: Conn, name: str, key_hash: str, role: str) -> asyncpg.Record:
    """The new key's row, as `page` shows it."""
    row: asyncpg.Record = await conn.fetchrow(Q.api_key_insert, name, key_hash, role)
    return row


async def delete(conn: Conn, key_id: int) -> int | None:
    """The id of the key deleted; None when there was none. Its sessions end with it."""
    deleted: int | None = await conn.fetchval(Q.api_key_delete, key_id)
    return deleted


async def use(conn: Conn, key_hash: str) -> asyncpg.Record | None:
    """(id, name, role) of the key with that hash, now stamped as just used."""
    row: asyncpg.Record | None = await conn.fetchrow(Q.api_key_use, key_hash)
    return row


async def declare(conn: Conn, name: str, key_hash: str, role: str) -> None:
    """The key as the declarative configuration names it, made or updated."""
    await conn.execute(Q.declare_api_key, name, key_hash, role)


async def drop_undeclared(conn: Conn, key_hashes: Sequence[str]) -> None:
    """Declared keys no longer in the configuration stop working."""
    await conn.execute(Q.drop_undeclared_api_keys, key_hashes)
