"""/api/v1/projects/{id}/webhooks: a project's webhooks (list; create and delete: admin).

The secret is in the answer to the create, once; it is stored sealed and never shown
again (a lost secret is replaced by deleting the webhook and creating another)."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from circus.server.accounts import auth
from circus.server.api.projects import resolve_project_id
from circus.server.http import params, responses
from circus.server.http.errors import refusals
from circus.server.http.keys import CONTEXT
from circus.server.http.openapi import DELETED, INT, STR, TIME, arr, doc, obj
from circus.services import forge

WEBHOOK = obj(id=INT, project_id=INT, forge=STR, created_at=TIME, url=STR)
CREATED = obj(id=INT, project_id=INT, forge=STR, created_at=TIME, url=STR, secret=STR)
BODY = obj(required=("forge",), forge={"type": "string", "enum": list(forge.FORGES)})


def webhook_json(row: asyncpg.Record) -> dict[str, Any]:
    return {**dict(row), "url": f"/api/v1/webhooks/{row['project_id']}/{row['forge']}"}


@doc("A project's webhooks (no secrets)", response=obj(items=arr(WEBHOOK)),
     tags=("webhooks",))
async def list_webhooks(request: web.Request) -> web.Response:
    project_id = await resolve_project_id(request)
    with refusals():
        found = await forge.webhooks(request.app[CONTEXT].pool, project_id)
    return responses.ok({"items": [webhook_json(r) for r in found]})


@doc("Create a project's webhook for a forge; the answer holds its secret, once",
     status=201, response=CREATED, body=BODY, permission=auth.needs("manage-webhooks"),
     tags=("webhooks",), description="A second webhook for the same forge is a 409.")
@auth.requires(auth.needs("manage-webhooks"))
async def create_webhook(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    project_id = await resolve_project_id(request)
    body = await params.json_body(request)
    kind = params.text(body, "forge")
    with refusals():
        row, secret = await forge.create_webhook(ctx.pool, ctx.config,
                                                 auth.principal(request), project_id, kind)
    return responses.ok({**webhook_json(row), "secret": secret}, status=201)


@doc("Delete a project's webhook", response=DELETED,
     permission=auth.needs("manage-webhooks"), tags=("webhooks",))
@auth.requires(auth.needs("manage-webhooks"))
async def delete_webhook(request: web.Request) -> web.Response:
    project_id = await resolve_project_id(request)
    webhook_id = params.path_id(request, "webhook_id", "webhook")
    with refusals():
        await forge.delete_webhook(request.app[CONTEXT].pool, auth.principal(request),
                                   project_id, webhook_id)
    return responses.ok({"id": webhook_id, "deleted": True})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/v1/projects/{id}/webhooks", list_webhooks)
    router.add_post("/api/v1/projects/{id}/webhooks", create_webhook)
    router.add_delete("/api/v1/projects/{id}/webhooks/{webhook_id}", delete_webhook)
