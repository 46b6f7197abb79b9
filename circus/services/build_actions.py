"""What a user does to a build — cancel, restart, bump, keep — the same on `/api/v1`, on
Hydra's URLs and in the dashboard. Cancel and restart are one transaction each, so a
cancelled build's queued dependents fail with it and a restarted build loses its old
results with its status. A refusal is a domain error (NotFound, Conflict) with the
message every front end shows, unless it speaks Hydra's words instead."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import asyncpg
import structlog

from circus.domain import status as buildstatus
from circus.domain.errors import Conflict, NotFound
from circus.store import builds

log = structlog.get_logger(__name__)


async def cancel_all(pool: asyncpg.Pool, ids: Sequence[int]) -> list[int]:
    """Those of `ids` that were queued or running, now cancelled; what waited on each
    fails with it (it would otherwise wait for ever)."""
    async with pool.acquire() as conn, conn.transaction():
        cancelled = await builds.cancel(conn, ids)
        for row in cancelled:
            failed = await builds.fail_dependents(
                conn, row["id"], f"dependency failed: build {row['id']} ({row['job']}) "
                                 "was cancelled")
            log.info("build cancelled", build_id=row["id"], dependents_failed=len(failed))
    return [row["id"] for row in cancelled]


async def restart_all(pool: asyncpg.Pool, ids: Sequence[int],
                      codes: Iterable[int] | None = None) -> list[int]:
    """Those of `ids` that finished (with one of `codes`, or any), queued again."""
    async with pool.acquire() as conn, conn.transaction():
        restarted = await builds.restart(conn, ids, codes)
        if restarted:
            await builds.clear_results(conn, restarted)
    log.info("builds restarted", builds=len(restarted))
    return restarted


async def cancel(pool: asyncpg.Pool, build_id: int) -> None:
    if not await cancel_all(pool, [build_id]):
        raise await _refusal(pool, build_id, "only a queued or running build can be cancelled")


async def restart(pool: asyncpg.Pool, build_id: int) -> None:
    if not await restart_all(pool, [build_id]):
        raise await _refusal(pool, build_id, "only a finished build can be restarted")


async def bump(pool: asyncpg.Pool, build_id: int) -> int:
    """Its new global priority: the next free runner claims it first."""
    priority = (await builds.bump(pool, [build_id])).get(build_id)
    if priority is None:
        raise await _refusal(pool, build_id, "only a queued build can be bumped")
    log.info("build bumped", build_id=build_id, global_priority=priority)
    return priority


async def bump_all(pool: asyncpg.Pool, ids: Sequence[int]) -> list[int]:
    """Those of `ids` that were queued, now ahead of every other queued build."""
    bumped = sorted(await builds.bump(pool, ids))
    log.info("builds bumped", builds=len(bumped))
    return bumped


async def keep(pool: asyncpg.Pool, build_id: int, value: bool) -> None:
    """Keep its outputs from garbage collection, or stop keeping them."""
    if not await builds.keep(pool, build_id, value):
        raise NotFound(f"build {build_id} not found")
    log.info("build keep flag set", build_id=build_id, keep=value)


async def _refusal(pool: asyncpg.Pool, build_id: int, why: str) -> NotFound | Conflict:
    """Why an action matched no row: no such build, or a build in another state."""
    row = await builds.get(pool, build_id)
    if row is None:
        return NotFound(f"build {build_id} not found")
    status = buildstatus.name(row["state"], row["buildstatus"])
    return Conflict(f"build {build_id} is {status}: {why}")
