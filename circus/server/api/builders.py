"""/api/v1/admin/builders: remote builders (list and read: anyone, as the seed's table
says; create, update, delete: admin).

A builder shows the path of its SSH key file, never the key: the server does not read
that file, each runner host does. Unknown keys and the fields the runners report
(`health`, `slots_in_use`, ...) are refused in a body, naming the key."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from circus.domain import builders as spec
from circus.server.accounts import auth
from circus.server.http import params, responses
from circus.server.http.errors import refusals
from circus.server.http.keys import CONTEXT
from circus.server.http.openapi import (
    BOOL,
    DELETED,
    INT,
    NUM,
    STR,
    TIME,
    arr,
    doc,
    nullable,
    obj,
)
from circus.services import builders

_NAME = {"type": "string", "pattern": f"^{spec.NAME_RE.pattern}$"}
_SYSTEM = {"type": "string", "pattern": f"^{spec.SYSTEM_RE.pattern}$", "maxLength": 100}
_FEATURE = {"type": "string", "pattern": f"^{spec.FEATURE_RE.pattern}$", "maxLength": 100}
_FIELDS = dict(
    name=_NAME, ssh_uri={"type": "string", "pattern": f"^{spec.SSH_URI_PATTERN}$"},
    systems={**arr(_SYSTEM), "minItems": 1, "maxItems": spec.MAX_LIST},
    max_jobs={"type": "integer", "minimum": 1, "maximum": spec.MAX_JOBS},
    speed_factor={"type": "number", "exclusiveMinimum": True, "minimum": 0,
                  "maximum": spec.MAX_SPEED_FACTOR},
    supported_features={**arr(_FEATURE), "maxItems": spec.MAX_LIST},
    mandatory_features={**arr(_FEATURE), "maxItems": spec.MAX_LIST},
    ssh_key_file={"type": "string", "nullable": True, "pattern": spec.KEY_FILE_PATTERN,
                  "maxLength": spec.MAX_PATH},
    public_host_key={"type": "string", "pattern": spec.HOST_KEY_PATTERN}, enabled=BOOL)
BUILDER = obj(id=INT, name=STR, ssh_uri=STR, systems=arr(STR), max_jobs=INT,
              speed_factor=NUM, supported_features=arr(STR), mandatory_features=arr(STR),
              ssh_key_file=nullable(STR), public_host_key=STR, enabled=BOOL,
              declarative=BOOL, health={"type": "string", "enum": ["unknown", "up", "down"]},
              consecutive_failures=INT, disabled_until=nullable(TIME),
              last_error=nullable(STR), last_failure_at=nullable(TIME),
              last_success_at=nullable(TIME), last_probe_at=nullable(TIME),
              psi_cpu=nullable(NUM), psi_memory=nullable(NUM), slots_in_use=INT,
              created_at=TIME, updated_at=TIME)
BUILDER_BODY = {**obj(required=spec.REQUIRED, **_FIELDS), "additionalProperties": False}
BUILDER_UPDATE = {**obj(required=(), **_FIELDS), "additionalProperties": False}
_CHECKS = ("ssh_uri: ssh-ng://[user@]host or ssh://[user@]host (a bare host is stored "
           "as ssh-ng://host; no port, options or spaces). public_host_key: required, "
           "`<type> <base64>` as in the builder's ssh_host_*_key.pub (the comment is "
           "dropped). ssh_key_file: an absolute path on each runner host.")


def builder_json(row: asyncpg.Record) -> dict[str, Any]:
    return {key: row[key] for key in BUILDER["properties"]}


@doc("List remote builders, by name, with their health and slots in use",
     response=obj(items=arr(BUILDER)), tags=("builders",))
async def list_builders(request: web.Request) -> web.Response:
    found = await builders.listing(request.app[CONTEXT].pool)
    return responses.ok({"items": [builder_json(row) for row in found]})


@doc("One remote builder", response=BUILDER, tags=("builders",))
async def get_builder(request: web.Request) -> web.Response:
    builder_id = params.path_id(request, what="builder")
    with refusals():
        row = await builders.existing(request.app[CONTEXT].pool, builder_id)
    return responses.ok(builder_json(row))


@doc("Create a remote builder", status=201, response=BUILDER, body=BUILDER_BODY,
     permission=auth.needs("manage-builders"), tags=("builders",),
     description=_CHECKS + " A second builder with the same name is a 409.")
@auth.requires(auth.needs("manage-builders"))
async def create_builder(request: web.Request) -> web.Response:
    body = await params.json_body(request)
    with refusals():
        row = await builders.create(request.app[CONTEXT].pool, auth.principal(request), body)
    return responses.ok(builder_json(row), status=201)


@doc("Update a remote builder: the fields given change, the others stay",
     response=BUILDER, body=BUILDER_UPDATE, permission=auth.needs("manage-builders"),
     tags=("builders",),
     description=_CHECKS + " A new ssh_uri, public_host_key or ssh_key_file makes the "
                           "health unknown until the next probe. Renaming onto another "
                           "builder's name is a 409.")
@auth.requires(auth.needs("manage-builders"))
async def update_builder(request: web.Request) -> web.Response:
    builder_id = params.path_id(request, what="builder")
    body = await params.json_body(request)
    with refusals():
        row = await builders.update(request.app[CONTEXT].pool, auth.principal(request),
                                    builder_id, body)
    return responses.ok(builder_json(row))


@doc("Delete a remote builder", response=DELETED,
     permission=auth.needs("manage-builders"), tags=("builders",))
@auth.requires(auth.needs("manage-builders"))
async def delete_builder(request: web.Request) -> web.Response:
    builder_id = params.path_id(request, what="builder")
    with refusals():
        deleted = await builders.delete(request.app[CONTEXT].pool, auth.principal(request),
                                        builder_id)
    return responses.ok({"id": deleted, "deleted": True})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/v1/admin/builders", list_builders)
    router.add_post("/api/v1/admin/builders", create_builder)
    router.add_get("/api/v1/admin/builders/{id}", get_builder)
    router.add_put("/api/v1/admin/builders/{id}", update_builder)
    router.add_delete("/api/v1/admin/builders/{id}", delete_builder)
