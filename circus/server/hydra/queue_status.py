"""Hydra's pages about the queue and the machines, as JSON: `/queue` (what waits, in the
order runners take it), `/status` (what builds now), `/queue-runner-status` and
`/machines`. Circus's runners build locally, so there are no machines to list yet."""

from __future__ import annotations

import time

from aiohttp import web

from circus.server.http.keys import CONTEXT
from circus.server.hydra import shapes
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
        "machines": {}})


async def machines(request: web.Request) -> web.Response:
    return web.json_response({})
