"""A plain HTTP endpoint that receives webhooks: any server a user runs."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.helpers.suite import free_port


class Recorder:
    """A plain HTTP endpoint that keeps the JSON posted to it (the generic webhook's
    receiver: any server a user runs)."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> Recorder:
        async def take(request: web.Request) -> web.Response:
            self.bodies.append(await request.json())
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/{tail:.*}", take)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def close(self) -> None:
        if self.runner:
            await self.runner.cleanup()
