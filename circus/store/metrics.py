"""Figures about the whole system, read by /prometheus, /api/v1/metrics, the dashboard's
metrics page and the admin status: builds per time bucket, durations, the build systems
asked for, the aggregate counts a scrape reports, and the health check's round trip."""

from __future__ import annotations

from typing import TypeAlias

import asyncpg

from circus.db.queries import Q

Conn: TypeAlias = asyncpg.Pool | asyncpg.Connection
# What a time series counts: finished builds, or the durations of successful ones.
SERIES = {"builds": "metrics_builds_timeseries", "durations": "metrics_duration_timeseries"}


async def series(conn: Conn, what: str, bucket: str, hours: int,
                 project_id: int | None) -> list[asyncpg.Record]:
    """One point per `bucket` over the last `hours` (of one project, or of all)."""
    return list(await conn.fetch(Q[SERIES[what]], bucket, hours, project_id))


async def systems(conn: Conn) -> list[asyncpg.Record]:
    """(system, queued) of every build system builds have asked for."""
    return list(await conn.fetch(Q.metrics_systems))


async def build_counts(conn: Conn) -> list[asyncpg.Record]:
    """(project_id, state, buildstatus, n): every build, counted."""
    return list(await conn.fetch(Q.builds_counted))


async def durations(conn: Conn) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(Q.build_durations)
    return row


async def evaluation_counts(conn: Conn) -> dict[str, int]:
    """How many evaluations are in each status."""
    return {r["status"]: r["n"] for r in await conn.fetch(Q.evaluations_counted)}


async def projects(conn: Conn) -> list[asyncpg.Record]:
    return list(await conn.fetch(Q.projects_counted))


async def optional_counts(conn: Conn) -> dict[str, int]:
    """Rows of the tables a later migration adds (0 while it is missing)."""
    tables = await conn.fetchrow(Q.optional_tables_present)
    return {name: (await conn.fetchval(Q[f"count_{name}"]) if tables[name] else 0)
            for name in ("channels",)}


async def system_status(conn: Conn) -> asyncpg.Record:
    """The admin status page's database, queue and evaluation counts."""
    row: asyncpg.Record = await conn.fetchrow(Q.system_status)
    return row


async def home_counts(conn: Conn) -> asyncpg.Record:
    """(queued, running, projects, evaluating, builds_estimate, succeeded_day,
    failed_day): the front page's figures."""
    row: asyncpg.Record = await conn.fetchrow(Q.system_counts)
    return row


async def database_answers(conn: Conn) -> None:
    """One round trip to the database; raises if it cannot be reached."""
    await conn.fetchval(Q.database_answers)
