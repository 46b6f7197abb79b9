"""Remote builders as runners use them: who has free slots, claims that never count one
slot twice, and the health that builds and probes report."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from circus.db.queries import Q
from circus.store.build_queue import Conn, claim


async def dispatchable(conn: Conn, psi_threshold: float | None,
                       strategy: str) -> list[asyncpg.Record]:
    """Builders that are up, not backing off, under the pressure threshold, with `free`
    slots, in the strategy's order."""
    return list(await conn.fetch(Q.builders_dispatchable, psi_threshold, strategy))


async def claim_for_builder(pool: asyncpg.Pool, runner_id: str, builder: asyncpg.Record,
                            lease_seconds: float, limit: int,
                            failed_paths_ttl: float | None) -> list[asyncpg.Record]:
    """Up to `limit` ready builds the builder can take, running on it; never more than
    its free slots, whatever other runners claim meanwhile."""
    async with pool.acquire() as conn, conn.transaction():
        free = (await conn.fetchrow(Q.builder_lock_slots, builder["id"]))["free"] or 0
        if free <= 0:
            return []
        rows = await claim(conn, runner_id, builder["systems"], lease_seconds,
                           min(limit, free), builder["id"],
                           [*builder["supported_features"], *builder["mandatory_features"]],
                           builder["mandatory_features"], failed_paths_ttl)
        if rows:
            await conn.execute(Q.builder_dispatched, builder["id"])
        return rows


async def known_systems(conn: Conn) -> list[str]:
    return [row["system"] for row in await conn.fetch(Q.builders_known_systems)]


async def to_probe(conn: Conn, interval: float) -> list[asyncpg.Record]:
    return list(await conn.fetch(Q.builders_to_probe, interval))


async def healthy(conn: Conn, builder_id: int, probed: bool = False,
                  psi: Sequence[float | None] = (None, None)) -> None:
    await conn.execute(Q.builder_healthy, builder_id, probed, *psi)


async def failed(conn: Conn, builder_id: int, error: str, probed: bool, base: float,
                 max_backoff: float) -> asyncpg.Record | None:
    """The builder is down for a back-off that doubles with each consecutive failure."""
    row: asyncpg.Record | None = await conn.fetchrow(Q.builder_failed, builder_id, error,
                                                     probed, base, max_backoff)
    return row
