"""Remote builders, the same from every front end (`/api/v1/admin/builders`, the admin
page, `/prometheus`) and from `[declarative] remote_builders` (services/declarative).

What a builder may be is `BuilderSpec` (circus/domain/builders.py, where the
configuration checks it too): a refusal is a 400 naming the field. Changing builders is
an admin's (`manage-builders`); every change notifies the runners, which reload them.
A change made here to a declared builder lasts until the next start applies the
configuration again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import structlog

from circus.domain.builders import BuilderSpec, spec_of
from circus.domain.errors import Conflict, NotFound
from circus.services import projects
from circus.services.login import Principal
from circus.store import builders as rows

log = structlog.get_logger(__name__)

__all__ = ["BuilderSpec", "create", "declare", "delete", "existing", "listing", "update"]


async def listing(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    """Every builder by name, with its slots in use and whether it gets builds now."""
    return await rows.listing(pool)


async def existing(pool: asyncpg.Pool, builder_id: int) -> asyncpg.Record:
    """The builder; NotFound when there is none."""
    row = await rows.get(pool, builder_id)
    if row is None:
        raise NotFound(f"builder {builder_id} not found")
    return row


def _duplicate(name: str) -> Conflict:
    return Conflict(f"name: a builder named {name!r} already exists")


async def create(pool: asyncpg.Pool, who: Principal, fields: Mapping[str, Any]
                 ) -> asyncpg.Record:
    """A new builder from `fields` (a JSON body), checked as `BuilderSpec` checks it."""
    projects.authorize(who, "manage-builders")
    spec = BuilderSpec.parse(fields)
    builder_id = await rows.create(pool, spec.row())
    if builder_id is None:
        raise _duplicate(spec.name)
    log.info("builder created", builder=spec.name, ssh_uri=spec.ssh_uri, by=who.name)
    return await existing(pool, builder_id)


async def update(pool: asyncpg.Pool, who: Principal, builder_id: int,
                 fields: Mapping[str, Any]) -> asyncpg.Record:
    """The builder with the fields given changed, the others as they were."""
    projects.authorize(who, "manage-builders")
    spec = BuilderSpec.parse(fields, base=spec_of(await existing(pool, builder_id)))
    try:
        updated = await rows.update(pool, builder_id, spec.row())
    except asyncpg.UniqueViolationError:
        raise _duplicate(spec.name) from None
    if updated is None:
        raise NotFound(f"builder {builder_id} not found")
    log.info("builder updated", builder=spec.name, fields=sorted(fields), by=who.name)
    return await existing(pool, builder_id)


async def delete(pool: asyncpg.Pool, who: Principal, builder_id: int) -> int:
    projects.authorize(who, "manage-builders")
    deleted = await rows.delete(pool, builder_id)
    if deleted is None:
        raise NotFound(f"builder {builder_id} not found")
    log.info("builder deleted", builder_id=builder_id, by=who.name)
    return deleted


async def declare(conn: asyncpg.Connection, specs: Sequence[BuilderSpec]) -> list[str]:
    """Make the declared builders what `specs` say and delete the declared ones no
    longer listed (builders made through the API stay); the names deleted."""
    for spec in specs:
        await rows.declare(conn, spec.row())
    gone = await rows.drop_undeclared(conn, [spec.name for spec in specs])
    if gone:
        log.info("undeclared builders deleted", builders=gone)
    return gone
