"""GET /dashboard/events: server-sent events that tell open pages (home, queue,
evaluations, a build) that builds or evaluations changed, fed by the bus. The page then
re-reads its live parts; the events carry ids only, the database stays the truth."""

from __future__ import annotations

import asyncio
import json

import structlog
from aiohttp import web
from aiohttp_sse import sse_response

from circus.app.context import Context
from circus.db import bus
from circus.server.http import limits
from circus.server.http.keys import CLOSING, CONTEXT, STREAMS

log = structlog.get_logger(__name__)

# Many builds finish at once under load: one event per this many seconds is plenty for a
# page and keeps a busy queue from flooding every browser.
COALESCE = 0.5
# Without news the stream still says so now and then, which also notices a gone client.
IDLE = 15.0


async def events(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    closing = request.app[CLOSING]
    async with limits.stream_slot(request):
        return await _stream(request, ctx, closing)


async def _stream(request: web.Request, ctx: Context, closing: asyncio.Event
                  ) -> web.StreamResponse:
    with ctx.bus.subscribe(bus.BUILD_CHANGED, bus.BUILDS_QUEUED, bus.EVAL_CHANGED) as sub:
        request.app[STREAMS].add(sub)
        try:
            async with sse_response(request) as sse:
                try:
                    await sse.send(json.dumps({"hello": True}), event="ready")
                    # A client that did not ask for a stream (a script, a probe) gets the
                    # greeting and the end rather than a request that never finishes.
                    if "text/event-stream" not in request.headers.get("Accept", ""):
                        return sse
                    while sse.is_connected() and not closing.is_set():
                        got = await sub.wait(timeout=IDLE)
                        if closing.is_set():
                            break
                        if not got:
                            continue
                        await asyncio.sleep(COALESCE)
                        while not sub.queue.empty():
                            got.append(sub.queue.get_nowait())
                        await sse.send(json.dumps(_summary(got)), event="change")
                except (ConnectionResetError, TimeoutError):
                    log.debug("dashboard event stream went away")
                return sse
        finally:
            request.app[STREAMS].discard(sub)


def _summary(got: list[tuple[str, str]]) -> dict[str, object]:
    builds = sorted({int(p) for c, p in got if c == bus.BUILD_CHANGED and p.isdigit()})
    evals = sorted({int(p) for c, p in got if c == bus.EVAL_CHANGED and p.isdigit()})
    return {"builds": builds[:200], "evaluations": evals[:200],
            "queued": any(c == bus.BUILDS_QUEUED for c, _ in got),
            "reconnected": any(c == bus.RECONNECTED for c, _ in got)}
