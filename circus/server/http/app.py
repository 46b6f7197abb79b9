"""The aiohttp application: `init_app(ctx)` builds it (aiohttp-demos/polls shape)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from circus.app.context import Context
from circus.server import dashboard, webhooks
from circus.server.api import logs
from circus.server.http import limits, safety
from circus.server.http.keys import ANCHORS, CLOSING, CONTEXT, STREAMS
from circus.server.http.middleware import access_log, bodies, errors
from circus.server.http.routes import setup_routes
from circus.server.srht import envelope as srht_envelope
from circus.store.build_list import OffsetAnchors


async def _streams(app: web.Application) -> AsyncIterator[None]:
    app[STREAMS] = set()
    app[CLOSING] = asyncio.Event()
    yield


async def init_app(ctx: Context) -> web.Application:
    app = web.Application(
        middlewares=[access_log, *safety.middlewares(ctx.config.server), srht_envelope.envelope,
                     errors,
                     limits.request_timeout, bodies],
        client_max_size=ctx.config.server.max_body_size,
    )
    app[CONTEXT] = ctx
    app[ANCHORS] = OffsetAnchors()
    app.cleanup_ctx.append(_streams)
    app.on_shutdown.append(logs.close_streams)
    safety.setup(app)
    setup_routes(app)
    dashboard.setup(app)  # the templates its pages render
    webhooks.setup(app)  # the per-project rate limits
    return app
