"""Hydra's pages about the queue and the machines, as JSON: `/queue` (what waits, in the
order runners take it), `/status` (what builds now), `/queue-runner-status` and
`/machines` (the remote builders, keyed by their store URI as Hydra keys its machines)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import asyncpg
from aiohttp import web

from circus.server.http.keys import CONTEXT
from circus.server.hydra import shapes
from circus.services import builders
from circus.store import build_list, build_queue, metrics

# Hydra lists the whole queue; Circus stops at this many builds.
QUEUE_LIMIT = 1000


async def queue(request: web.Request) -> web.Response:
    pool = request.app[CONTEXT].pool
    ids = await build_list.unfinished_ids(pool, QUEUE_LIMIT)
    found = {b["id"]: b for b in await shapes.builds(pool, ids)}
    return web.json_response([found[i] for i in ids if i in found])


async def status(request: web.Request) -> web.Response:
    pool = request.app[CONTEXT].pool
    ids = [row["id"] for row in await build_queue.running(pool)]
    found = {b["id"]: b for b in await shapes.builds(pool, ids)}
    return web.json_response([found[i] for i in ids if i in found])


async def queue_runner_status(request: web.Request) -> web.Response:
    """The fields of `hydra-queue-runner --status` that Circus has figures for."""
    row = await metrics.system_status(request.app[CONTEXT].pool)
    return web.json_response({
        "status": "up", "time": int(time.time()), "nrQueuedBuilds": row["builds_queued"],
        "nrActiveSteps": row["builds_running"], "nrStepsBuilding": row["builds_running"],
        "machines": await _machines(request.app[CONTEXT].pool)})


async def machines(request: web.Request) -> web.Response:
    return web.json_response(await _machines(request.app[CONTEXT].pool))


async def _machines(pool: asyncpg.Pool) -> dict[str, dict[str, Any]]:
    """Each builder in the fields of Hydra's machine status (times in epoch seconds)."""
    return {row["ssh_uri"]: {
        "enabled": row["enabled"], "active": row["active"], "health": row["health"],
        "systemTypes": row["systems"], "supportedFeatures": row["supported_features"],
        "mandatoryFeatures": row["mandatory_features"], "maxJobs": row["max_jobs"],
        "speedFactor": row["speed_factor"], "currentJobs": row["slots_in_use"],
        "consecutiveFailures": row["consecutive_failures"],
        "disabledUntil": _epoch(row["disabled_until"]),
        "lastFailure": _epoch(row["last_failure_at"]), "lastError": row["last_error"],
    } for row in await builders.listing(pool)}


def _epoch(at: datetime | None) -> int:
    return int(at.timestamp()) if at else 0
