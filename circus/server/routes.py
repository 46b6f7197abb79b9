"""Every route of the server, one module per resource; a new resource adds a line."""

from __future__ import annotations

from aiohttp import web

from circus.server import (
    accounts,
    admin,
    apikeys_api,
    badges,
    builds,
    cache,
    channels,
    compare,
    dashboard,
    evaluations,
    health,
    hydra,
    jobsets,
    ldap,
    logs,
    metrics,
    news,
    oauth,
    openapi,
    products,
    projects,
    prometheus,
    search,
    setup,
    users,
)

RESOURCES = (health, projects, jobsets, evaluations, builds, logs)
RESOURCES += (setup, compare, products, search, metrics, prometheus, admin, news,  # issue 3B
              badges, openapi)
RESOURCES += (accounts, users, apikeys_api, oauth, ldap)  # accounts (issue 3A)
RESOURCES += (cache, channels)  # binary cache and channels (issue 5)
RESOURCES += (hydra,)  # Hydra's JSON API on Hydra's URLs (issue 4)
RESOURCES += (dashboard,)  # the web dashboard (issue 6)


def setup_routes(app: web.Application) -> None:
    for module in RESOURCES:
        module.add_routes(app.router)
