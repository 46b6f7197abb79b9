"""Build logs: GET /api/v1/builds/{id}/log (text, byte ranges), .../log/stream (SSE,
live), and Hydra's /build/{id}/log, /log/raw and /log/tail.

No view holds a whole log: every read goes through `circus.logstore` a page at a time
and is written out as it is read. The rules live here once and every front end (these
routes, Hydra's, the dashboard's page, its "earlier" call and its live log) calls them:
`requested_range` decides which bytes a request asks for, `window` cuts a tail that
starts at a line, `resume_offset` says where a stream goes on from. Offsets are bytes.
"""

from __future__ import annotations

import asyncio
import json
import re

import asyncpg
import attrs
import structlog
from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response

from circus.db import bus
from circus.domain import status as buildstatus
from circus.server.http import limits, params, responses
from circus.server.http.errors import ApiError, bad_field, not_found
from circus.server.http.keys import CLOSING, CONTEXT, STREAMS
from circus.server.http.openapi import doc, query
from circus.store import builds
from circus.store import logs as logstore

log = structlog.get_logger(__name__)

# NOTIFY wakes a stream at once; this timer only covers a notification lost in a reconnect
# (and notices a client that went away).
SAFETY_POLL = 5.0
# Bytes read (and held) at a time by any log reader: what a reader costs in memory.
PAGE_BYTES = 256 * 1024
# Hydra's /log/tail: its last 50 lines, from at most this much of the log's end.
TAIL_LINES = 50
TAIL_BYTES = 64 * 1024
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


@attrs.frozen
class ByteRange:
    start: int
    stop: int
    partial: bool  # asked for with a Range header: answered 206


class Unsatisfiable(ApiError):
    """A Range that starts past the end: 416, and the size in Content-Range."""

    def __init__(self, message: str, size: int) -> None:
        super().__init__(416, message)
        self.size = size


def _number(raw: str, field: str) -> int:
    if not params.digits(raw):
        raise bad_field(field, f"expected a non-negative integer, got {raw!r}")
    value = int(raw)
    if value > params.MAX_ID:
        raise bad_field(field, f"must be at most {params.MAX_ID}, got {value}")
    return value


def requested_range(request: web.Request, size: int) -> ByteRange:
    """Which bytes of a `size`-byte log the request asks for: `Range: bytes=a-b | a- | -n`
    (206), or `?offset=&limit=` (200), else all of it. Bad input: 400 naming it."""
    header = request.headers.get("Range")
    if header is not None:
        if "offset" in request.query or "limit" in request.query:
            raise bad_field("Range", "give either a Range header or offset/limit, not both")
        return _header_range(header, size)
    start = _number(request.query["offset"], "offset") if "offset" in request.query else 0
    stop = size
    if "limit" in request.query:
        stop = min(size, start + _number(request.query["limit"], "limit"))
    return ByteRange(min(start, size), max(min(start, size), stop), partial=False)


def _header_range(header: str, size: int) -> ByteRange:
    match = _RANGE.fullmatch(header.strip())
    if match is None or match.group(0) == "bytes=-":
        raise bad_field("Range", f"expected one range, bytes=FIRST-LAST, bytes=FIRST- or "
                                 f"bytes=-COUNT; got {header!r}")
    first, last = match.groups()
    if first == "":
        count = _number(last, "Range")
        if count == 0:
            raise Unsatisfiable("Range: bytes=-0 asks for no bytes", size)
        return ByteRange(max(0, size - count), size, partial=True)
    start = _number(first, "Range")
    if last != "" and _number(last, "Range") < start:
        raise bad_field("Range", f"the last byte comes before the first in {header!r}")
    if start >= size:
        raise Unsatisfiable(f"Range: the log has {size} bytes; {header!r} starts past them",
                            size)
    stop = size if last == "" else min(size, int(last) + 1)
    return ByteRange(start, stop, partial=True)


def resume_offset(request: web.Request) -> int:
    """Where a live stream starts: a reconnecting EventSource's Last-Event-ID (the byte
    offset we sent), else `?offset=`, else the start."""
    raw = request.headers.get("Last-Event-ID")
    if raw:
        return _number(raw, "Last-Event-ID")
    raw = request.query.get("offset", "")
    return _number(raw, "offset") if raw != "" else 0


def tail_start(text: str | bytes, end: int, lines: int) -> int:
    """Where the last `lines` lines before position `end` begin."""
    newline = "\n" if isinstance(text, str) else b"\n"
    pos = end
    # A trailing newline ends the last line; it does not start an empty one.
    if pos > 0 and text[pos - 1:pos] == newline:
        pos -= 1
    for _ in range(lines):
        found = text.rfind(newline, 0, pos)  # type: ignore[arg-type]
        if found < 0:
            return 0
        pos = found
    return pos + 1


@attrs.frozen
class Window:
    start: int  # byte offset of data[0], the start of a line (or of the log)
    data: bytes
    size: int  # the log's size when it was read


async def window(conn: asyncpg.Connection, build_id: int, limit: int,
                 end: int | None = None) -> Window:
    """At most `limit` bytes of the log before byte `end` (default: its end), starting
    at a line: what a tail or an "earlier part" shows."""
    found = await logstore.extent(conn, build_id)
    size = found.size if found else 0
    end = size if end is None else min(end, size)
    start = max(0, end - limit)
    # One byte more, so a cut that falls right after a newline keeps that line whole.
    reader = logstore.LogReader(build_id, pos=max(0, start - 1))
    parts = []
    while found is not None and reader.pos < end:
        piece = await reader.read(conn, min(PAGE_BYTES, end - reader.pos), found.folded)
        if not piece:
            break
        parts.append(piece)
    data = b"".join(parts)
    if start > 0:
        cut = data.find(b"\n") + 1 or 1
        start, data = start - 1 + cut, data[cut:]
    return Window(start, data, size)


def _whole_lines(data: bytes) -> int:
    """How much of a full page to hand out: up to its last newline, or (one line longer
    than a page) up to its last complete UTF-8 character."""
    cut = data.rfind(b"\n") + 1
    if cut:
        return cut
    end = len(data)
    for back in range(1, min(4, end) + 1):
        byte = data[end - back]
        if byte & 0xC0 != 0x80:  # the lead byte of the last character
            need = 1 if byte < 0x80 else 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return end if back >= need else end - back
    return end


@attrs.define
class LogCursor:
    """Reads a build's log a page at a time; `pos` is the byte offset handed out so far,
    `at_end` whether the last read reached the end of what exists."""

    build_id: int
    pos: int = 0
    at_end: bool = False
    _reader: logstore.LogReader | None = None

    async def advance(self, conn: asyncpg.Connection) -> tuple[str, asyncpg.Record | None]:
        """The next page after `pos` (whole lines), and the build's (state, buildstatus);
        None: no such build."""
        if self._reader is None:
            self._reader = logstore.LogReader(self.build_id, pos=self.pos)
        # One snapshot: the fold into build_logs and the finished state commit together.
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            snap = await logstore.state(conn, self.build_id)
            if snap is None:
                return "", None
            data = await self._reader.read(conn, PAGE_BYTES, snap["folded"])
        self.at_end = len(data) < PAGE_BYTES
        keep = len(data) if self.at_end else _whole_lines(data)
        self._reader.give_back(len(data) - keep)
        self.pos = self._reader.pos
        return data[:keep].decode("utf-8", "replace"), snap


async def _build_log_size(request: web.Request, build_id: int) -> int:
    """The log's size now (0: none yet); 404 when there is no such build."""
    pool = request.app[CONTEXT].pool
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read",
                                                        readonly=True):
        if await logstore.state(conn, build_id) is None:
            raise not_found(f"build {build_id}")
        found = await logstore.extent(conn, build_id)
    return found.size if found else 0


async def send_bytes(request: web.Request, build_id: int, wanted: ByteRange,
                     size: int) -> web.StreamResponse:
    """Write bytes [start, stop) of the log as they are read, a page (and a pooled
    connection) at a time, so neither a big log nor a slow client holds much."""
    resp = web.StreamResponse(status=206 if wanted.partial else 200)
    resp.content_type, resp.charset = "text/plain", "utf-8"
    resp.headers["Accept-Ranges"] = "bytes"
    resp.headers["X-Log-Size"] = str(size)
    if wanted.partial:
        resp.headers["Content-Range"] = f"bytes {wanted.start}-{wanted.stop - 1}/{size}"
    resp.content_length = wanted.stop - wanted.start
    await resp.prepare(request)
    reader = logstore.LogReader(build_id, pos=wanted.start)
    pool = request.app[CONTEXT].pool
    while reader.pos < wanted.stop and request.method != "HEAD":
        async with pool.acquire() as conn:
            piece = await reader.read(conn, min(PAGE_BYTES, wanted.stop - reader.pos))
        if not piece:  # deleted or restarted while we read: the client sees a short body
            log.warning("log ended before its size", build_id=build_id, at=reader.pos)
            break
        await resp.write(piece)
    await resp.write_eof()
    return resp


_RANGE_DOC = {
    "query": {"offset": query({"type": "integer", "minimum": 0}, "first byte (default 0)"),
              "limit": query({"type": "integer", "minimum": 0}, "at most this many bytes")},
    "description": "Streamed, never loaded whole. `Range: bytes=a-b`, `bytes=a-` or "
                   "`bytes=-n` (the tail) answers 206 with Content-Range; "
                   "`?offset=&limit=` answers 200. X-Log-Size: the log's size in bytes.",
    "extra": {206: ("text/plain", {"type": "string"}, "the bytes the Range asked for")},
}


@doc("A build's log so far (text, byte ranges)", content_type="text/plain",
     response={"type": "string"}, tags=("builds",), **_RANGE_DOC)
async def get_log(request: web.Request) -> web.StreamResponse:
    return await _send_log(request, params.path_id(request, "id", "build"))


async def _send_log(request: web.Request, build_id: int) -> web.StreamResponse:
    size = await _build_log_size(request, build_id)
    try:
        wanted = requested_range(request, size)
    except Unsatisfiable as exc:
        resp = responses.error(416, exc.message)
        resp.headers["Content-Range"] = f"bytes */{exc.size}"
        return resp
    return await send_bytes(request, build_id, wanted, size)


@doc("Hydra: the last lines of a build's log (text)", content_type="text/plain",
     response={"type": "string"}, tags=("hydra",))
async def hydra_log_tail(request: web.Request) -> web.Response:
    return await _send_tail(request, params.path_id(request, "id", "build"), TAIL_LINES)


async def _send_tail(request: web.Request, build_id: int, lines: int) -> web.Response:
    """The last `lines` lines that fit in the last TAIL_BYTES of the log."""
    await _build_log_size(request, build_id)
    async with request.app[CONTEXT].pool.acquire() as conn:
        found = await window(conn, build_id, TAIL_BYTES)
    text = found.data.decode("utf-8", "replace")
    return web.Response(text=text[tail_start(text, len(text), lines):],
                        content_type="text/plain", charset="utf-8")


@doc("Hydra: the log of the newest build of a derivation (text; `tail` lines)",
     content_type="text/plain", response={"type": "string"}, tags=("hydra",),
     path={"drv": {"type": "string", "pattern": r"^[0-9a-df-np-sv-z]{32}-[^/]+\.drv$",
                   "example": "0" * 32 + "-hello.drv"}},
     query={"tail": query({"type": "integer", "minimum": 0},
                          f"only the last lines (those in the last {TAIL_BYTES} bytes)")})
async def hydra_drv_log(request: web.Request) -> web.StreamResponse:
    drv_path = f"/nix/store/{request.match_info['drv']}"
    raw_tail = request.query.get("tail")
    if raw_tail is not None and not params.digits(raw_tail):
        raise bad_field("tail", f"expected a number of lines, got {raw_tail!r}")
    newest = await builds.of_drv(request.app[CONTEXT].pool, drv_path, 1)
    if not newest:
        raise ApiError(404, f"The build log of {drv_path} is not available.")
    build_id = newest[0]
    if raw_tail is not None:
        return await _send_tail(request, build_id, int(raw_tail))
    return await _send_log(request, build_id)


async def _check_step(request: web.Request, build_id: int) -> None:
    """Hydra's nixlog URLs name a step; Circus keeps one log per build (every step's
    output in order), served for any step the build has."""
    raw = request.match_info["step"]
    steps = await builds.steps(request.app[CONTEXT].pool, build_id)
    if not params.digits(raw) or int(raw) not in {row["step_nr"] for row in steps}:
        raise not_found(f"step {raw!r} of build {build_id}")


@doc("Hydra: the log of a build step (text, byte ranges)", content_type="text/plain",
     response={"type": "string"}, tags=("hydra",), **_RANGE_DOC)
async def hydra_step_log(request: web.Request) -> web.StreamResponse:
    await _check_step(request, params.path_id(request, "id", "build"))
    return await get_log(request)


@doc("Hydra: the last lines of a build step's log (text)", content_type="text/plain",
     response={"type": "string"}, tags=("hydra",))
async def hydra_step_log_tail(request: web.Request) -> web.Response:
    await _check_step(request, params.path_id(request, "id", "build"))
    return await hydra_log_tail(request)


async def _wait_for_news(sub: bus.Subscription, build_id: int) -> None:
    """Until this build's log or state may have changed, or the safety timer runs out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SAFETY_POLL
    mine = str(build_id)
    while (left := deadline - loop.time()) > 0:
        events = await sub.wait(timeout=left)
        if any(payload == mine or channel in (bus.RECONNECTED, bus.SERVER_CLOSING)
               for channel, payload in events):
            return


async def close_streams(app: web.Application) -> None:
    """End every live stream cleanly (a browser's EventSource reconnects elsewhere, from
    its Last-Event-ID) so that stopping never waits for a build to finish."""
    app[CLOSING].set()
    for sub in app[STREAMS]:
        sub.queue.put_nowait((bus.SERVER_CLOSING, ""))
    if app[STREAMS]:
        log.info("closing live log streams", count=len(app[STREAMS]))


def _done(build_id: int, snap: asyncpg.Record) -> str:
    return json.dumps({"id": build_id, "state": snap["state"],
                       "buildstatus": snap["buildstatus"],
                       "status": buildstatus.name(snap["state"], snap["buildstatus"])})


@doc("A build's log, live (server-sent events; `done` event at the end)",
     content_type="text/event-stream", response={"type": "string"}, tags=("builds",),
     query={"offset": query({"type": "integer", "minimum": 0}, "start at this byte")})
async def stream_log(request: web.Request) -> web.StreamResponse:
    """SSE: the log so far a page at a time, new lines as the runner writes them, then
    `done`. Each `message` event carries whole lines (without the last newline) and its
    id is the byte offset after it, so a reconnecting EventSource resumes where it was.
    """
    build_id = params.path_id(request, "id", "build")
    ctx = request.app[CONTEXT]
    cursor = LogCursor(build_id, pos=resume_offset(request))
    # Subscribed before the first read, so nothing written after it goes unnoticed.
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
            await sse.send(text.removesuffix("\n"), id=str(cursor.pos))
        if cursor.at_end and snap["state"] == "finished":
            await sse.send(_done(cursor.build_id, snap), event="done")
            return
        if not sse.is_connected() or app[CLOSING].is_set():
            return
        if cursor.at_end:  # caught up: wait for the runner; else read on at once
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
    # Hydra's raw log URLs (its /log page is the same text here) and its tail.
    router.add_get(r"/build/{id:\d+}/log", get_log)
    router.add_get(r"/build/{id:\d+}/log/raw", get_log)
    router.add_get(r"/build/{id:\d+}/log/tail", hydra_log_tail)
    router.add_get(r"/log/{drv:[0-9a-df-np-sv-z]{32}-[^/]+\.drv}", hydra_drv_log)
    router.add_get(r"/build/{id:\d+}/nixlog/{step:\d+}", hydra_step_log)
    router.add_get(r"/build/{id:\d+}/nixlog/{step:\d+}/raw", hydra_step_log)
    router.add_get(r"/build/{id:\d+}/nixlog/{step:\d+}/tail", hydra_step_log_tail)
