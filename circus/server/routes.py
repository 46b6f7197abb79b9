"""Every route of the server, one module per resource; a new resource adds a line."""

from __future__ import annotations

from aiohttp import web

from circus.server import builds, evaluations, health, jobsets, logs, projects

RESOURCES = (health, projects, jobsets, evaluations, builds, logs)


def setup_routes(app: web.Application) -> None:
    for module in RESOURCES:
        module.add_routes(app.router)
