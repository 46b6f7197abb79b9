"""Remote builders: the configured rows with the health the runners wrote, and their
writes, each of which notifies the runners (`circus_builders_changed`) as it commits.
Each runs on the connection it is given, so a caller joins several in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import asyncpg

from circus.db.queries import Q

Conn: TypeAlias = asyncpg.Pool | asyncpg.Connection
# (name, ssh_uri, systems, max_jobs, speed_factor, supported_features,
#  mandatory_features, ssh_key_file, public_host_key, enabled)
Fields: TypeAlias = tuple[Any, ...]


async def listing(conn: Conn) -> list[asyncpg.Record]:
    """Every builder by name, with `slots_in_use` (its running builds) and `active`
    (enabled, up and not backing off)."""
    return list(await conn.fetch(Q.builders_list, None))


async def get(conn: Conn, builder_id: int) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(Q.builders_list, builder_id)
    return row


async def create(conn: Conn, fields: Fields) -> int | None:
    """The new builder's id; None when the name is taken."""
    found: int | None = await conn.fetchval(Q.builder_create, *fields)
    return found


async def update(conn: Conn, builder_id: int, fields: Fields) -> int | None:
    """The builder's id; None when there is none. UniqueViolationError when renamed onto
    another builder's name."""
    found: int | None = await conn.fetchval(Q.builder_update, *fields, builder_id)
    return found


async def delete(conn: Conn, builder_id: int) -> int | None:
    found: int | None = await conn.fetchval(Q.builder_delete, builder_id)
    return found


async def declare(conn: Conn, fields: Fields) -> None:
    """The builder as the declarative configuration names it, made or updated."""
    await conn.execute(Q.builder_declare, *fields)


async def drop_undeclared(conn: Conn, names: Sequence[str]) -> list[str]:
    """Delete the declared builders not named in `names`; the names deleted."""
    return [row["name"] for row in await conn.fetch(Q.builders_drop_undeclared, list(names))]
