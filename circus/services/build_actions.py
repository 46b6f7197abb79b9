"""Cancelling and restarting a build, shared by the API and the dashboard's forms: one
transaction each, so a cancelled build's queued dependents fail with it and a restarted
build loses its old results with its status."""

from __future__ import annotations

import asyncpg

from circus.db.queries import Q
from circus.domain import status as buildstatus
from circus.server.http.errors import ApiError, conflict, not_found


async def cancel(pool: asyncpg.Pool, build_id: int) -> list[int] | None:
    """The ids of the queued dependents failed with it; None when the build was not queued
    or running."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(Q.api_build_cancel, build_id)
        if row is None:
            return None
        failed = await conn.fetch(
            Q.api_build_fail_dependents, build_id,
            f"dependency failed: build {build_id} ({row['job']}) was cancelled")
    return [r["id"] for r in failed]


async def restart(pool: asyncpg.Pool, build_id: int) -> bool:
    """Queue a finished build again; False when it was not finished."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(Q.api_build_restart, build_id)
        if row is not None:
            await conn.execute(Q.api_build_clear_results, build_id)
    return row is not None


async def refusal(pool: asyncpg.Pool, build_id: int, why: str) -> ApiError:
    """Why a write matched no row: the build is missing (404) or in another state (409)."""
    row = await pool.fetchrow(Q.api_build_get, build_id)
    if row is None:
        return not_found(f"build {build_id}")
    status = buildstatus.name(row["state"], row["buildstatus"])
    return conflict(f"build {build_id} is {status}: {why}")
