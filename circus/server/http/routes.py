"""Every route of the server, a front end at a time; a new resource adds a module here.

The order matters only where URLs are shared: the REST API and accounts own `/api/v1`,
the cache owns `/nix-cache` and `/channel`, and Hydra's routes come before the
dashboard's so a shared URL is registered once (who answers it is decided by
`http/negotiation`)."""

from __future__ import annotations

from aiohttp import web

from circus.server import dashboard
from circus.server.accounts import apikeys, ldap, oauth, users
from circus.server.accounts import login as accounts
from circus.server.api import (
    admin,
    builds,
    compare,
    evaluations,
    health,
    jobsets,
    logs,
    metrics,
    news,
    products,
    projects,
    prometheus,
    search,
    setup,
)
from circus.server.cache import binary as cache
from circus.server.cache import channels
from circus.server.http import openapi
from circus.server.hydra import badges
from circus.server.hydra import routes as hydra

API = (health, projects, jobsets, evaluations, builds, logs, setup, compare, products,
       search, metrics, prometheus, admin, news, openapi)
ACCOUNTS = (accounts, users, apikeys, oauth, ldap)
CACHE = (cache, channels)
HYDRA = (badges, hydra)
DASHBOARD = (dashboard,)
RESOURCES = (*API, *ACCOUNTS, *CACHE, *HYDRA, *DASHBOARD)


def setup_routes(app: web.Application) -> None:
    for module in RESOURCES:
        module.add_routes(app.router)
