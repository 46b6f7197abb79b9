"""The build page: status, steps, products, outputs, dependencies and the log.

The log opens at its tail: the last TAIL_LINES lines of at most the last TAIL_BYTES
(a 100 000-line or 200 MiB log renders its last lines, never all of it); earlier parts
load on request, MORE_BYTES at most each time; and while the build runs new lines arrive
over SSE from the same cursor and bus notifications as /api/v1/builds/{id}/log/stream,
converted from ANSI colours to HTML on the server. Offsets are bytes of the log, and
where to cut is decided by `circus.server.logs`, as for every other log view.
"""

from __future__ import annotations

import asyncio
import json

import asyncpg
import structlog
from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response

from circus.db import bus
from circus.domain import status as buildstatus
from circus.server.api import logs
from circus.server.api.logs import LogCursor, tail_start
from circus.server.dashboard import ansi
from circus.server.dashboard.view import arg, html_errors, render, viewer
from circus.server.http import limits, params
from circus.server.http.errors import bad_field, not_found
from circus.server.http.keys import CLOSING, CONTEXT, STREAMS
from circus.store import builds
from circus.store import logs as logstore
from circus.store import starred as starred_rows

__all__ = ["build", "log_before", "log_live", "tail_start"]

log = structlog.get_logger(__name__)

TAIL_LINES = 1000
TAIL_BYTES = 128 * 1024
MORE_LINES = 5000
MORE_BYTES = 512 * 1024
# A lost notification delays a stream by at most this long.
SAFETY_POLL = 5.0


def _build_id(raw: str) -> int:
    if not params.digits(raw) or not 0 < int(raw) <= params.MAX_ID:
        raise not_found(f"build {raw!r}")
    return int(raw)


async def _tail(conn: asyncpg.Connection, build_id: int, limit: int, lines: int,
                end: int | None = None) -> logs.Window:
    """The last `lines` lines of at most `limit` bytes before `end`."""
    found = await logs.window(conn, build_id, limit, end)
    cut = tail_start(found.data, len(found.data), lines)
    return logs.Window(found.start + cut, found.data[cut:], found.size)


@html_errors
async def build(request: web.Request) -> web.StreamResponse:
    build_id = _build_id(arg(request, 0, "id", "build-id"))
    lines = _lines_param(request, TAIL_LINES)
    pool = request.app[CONTEXT].pool
    row = await builds.get(pool, build_id)
    if row is None:
        raise not_found(f"build {build_id}")
    related = await builds.related(pool, build_id)
    evals = related.pop("evaluations")
    async with pool.acquire() as conn:
        tail = await _tail(conn, build_id, TAIL_BYTES, lines)
    text = tail.data.decode("utf-8", "replace")
    who = await viewer(request)
    starred = False
    if who is not None and who.user_id is not None:
        starred = await starred_rows.find(pool, who.user_id, row["jobset_id"],
                                          row["job"]) is not None
    return await render(request, "build.html", {
        "build": row, "status": buildstatus.name(row["state"], row["buildstatus"]),
        "evals": evals, "log_html": ansi.to_html(text), "log_start": tail.start,
        "log_end": tail.size, "log_lines": text.count("\n"), "starred": starred,
        "log_kib": len(tail.data) // 1024, "earlier_from": max(0, tail.start - MORE_BYTES),
        "more_lines": MORE_LINES, "more_bytes": MORE_BYTES, "tail_lines": lines, **related})


def _lines_param(request: web.Request, default: int) -> int:
    raw = request.query.get("lines", "")
    if raw == "":
        return default
    if not params.digits(raw) or int(raw) == 0:
        raise bad_field("lines", f"expected a positive number of lines, got {raw!r}")
    return min(int(raw), 10_000_000)


async def log_before(request: web.Request) -> web.Response:
    """Earlier lines of a log as HTML: those before byte `end` (default: the end), at most
    `lines` of them from at most MORE_BYTES."""
    build_id = _build_id(request.match_info["id"])
    raw_end = request.query.get("end", "")
    end = None
    if raw_end != "":
        if not params.digits(raw_end):
            raise bad_field("end", f"expected a byte offset, got {raw_end!r}")
        end = int(raw_end)
    lines = _lines_param(request, MORE_LINES)
    async with request.app[CONTEXT].pool.acquire() as conn:
        if await logstore.state(conn, build_id) is None:
            raise not_found(f"build {build_id}")
        found = await _tail(conn, build_id, MORE_BYTES, lines, end)
    return web.json_response({"html": ansi.to_html(found.data.decode("utf-8", "replace")),
                              "start": found.start})


def _state_event(build_id: int, snap: asyncpg.Record) -> str:
    return json.dumps({"id": build_id, "state": snap["state"],
                       "buildstatus": snap["buildstatus"],
                       "status": buildstatus.name(snap["state"], snap["buildstatus"])})


async def _wait(sub: bus.Subscription, build_id: int, closing: asyncio.Event) -> None:
    """Until this build's log or state may have changed (or the safety timer ends)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SAFETY_POLL
    mine = str(build_id)
    while (left := deadline - loop.time()) > 0 and not closing.is_set():
        events = await sub.wait(timeout=left)
        if any(payload == mine or channel == bus.RECONNECTED or not channel
               for channel, payload in events):
            return
        if any(channel == bus.SERVER_CLOSING for channel, _ in events):
            return


async def log_live(request: web.Request) -> web.StreamResponse:
    """SSE: `log` events carry HTML of new lines after `offset`; `state` when the build
    starts; `done` when it finished (with its status)."""
    build_id = _build_id(request.match_info["id"])
    ctx = request.app[CONTEXT]
    cursor = LogCursor(build_id, pos=logs.resume_offset(request))
    converter = ansi.Converter()
    with ctx.bus.subscribe(bus.BUILD_LOG, bus.BUILD_CHANGED) as sub:
        request.app[STREAMS].add(sub)
        try:
            async with ctx.pool.acquire() as conn:
                text, snap = await cursor.advance(conn)
            if snap is None:
                raise not_found(f"build {build_id}")
            # A stream holds a slot (capped per server and per client) for its life.
            async with limits.stream_slot(request), sse_response(request) as sse:
                try:
                    await _pump(request.app, sse, sub, cursor, converter, text, snap)
                except (ConnectionResetError, TimeoutError):
                    log.debug("dashboard log stream went away", build_id=build_id)
                return sse
        finally:
            request.app[STREAMS].discard(sub)


async def _pump(app: web.Application, sse: EventSourceResponse, sub: bus.Subscription,
                cursor: LogCursor, converter: ansi.Converter, text: str,
                snap: asyncpg.Record) -> None:
    state = snap["state"]
    await sse.send(_state_event(cursor.build_id, snap), event="state")
    while True:
        if text:
            # JSON keeps the trailing newline that SSE's line framing would drop.
            await sse.send(json.dumps({"html": converter.feed(text)}), event="log",
                           id=str(cursor.pos))
        if snap["state"] != state:
            state = snap["state"]
            await sse.send(_state_event(cursor.build_id, snap), event="state")
        if cursor.at_end and snap["state"] == "finished":
            await sse.send(_state_event(cursor.build_id, snap), event="done")
            return
        if not sse.is_connected() or app[CLOSING].is_set():
            return
        if cursor.at_end:  # caught up: wait for the runner; else read on at once
            await _wait(sub, cursor.build_id, app[CLOSING])
            if app[CLOSING].is_set():
                return
        async with app[CONTEXT].pool.acquire() as conn:
            text, next_snap = await cursor.advance(conn)
        if next_snap is None:
            return
        snap = next_snap
