"""Automatic channel promotion, shared by the runner (after builds finish) and the
server (catching up before it answers: an evaluation whose builds were all reused from
earlier ones finishes no build, yet is green)."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg
import structlog

from circus.store import channels as channel_rows

log = structlog.get_logger(__name__)


async def advance(pool: asyncpg.Pool | asyncpg.Connection, build_ids: Iterable[int] = (),
                  channel_ids: Iterable[int] = ()) -> list[int]:
    """Move the channels concerned to their newest green evaluation; returns the channel
    ids that moved. Never raises for a database problem: promotion is retried the next
    time a build finishes or the channel is read."""
    builds, channels = list(build_ids), list(channel_ids)
    if not builds and not channels:
        return []
    try:
        rows = await channel_rows.advance(pool, channels, builds)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        log.error("channel promotion failed; will retry", error=str(exc))
        return []
    for row in rows:
        log.info("channel promoted", channel_id=row["id"],
                 evaluation_id=row["current_evaluation_id"])
    return [row["id"] for row in rows]
