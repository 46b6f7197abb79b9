"""GET /health: is this server up, and can it reach its database."""

from __future__ import annotations

import asyncio
from importlib.metadata import version

import asyncpg
from aiohttp import web

from circus.server.http import responses
from circus.server.http.keys import CONTEXT
from circus.server.http.openapi import STR, doc, obj
from circus.store import metrics

# A health check must answer quickly even when the database hangs.
DB_TIMEOUT = 3.0
VERSION = version("circus-ci")


@doc("Is the server up, and can it reach its database", tags=("system",),
     response=obj(required=("status", "database", "version", "instance"), status=STR,
                  database=STR, version=STR, instance=STR, error=STR),
     extra={503: ("application/json", obj(status=STR, database=STR), "database unreachable")})
async def health(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    body = {"status": "ok", "database": "ok", "version": VERSION, "instance": ctx.instance}
    try:
        async with asyncio.timeout(DB_TIMEOUT):
            await metrics.database_answers(ctx.pool)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        body.update(status="degraded", database="error", error=str(exc) or type(exc).__name__)
        return responses.ok(body, status=503)
    return responses.ok(body)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/health", health)
