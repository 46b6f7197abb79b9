"""Users: the admin's list and changes, a user's own profile and password, and the
lookups each way of logging in makes (a name's password hash, a GitHub id, an LDAP name).

No row read here carries the password hash except `credentials` and `password_hash`,
which only the password checks read. A change of password, role or state ends the
user's sessions in the database itself (migration 0008); `sessions.keep` spares one.
Users from the configuration are applied by services/declarative.py, not here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import asyncpg

from circus.db.queries import Q

Conn: TypeAlias = asyncpg.Pool | asyncpg.Connection


async def get(conn: Conn, user_id: int) -> asyncpg.Record | None:
    """The user as the API shows it, with `has_password` (never the hash)."""
    row: asyncpg.Record | None = await conn.fetchrow(Q.user_get, user_id)
    return row


async def page(conn: Conn, limit: int, offset: int) -> list[asyncpg.Record]:
    """Users by id, as `get` shows them without `has_password`."""
    return list(await conn.fetch(Q.users_list, limit, offset))


async def count(conn: Conn) -> int:
    total: int = await conn.fetchval(Q.users_count)
    return total


async def insert(conn: Conn, username: str, *, email: str | None, full_name: str,
                 password_hash: str | None, role: str, enabled: bool) -> asyncpg.Record:
    """The new user, as `page` shows it; asyncpg.UniqueViolationError when the name is
    taken."""
    row: asyncpg.Record = await conn.fetchrow(Q.user_insert, username, email, full_name,
                                              password_hash, role, enabled)
    return row


async def update(conn: Conn, user_id: int, *, username: str, email: str | None,
                 full_name: str, role: str, enabled: bool,
                 password_hash: str | None = None) -> asyncpg.Record | None:
    """The user as changed, as `page` shows it (a None hash keeps the password); None
    when there is no such user, asyncpg.UniqueViolationError when the name is taken."""
    row: asyncpg.Record | None = await conn.fetchrow(
        Q.user_update, user_id, email, full_name, role, enabled, username, password_hash)
    return row


async def delete(conn: Conn, user_id: int) -> int | None:
    """The id of the user deleted; None when there was none."""
    deleted: int | None = await conn.fetchval(Q.user_delete, user_id)
    return deleted


async def password_hash(conn: Conn, user_id: int) -> str | None:
    """None when the user has no password (GitHub or LDAP only) or does not exist."""
    stored: str | None = await conn.fetchval(Q.user_password_hash, user_id)
    return stored


async def set_password(conn: Conn, user_id: int, password_hash: str) -> None:
    await conn.execute(Q.user_set_password, user_id, password_hash)


async def credentials(conn: Conn, username: str) -> asyncpg.Record | None:
    """(id, username, role, enabled, password_hash) of the user of that name."""
    row: asyncpg.Record | None = await conn.fetchrow(Q.user_credentials, username)
    return row


async def stamp_login(conn: Conn, user_id: int) -> None:
    """Record that the user logged in just now (`last_login_at`)."""
    await conn.execute(Q.user_stamp_login, user_id)


async def by_name(conn: Conn, username: str) -> asyncpg.Record | None:
    """(id, username, auth_source, enabled) of the user of that name."""
    row: asyncpg.Record | None = await conn.fetchrow(Q.user_by_name, username)
    return row


async def by_github_id(conn: Conn, github_id: int) -> asyncpg.Record | None:
    """(id, username, enabled) of the user linked to that GitHub account."""
    row: asyncpg.Record | None = await conn.fetchrow(Q.user_by_github_id, github_id)
    return row


async def insert_external(conn: Conn, username: str, *, email: str | None, full_name: str,
                          auth_source: str, github_id: int | None = None) -> asyncpg.Record:
    """(id, username, enabled) of a new read-only user that GitHub or LDAP vouches for."""
    row: asyncpg.Record = await conn.fetchrow(Q.user_insert_external, username, email,
                                              full_name, auth_source, github_id)
    return row


async def password_hash_by_name(conn: Conn, username: str) -> str | None:
    found: str | None = await conn.fetchval(Q.user_password_hash_by_name, username)
    return found


async def declare(conn: Conn, username: str, *, email: str | None, role: str,
                  enabled: bool, password_hash: str | None) -> None:
    """The user as the declarative configuration names it, made or updated; the stored
    password hash stays when `password_hash` is None."""
    await conn.execute(Q.declare_user, username, email, role, enabled, password_hash)


async def drop_undeclared(conn: Conn, usernames: Sequence[str]) -> None:
    """Declared users no longer in the configuration are deleted."""
    await conn.execute(Q.drop_undeclared_users, usernames)
