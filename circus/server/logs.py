"""Build logs: GET /api/v1/builds/{id}/log (text) and .../log/stream (SSE, live).

The log itself is read through `circus.logstore` (folded zstd log once the build
finished, else the chunks in seq order). A reader tracks what it has sent by character
offset, so it goes on seamlessly when the runner folds the chunks between two reads.
"""

from __future__ import annotations

import asyncio
import json

import asyncpg
import attrs
import structlog
from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response

from circus import logstore
from circus.db import bus
from circus.db.queries import Q
from circus.server import buildstatus, params
from circus.server.errors import not_found
from circus.server.keys import CLOSING, CONTEXT, STREAMS
from circus.server.openapi import doc

log = structlog.get_logger(__name__)

# NOTIFY wakes a stream at once; this timer only covers a notification lost in a reconnect
# (and notices a client that went away).
SAFETY_POLL = 5.0
# Put into each stream's subscription at shutdown.
_CLOSING = "circus_server_closing"


@attrs.define
class LogCursor:
    """Reads a build's log a piece at a time; `chars` is how much was handed out."""

    build_id: int
    chars: int = 0
    _seq: int = -1
    _chunk_chars: int = 0

    async def advance(self, conn: asyncpg.Connection) -> tuple[str, asyncpg.Record | None]:
        """The text after `chars`, and the build's (state, buildstatus); None: no build."""
        # One snapshot: the fold into build_logs and the finished state commit together.
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            snap = await conn.fetchrow(Q.api_build_log_state, self.build_id)
            if snap is None:
                return "", None
            if snap["folded"]:
                new = (await logstore.read_log(conn, self.build_id) or "")[self.chars:]
            else:
                new = await self._from_chunks(conn)
        self.chars += len(new)
        return new, snap

    async def _from_chunks(self, conn: asyncpg.Connection) -> str:
        chunks = await logstore.chunks_after(conn, self.build_id, self._seq)
        text = "".join(data for _seq, data in chunks)
        before = self._chunk_chars
        if chunks:
            self._seq = chunks[-1][0]
            self._chunk_chars += len(text)
        # Resuming at an offset (Last-Event-ID) inside text already read skips its start.
        return text[max(0, self.chars - before):]


@doc("A build's log so far (text)", content_type="text/plain", response={"type": "string"},
     tags=("builds",))
async def get_log(request: web.Request) -> web.Response:
    build_id = params.path_id(request, "id", "build")
    async with request.app[CONTEXT].pool.acquire() as conn:
        text, snap = await LogCursor(build_id).advance(conn)
    if snap is None:
        raise not_found(f"build {build_id}")
    return web.Response(text=text, content_type="text/plain", charset="utf-8")


def _resume_offset(request: web.Request) -> int:
    raw = request.headers.get("Last-Event-ID", "")
    return int(raw) if raw.isdigit() else 0


async def _wait_for_news(sub: bus.Subscription, build_id: int) -> None:
    """Until this build's log or state may have changed, or the safety timer runs out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SAFETY_POLL
    mine = str(build_id)
    while (left := deadline - loop.time()) > 0:
        events = await sub.wait(timeout=left)
        if any(payload == mine or channel in (bus.RECONNECTED, _CLOSING)
               for channel, payload in events):
            return


async def close_streams(app: web.Application) -> None:
    """End every live stream cleanly (a browser's EventSource reconnects elsewhere, from
    its Last-Event-ID) so that stopping never waits for a build to finish."""
    app[CLOSING].set()
    for sub in app[STREAMS]:
        sub.queue.put_nowait((_CLOSING, ""))
    if app[STREAMS]:
        log.info("closing live log streams", count=len(app[STREAMS]))


def _done(build_id: int, snap: asyncpg.Record) -> str:
    return json.dumps({"id": build_id, "state": snap["state"],
                       "buildstatus": snap["buildstatus"],
                       "status": buildstatus.name(snap["state"], snap["buildstatus"])})


@doc("A build's log, live (server-sent events; `done` event at the end)",
     content_type="text/event-stream", response={"type": "string"}, tags=("builds",))
async def stream_log(request: web.Request) -> web.StreamResponse:
    """SSE: the log so far, new lines as the runner writes them, then `done`.

    Each `message` event carries whole lines (without the last newline) and its id is the
    character offset after it, so a reconnecting EventSource resumes where it stopped.
    """
    build_id = params.path_id(request, "id", "build")
    ctx = request.app[CONTEXT]
    cursor = LogCursor(build_id, chars=_resume_offset(request))
    # Subscribed before the first read, so nothing written after it goes unnoticed.
    with ctx.bus.subscribe(bus.BUILD_LOG, bus.BUILD_CHANGED) as sub:
        request.app[STREAMS].add(sub)
        try:
            async with ctx.pool.acquire() as conn:
                text, snap = await cursor.advance(conn)
            if snap is None:
                raise not_found(f"build {build_id}")
            async with sse_response(request) as sse:
                try:
                    await _pump(sse, sub, cursor, text, snap, request.app)
                except (ConnectionResetError, TimeoutError):
                    # Gone, or stalled past the send timeout (aiohttp-sse aborted it).
                    log.debug("log stream client went away", build_id=build_id)
                return sse
        finally:
            request.app[STREAMS].discard(sub)


async def _pump(sse: EventSourceResponse, sub: bus.Subscription, cursor: LogCursor,
                text: str, snap: asyncpg.Record, app: web.Application) -> None:
    while True:
        if text:
            await sse.send(text.removesuffix("\n"), id=str(cursor.chars))
        if snap["state"] == "finished":
            await sse.send(_done(cursor.build_id, snap), event="done")
            return
        if not sse.is_connected() or app[CLOSING].is_set():
            return
        await _wait_for_news(sub, cursor.build_id)
        if app[CLOSING].is_set():
            return
        async with app[CONTEXT].pool.acquire() as conn:
            text, next_snap = await cursor.advance(conn)
        if next_snap is None:  # the build was deleted while we watched
            return
        snap = next_snap


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get(r"/api/v1/builds/{id:\d+}/log", get_log)
    router.add_get(r"/api/v1/builds/{id:\d+}/log/stream", stream_log)
