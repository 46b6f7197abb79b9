"""Every route of the server: each front end registers the URLs only it serves, and
`SHARED` lists, once, the URLs several serve (who answers JSON, who answers HTML).

A shared path is in `SHARED` with all its methods and in no front end's `add_routes`
(tests/test_negotiation.py fails on a method and path registered twice), so the order of
`RESOURCES` decides nothing.
"""

from __future__ import annotations

from aiohttp import web

from circus.server import dashboard, srht, webhooks
from circus.server.accounts import apikeys, ldap, oauth, users
from circus.server.accounts import login as accounts
from circus.server.api import (
    admin,
    builders,
    builds,
    compare,
    evaluations,
    health,
    jobsets,
    logs,
    metrics,
    news,
    notifications,
    products,
    projects,
    prometheus,
    search,
    setup,
)
from circus.server.api import webhooks as project_webhooks
from circus.server.cache import binary as cache
from circus.server.cache import channels
from circus.server.http import negotiation, openapi
from circus.server.http.negotiation import Shared
from circus.server.hydra import badges
from circus.server.hydra import routes as hydra

API = (health, projects, jobsets, evaluations, builds, logs, setup, compare, products,
       search, metrics, prometheus, admin, builders, news, project_webhooks, notifications,
       openapi)
ACCOUNTS = (accounts, users, apikeys, oauth, ldap)
CACHE = (cache, channels)
HYDRA = (badges, hydra)
DASHBOARD = (dashboard,)
WEBHOOKS = (webhooks,)
SRHT = (srht,)
RESOURCES = (*API, *ACCOUNTS, *CACHE, *HYDRA, *DASHBOARD, *WEBHOOKS, *SRHT)


_PAGE = dashboard.SHARED_PAGES
_JOB = "/job/{project}/{jobset}/{job}"
# method, path, the answer to `Accept: application/json` (or ?output=json), the answer
# to anything else (a browser's text/html, */*, no Accept); see negotiation.wants_json.
SHARED: tuple[Shared, ...] = (
    Shared("GET", "/", hydra.PROJECTS, _PAGE["/"]),
    Shared("GET", "/project/{id}", hydra.PROJECT, _PAGE["/project/{id}"]),
    Shared("PUT", "/project/{id}", hydra.PUT_PROJECT, hydra.PUT_PROJECT),
    Shared("DELETE", "/project/{id}", hydra.DELETE_PROJECT, hydra.DELETE_PROJECT),
    Shared("GET", "/jobset/{project}/{jobset}", hydra.JOBSET,
           _PAGE["/jobset/{project}/{jobset}"]),
    Shared("PUT", "/jobset/{project}/{jobset}", hydra.PUT_JOBSET, hydra.PUT_JOBSET),
    Shared("DELETE", "/jobset/{project}/{jobset}", hydra.DELETE_JOBSET, hydra.DELETE_JOBSET),
    Shared("GET", "/eval/{id}", hydra.EVAL, _PAGE["/eval/{id}"]),
    Shared("GET", "/build/{id}", hydra.BUILD, _PAGE["/build/{id}"]),
    Shared("GET", "/queue", hydra.QUEUE, _PAGE["/queue"]),
    # Hydra has no login page: a JSON client gets ours too. Hydra's POST /login itself
    # answers a form with a 302 and JSON with the user.
    Shared("GET", "/login", _PAGE["/login"], _PAGE["/login"]),
    Shared("POST", "/login", hydra.LOGIN, hydra.LOGIN),
    Shared("GET", "/logout", _PAGE["/logout"], _PAGE["/logout"]),
    Shared("POST", "/logout", hydra.LOGOUT, hydra.LOGOUT),
    # Hydra's shields.io document and redirect to its build; else the SVG and /api/v1.
    Shared("GET", _JOB + "/shield", hydra.JOB_SHIELD, badges.shield),
    Shared("GET", _JOB + "/latest", hydra.JOB_LATEST, badges.latest),
)


def setup_routes(app: web.Application) -> None:
    for module in RESOURCES:
        module.add_routes(app.router)
    negotiation.add_routes(app.router, SHARED)
