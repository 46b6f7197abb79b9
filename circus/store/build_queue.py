"""The build queue as runners work it: claimed with SKIP LOCKED, leases renewed and
reaped, builds handed back or failed as unsupported; and as the dashboard shows it,
queued in claim order and running."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import asyncpg

from circus.db.queries import Q

Conn: TypeAlias = asyncpg.Pool | asyncpg.Connection


async def queued(conn: Conn, system: str | None, limit: int,
                 offset: int) -> list[asyncpg.Record]:
    """Queued builds (of one system, or all) in the order runners claim them, with their
    `project` and `jobset` names."""
    return list(await conn.fetch(Q.queued_builds_page, system, limit, offset))


async def queued_count(conn: Conn, system: str | None) -> int:
    found: int = await conn.fetchval(Q.queued_builds_count, system)
    return found


async def running(conn: Conn) -> list[asyncpg.Record]:
    """At most 500 running builds, oldest start first, with `project` and `jobset`."""
    return list(await conn.fetch(Q.running_builds))


async def claim(conn: Conn, runner_id: str, systems: Sequence[str], lease_seconds: float,
                limit: int, builder_id: int | None = None,
                features: Sequence[str] | None = None, mandatory: Sequence[str] = (),
                failed_paths_ttl: float | None = None) -> list[asyncpg.Record]:
    """Up to `limit` queued builds of these systems whose dependencies have succeeded,
    each jobset its fair share, now running under `runner_id` with a lease of
    `lease_seconds`, on builder `builder_id` (None: the runner itself). Only builds whose
    required features are within `features` (None: any) and that require every
    `mandatory` one. Each row's `failed_in` names the build whose failure of the same
    derivation is younger than `failed_paths_ttl` seconds."""
    return list(await conn.fetch(Q.queue_claim, runner_id, systems, lease_seconds, limit,
                                 builder_id, features, list(mandatory), failed_paths_ttl))


async def renew(conn: Conn, runner_id: str, build_ids: Sequence[int],
                lease_seconds: float) -> set[int]:
    """The ids whose lease was renewed: those still running under `runner_id`."""
    rows = await conn.fetch(Q.queue_heartbeat, runner_id, build_ids, lease_seconds)
    return {row["id"] for row in rows}


async def lost(conn: Conn, runner_id: str, build_ids: Sequence[int]) -> set[int]:
    """Which of these builds are no longer running under `runner_id`."""
    return {row["id"] for row in await conn.fetch(Q.queue_lost_builds, runner_id, build_ids)}


async def reap_expired(conn: Conn) -> list[int]:
    """Running builds whose lease ran out, queued again."""
    return [row["id"] for row in await conn.fetch(Q.queue_reap_expired)]


async def hand_back(conn: Conn, runner_id: str, build_ids: Sequence[int]) -> list[int]:
    """These builds of ours, queued again."""
    return [row["id"] for row in await conn.fetch(Q.queue_hand_back, runner_id, build_ids)]


async def fail_unsupported(conn: Conn, systems: Sequence[str], features: Sequence[str],
                           older_than: int) -> list[int]:
    """Queued builds waiting longer than `older_than` s that neither these systems and
    features nor any builder can build, finished as unsupported."""
    return [row["id"] for row in await conn.fetch(Q.queue_fail_unsupported, systems,
                                                   features, older_than)]
