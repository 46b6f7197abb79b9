"""Notifications: a project's own settings (`/api/v1/projects/{id}/notifications`, read
by anyone with secrets shown only as set, changed by admins) and the delivery queue
(`/api/v1/admin/notification-tasks`, with a retry for a failed delivery)."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from circus.server.accounts import auth
from circus.server.api.projects import resolve_project_id
from circus.server.http import params, responses
from circus.server.http.errors import refusals
from circus.server.http.keys import CONTEXT
from circus.server.http.openapi import (
    ANY,
    INT,
    PAGE_QUERY,
    STR,
    TIME,
    arr,
    doc,
    nullable,
    obj,
    page_of,
    query,
)
from circus.services import notifications

SETTINGS = obj(project_id=INT, settings=ANY, secrets_set=arr(STR), effective=ANY)
TASK = obj(id=INT, target=STR, project_id=nullable(INT), sequence_key=STR, payload=ANY,
           status=STR, attempts=INT, max_attempts=INT, next_attempt_at=TIME,
           last_error=nullable(STR), created_at=TIME, updated_at=TIME,
           done_at=nullable(TIME))
TASK_QUERY = {**PAGE_QUERY,
              "status": query({"type": "string", "enum": list(notifications.TASK_STATUSES)},
                              "only deliveries in this state"),
              "project_id": query(INT, "only this project's deliveries")}


def task_json(row: asyncpg.Record) -> dict[str, Any]:
    shown = {k: row[k] for k in TASK["properties"]}
    return shown


@doc("A project's notification settings (secrets only as set or not)", response=SETTINGS,
     tags=("notifications",))
async def get_settings(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    project_id = await resolve_project_id(request)
    with refusals():
        shown = await notifications.shown(ctx.pool, ctx.config, project_id)
    return responses.ok(shown)


@doc("Change a project's notification settings: the keys given change, null removes one",
     response=SETTINGS, body={"type": "object"}, tags=("notifications",),
     permission=auth.needs("manage-notifications"))
@auth.requires(auth.needs("manage-notifications"))
async def put_settings(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    project_id = await resolve_project_id(request)
    body = await params.json_body(request)
    with refusals():
        shown = await notifications.update(ctx.pool, ctx.config, auth.principal(request),
                                           project_id, body)
    return responses.ok(shown)


@doc("Notification deliveries, newest first", response=page_of(TASK), query=TASK_QUERY,
     permission=auth.ADMIN, tags=("admin", "notifications"))
@auth.requires(auth.ADMIN)
async def list_tasks(request: web.Request) -> web.Response:
    page = params.page(request)
    with refusals():
        items, total = await notifications.tasks(
            request.app[CONTEXT].pool, params.query_text(request, "status"),
            params.query_id(request, "project_id"), page.limit, page.offset)
    return responses.ok(responses.page([task_json(r) for r in items], total, page.limit,
                                        page.offset))


@doc("Send a failed delivery again", response=TASK, permission=auth.ADMIN,
     tags=("admin", "notifications"),
     description="409 unless the delivery failed, or when a later delivery of the same "
                 "commit status was sent already.")
@auth.requires(auth.ADMIN)
async def retry_task(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    task_id = params.path_id(request, "id", "notification task")
    with refusals():
        row = await notifications.retry(ctx.pool, ctx.config, auth.principal(request),
                                        task_id)
    return responses.ok(task_json(row))


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/v1/projects/{id}/notifications", get_settings)
    router.add_put("/api/v1/projects/{id}/notifications", put_settings)
    router.add_get("/api/v1/admin/notification-tasks", list_tasks)
    router.add_post("/api/v1/admin/notification-tasks/{id}/retry", retry_task)
