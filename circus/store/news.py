"""News items: short notices admins post for everyone, newest first."""

from __future__ import annotations

from typing import TypeAlias

import asyncpg

from circus.db.queries import Q

Conn: TypeAlias = asyncpg.Pool | asyncpg.Connection


async def page(conn: Conn, limit: int, offset: int) -> list[asyncpg.Record]:
    return list(await conn.fetch(Q.news_list, limit, offset))


async def count(conn: Conn) -> int:
    found: int = await conn.fetchval(Q.news_count)
    return found


async def insert(conn: Conn, title: str, content: str, author: str) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(Q.news_insert, title, content, author)
    return row


async def delete(conn: Conn, news_id: int) -> bool:
    """Whether there was such an item."""
    return await conn.fetchval(Q.news_delete, news_id) is not None
