"""Leases on running builds: renewing ours, reaping those of dead runners, giving
builds back on shutdown, and ending builds no runner can take."""

from __future__ import annotations

import asyncpg

from circus.db.queries import Q
from circus.store import builds


async def renew(pool: asyncpg.Pool, runner_id: str, build_ids: list[int],
                lease_seconds: float) -> set[int]:
    """Renew our leases; returns the ids that are no longer ours (cancelled, reaped)."""
    if not build_ids:
        return set()
    async with pool.acquire() as conn:
        rows = await conn.fetch(Q.queue_heartbeat, runner_id, build_ids, lease_seconds)
    return set(build_ids) - {row["id"] for row in rows}


async def lost(pool: asyncpg.Pool, runner_id: str, build_ids: list[int]) -> set[int]:
    """Which of these builds are no longer running under us."""
    if not build_ids:
        return set()
    async with pool.acquire() as conn:
        rows = await conn.fetch(Q.queue_lost_builds, runner_id, build_ids)
    return {row["id"] for row in rows}


async def reap_expired(pool: asyncpg.Pool) -> list[int]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(Q.queue_reap_expired)
    return [row["id"] for row in rows]


async def hand_back(pool: asyncpg.Pool, runner_id: str, build_ids: list[int]) -> list[int]:
    if not build_ids:
        return []
    async with pool.acquire() as conn:
        rows = await conn.fetch(Q.queue_hand_back, runner_id, build_ids)
    return [row["id"] for row in rows]


async def fail_unsupported(pool: asyncpg.Pool, systems: list[str], older_than: int) -> list[int]:
    """Queued builds for a system we do not build, waiting longer than `older_than` s,
    finish as unsupported (9), and what waits on them as dependency failed."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(Q.queue_fail_unsupported, systems, older_than)
        for row in rows:
            await builds.fail_dependents(
                conn, row["id"], f"dependency (build {row['id']}) has an unsupported system")
    return [row["id"] for row in rows]
