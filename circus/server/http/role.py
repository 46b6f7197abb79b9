"""The server role: serve the HTTP API on server.host:server.port until asked to stop,
and send notifications (circus.notify.retry_queue) meanwhile."""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import web

from circus.app.context import Context
from circus.domain.errors import StartupError
from circus.notify import retry_queue as notification_queue
from circus.server.http.app import init_app

log = structlog.get_logger(__name__)

# How long requests in flight may take to finish once we stop.
SHUTDOWN_TIMEOUT = 5.0


async def run(ctx: Context) -> None:
    server = ctx.config.server
    app = await init_app(ctx)
    runner = web.AppRunner(app, handle_signals=False, access_log=None,
                           shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    try:
        site = web.TCPSite(runner, server.host, server.port)
        try:
            await site.start()
        except OSError as exc:
            raise StartupError(
                f"cannot listen on {server.host} port {server.port}: {exc.strerror}; "
                "set server.port (CIRCUS_SERVER__PORT) or stop what holds it") from None
        log.info("server listening", host=server.host, port=server.port)
        notifications = asyncio.create_task(notification_queue.run(ctx),
                                            name="server-notifications")
        stopping = asyncio.create_task(ctx.stopping.wait())
        await asyncio.wait([notifications, stopping], return_when=asyncio.FIRST_COMPLETED)
        log.info("server stopping")
        stopping.cancel()
        if notifications.done():  # it ended before we were asked to stop: its error
            notifications.result()
        await notifications
    finally:
        await runner.cleanup()
    log.info("server stopped")
