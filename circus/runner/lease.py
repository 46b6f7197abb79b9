"""Leases on running builds: renewing ours, reaping those of dead runners, giving
builds back on shutdown, and ending builds no runner can take."""

from __future__ import annotations

import asyncpg

from circus.store import build_queue as queue
from circus.store import builds


async def renew(pool: asyncpg.Pool, runner_id: str, build_ids: list[int],
                lease_seconds: float) -> set[int]:
    """Renew our leases; returns the ids that are no longer ours (cancelled, reaped)."""
    if not build_ids:
        return set()
    return set(build_ids) - await queue.renew(pool, runner_id, build_ids, lease_seconds)


async def lost(pool: asyncpg.Pool, runner_id: str, build_ids: list[int]) -> set[int]:
    """Which of these builds are no longer running under us."""
    if not build_ids:
        return set()
    return await queue.lost(pool, runner_id, build_ids)


async def reap_expired(pool: asyncpg.Pool) -> list[int]:
    return await queue.reap_expired(pool)


async def hand_back(pool: asyncpg.Pool, runner_id: str, build_ids: list[int]) -> list[int]:
    if not build_ids:
        return []
    return await queue.hand_back(pool, runner_id, build_ids)


async def fail_unsupported(pool: asyncpg.Pool, systems: list[str], features: list[str],
                           older_than: int) -> list[int]:
    """Queued builds that no builder and not we can build (system and features), waiting
    longer than `older_than` s, finish as unsupported (9), and what waits on them as
    dependency failed."""
    async with pool.acquire() as conn, conn.transaction():
        failed = await queue.fail_unsupported(conn, systems, features, older_than)
        for build_id in failed:
            await builds.fail_dependents(
                conn, build_id, f"dependency (build {build_id}) has no machine that can build it")
    return failed
