"""Bounds on what one request may hold: the request timeout of ordinary requests, and a
cap on long-lived streams (SSE, NARs, live logs) per server and per client address.

A view that streams wraps its streaming in `async with limits.stream_slot(request):`.
That takes a slot (or answers 503 when the server is full, 429 when this client holds
its share) and lifts `server.request_timeout`, which a stream outlives by design.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from circus.server.http import responses
from circus.server.http.errors import ApiError
from circus.server.http.keys import CONTEXT

log = structlog.get_logger(__name__)

# How long a refused client should wait: streams last minutes, so seconds is a guess.
RETRY_AFTER = 5
_TIMEOUT = web.RequestKey("request_timeout", asyncio.Timeout)


@attrs.define(eq=False)
class _Streams:
    total: int = 0
    per_client: Counter[str] = attrs.Factory(Counter)


_streams: weakref.WeakKeyDictionary[web.Application, _Streams] = weakref.WeakKeyDictionary()


def _state(app: web.Application) -> _Streams:
    state = _streams.get(app)
    if state is None:
        state = _streams[app] = _Streams()
    return state


def open_streams(app: web.Application) -> int:
    return _state(app).total


@asynccontextmanager
async def stream_slot(request: web.Request) -> AsyncIterator[None]:
    """Hold one stream slot while the body runs; raises `Refused` when none is free."""
    server = request.app[CONTEXT].config.server
    state = _state(request.app)
    # The peer address: X-Forwarded-For is the client's to write, so it is not trusted.
    client = request.remote or "unknown"
    if state.total >= server.max_streams:
        log.warning("stream refused: server full", path=request.path, open=state.total)
        raise ApiError(503, f"too many open streams on this server ({server.max_streams}, "
                            "server.max_streams); retry later", retry_after=RETRY_AFTER)
    if state.per_client[client] >= server.max_streams_per_client:
        raise ApiError(429, f"too many open streams from {client} "
                            f"({server.max_streams_per_client}, "
                            "server.max_streams_per_client); close one first",
                       retry_after=RETRY_AFTER)
    state.total += 1
    state.per_client[client] += 1
    timeout = request.get(_TIMEOUT)
    if timeout is not None:
        timeout.reschedule(None)
    try:
        yield
    finally:
        state.total -= 1
        state.per_client[client] -= 1
        if state.per_client[client] <= 0:
            del state.per_client[client]


@web.middleware
async def request_timeout(request: web.Request, handler: Handler) -> web.StreamResponse:
    """`server.request_timeout` for every request that does not take a stream slot: its
    database work is cancelled and the client told so, with a 503."""
    seconds = request.app[CONTEXT].config.server.request_timeout
    try:
        async with asyncio.timeout(seconds) as timeout:
            request[_TIMEOUT] = timeout
            return await handler(request)
    except TimeoutError:
        if not timeout.expired():
            raise  # some other timeout inside the view: not ours to answer
        log.warning("request timed out", method=request.method, path=request.path,
                    seconds=seconds)
        return responses.error(503, f"the request took longer than {seconds} s "
                                    "(server.request_timeout)", retry_after=RETRY_AFTER)
