"""/api/v1/projects/{id}/jobsets and their inputs."""

from __future__ import annotations

from typing import Any

import asyncpg
import attrs
from aiohttp import web

from circus.server.accounts import auth
from circus.server.api.projects import answered, resolve_project_id
from circus.server.http import params, responses, safety
from circus.server.http.errors import bad_field, conflict, not_found
from circus.server.http.keys import CONTEXT
from circus.server.http.openapi import (
    BOOL,
    DELETED,
    INT,
    PAGE_QUERY,
    STR,
    TIME,
    doc,
    nullable,
    obj,
    page_of,
)
from circus.services import projects
from circus.store import jobsets as jobset_store

INPUT_TYPES = ("string", "boolean", "nix", "path", "git")

JOBSET = obj(
    id=INT, project_id=INT, name=STR, description=STR, nix_expression=STR, flake=BOOL,
    branch=nullable(STR), enabled=INT, hidden=BOOL, check_interval=INT,
    scheduling_shares=INT, keep_evaluations=INT, declarative=BOOL,
    trigger_time=nullable(TIME), last_checked_at=nullable(TIME),
    error_message=nullable(STR), error_time=nullable(TIME), created_at=TIME, updated_at=TIME)
_JOBSET_FIELDS = dict(
    name=STR, nix_expression=STR, flake=BOOL, branch=nullable(STR),
    enabled={"oneOf": [BOOL, {"type": "integer", "minimum": 0, "maximum": 3}]},
    check_interval=INT, description=STR, scheduling_shares=INT, keep_evaluations=INT)
JOBSET_BODY = obj(required=("name",), **_JOBSET_FIELDS)
JOBSET_UPDATE = obj(required=(), **_JOBSET_FIELDS)
INPUT = obj(id=INT, jobset_id=INT, name=STR, type=STR, value=STR, created_at=TIME)
INPUT_BODY = obj(name=STR, type={"type": "string", "enum": list(INPUT_TYPES)}, value=STR)


@attrs.frozen
class JobsetSpec(projects.Jobset):
    """A jobset as /api/v1 and the dashboard's forms send it."""

    @classmethod
    def from_body(cls, body: dict[str, Any], base: projects.Jobset | None = None
                  ) -> JobsetSpec:
        old = attrs.asdict(base) if base else attrs.asdict(cls(name=""))
        expression = params.text(body, "nix_expression", old["nix_expression"])
        if not expression.strip():
            raise bad_field("nix_expression", "must not be empty")
        return cls(
            name=params.name(body, "name", base.name if base else params.REQUIRED),
            nix_expression=expression,
            flake=params.boolean(body, "flake", old["flake"]),
            branch=params.text(body, "branch", old["branch"], nullable=True) or None,
            enabled=_enabled(body, old["enabled"]),
            check_interval=params.integer(body, "check_interval", old["check_interval"]),
            description=params.text(body, "description", old["description"]),
            scheduling_shares=params.integer(body, "scheduling_shares",
                                             old["scheduling_shares"], minimum=1),
            keep_evaluations=params.integer(body, "keep_evaluations", old["keep_evaluations"]),
            hidden=old["hidden"],
        )


def _enabled(body: dict[str, Any], default: int) -> int:
    """`enabled` as a boolean, or as Hydra's state number 0-3."""
    value = body.get("enabled", default)
    if isinstance(value, bool):
        return int(value)
    return params.integer({"enabled": value}, "enabled", default, minimum=0, maximum=3)


async def resolve_jobset_id(request: web.Request, project_id: int, field: str = "id") -> int:
    raw = request.match_info[field]
    pool = request.app[CONTEXT].pool
    found = None
    if params.digits(raw) and int(raw) <= params.MAX_ID:
        row = await jobset_store.get(pool, project_id, int(raw))
        found = row["id"] if row else None
    if found is None:
        found = await jobset_store.id_by_name(pool, project_id, raw)
    if found is None:
        raise not_found(f"jobset {raw!r} in project {project_id}")
    return int(found)


@doc("List a project's jobsets", response=page_of(JOBSET), query=PAGE_QUERY,
     tags=("jobsets",))
async def list_jobsets(request: web.Request) -> web.Response:
    project_id = await resolve_project_id(request, "id")
    page = params.page(request)
    pool = request.app[CONTEXT].pool
    items = await jobset_store.page(pool, project_id, page.limit, page.offset)
    total = await jobset_store.count(pool, project_id)
    return responses.ok(responses.page(responses.rows(items), total, page.limit, page.offset))


@doc("Create a jobset", status=201, response=JOBSET, body=JOBSET_BODY,
     permission=auth.needs("create-jobset"), tags=("jobsets",))
@auth.requires(auth.needs("create-jobset"))
async def create_jobset(request: web.Request) -> web.Response:
    project_id = await resolve_project_id(request, "id")
    spec = JobsetSpec.from_body(await params.json_body(request))
    with answered():
        row = await projects.create_jobset(request.app[CONTEXT].pool, auth.principal(request),
                                           project_id, spec)
    return responses.ok(dict(row), status=201)


@doc("One jobset, by id or name", response=JOBSET, tags=("jobsets",))
async def get_jobset(request: web.Request) -> web.Response:
    project_id = await resolve_project_id(request, "project_id")
    jobset_id = await resolve_jobset_id(request, project_id)
    row = await jobset_store.get(request.app[CONTEXT].pool, project_id, jobset_id)
    if row is None:
        raise not_found(f"jobset {jobset_id}")
    return responses.ok(dict(row))


@doc("Update a jobset: the fields given change, the others stay", response=JOBSET,
     body=JOBSET_UPDATE, permission=auth.needs("update-jobset"), tags=("jobsets",),
     description="Renaming onto the name of another jobset of the project is a 409.")
@auth.requires(auth.needs("update-jobset"))
async def update_jobset(request: web.Request) -> web.Response:
    pool = request.app[CONTEXT].pool
    project_id = await resolve_project_id(request, "project_id")
    jobset_id = await resolve_jobset_id(request, project_id)
    body = await params.json_body(request)
    current = await jobset_store.get(pool, project_id, jobset_id)
    if current is None:
        raise not_found(f"jobset {jobset_id}")
    spec = JobsetSpec.from_body(body, projects.jobset_of(current))
    with answered():
        row = await projects.update_jobset(pool, auth.principal(request), project_id,
                                           jobset_id, spec)
    return responses.ok(dict(row))


@doc("Delete a jobset", response=DELETED, permission=auth.needs("delete-jobset"),
     tags=("jobsets",))
@auth.requires(auth.needs("delete-jobset"))
async def delete_jobset(request: web.Request) -> web.Response:
    project_id = await resolve_project_id(request, "project_id")
    jobset_id = await resolve_jobset_id(request, project_id)
    with answered():
        deleted = await projects.delete_jobset(request.app[CONTEXT].pool,
                                               auth.principal(request), project_id, jobset_id)
    return responses.ok({"id": deleted, "deleted": True})


def input_json(row: asyncpg.Record) -> dict[str, Any]:
    """An input as responses show it: credentials in a git input's URL masked."""
    return {**dict(row), "value": safety.shown_url(row["value"])}


@doc("List a jobset's inputs", response=page_of(INPUT), tags=("jobsets",))
async def list_inputs(request: web.Request) -> web.Response:
    project_id = await resolve_project_id(request, "project_id")
    jobset_id = await resolve_jobset_id(request, project_id, "jid")
    items = await jobset_store.inputs(request.app[CONTEXT].pool, jobset_id)
    rows = [input_json(r) for r in items]
    return responses.ok(responses.page(rows, len(rows), len(rows), 0))


@doc("Add an input to a jobset", status=201, response=INPUT, body=INPUT_BODY,
     permission=auth.ADMIN, tags=("jobsets",))
@auth.requires(auth.ADMIN)
async def create_input(request: web.Request) -> web.Response:
    project_id = await resolve_project_id(request, "project_id")
    jobset_id = await resolve_jobset_id(request, project_id, "jid")
    body = await params.json_body(request)
    name = params.name(body, "name", pattern=params.INPUT_NAME_RE)
    kind = params.text(body, "type")
    if kind not in INPUT_TYPES:
        raise bad_field("type", f"must be one of {', '.join(INPUT_TYPES)}, got {kind!r}")
    value = params.text(body, "value")
    ctx = request.app[CONTEXT]
    safety.check_inputs(auth.principal(request), [(name, kind, value)], ctx.config, "value")
    try:
        row = await jobset_store.add_input(ctx.pool, jobset_id, name, kind, value)
    except asyncpg.UniqueViolationError:
        raise conflict(f"name: an input named {name!r} already exists in this jobset") from None
    return responses.ok(input_json(row), status=201)


@doc("Delete a jobset input", response=DELETED, permission=auth.ADMIN,
     tags=("jobsets",))
@auth.requires(auth.ADMIN)
async def delete_input(request: web.Request) -> web.Response:
    project_id = await resolve_project_id(request, "project_id")
    jobset_id = await resolve_jobset_id(request, project_id, "jid")
    input_id = params.path_id(request, "id", "input")
    deleted = await jobset_store.delete_input(request.app[CONTEXT].pool, jobset_id, input_id)
    if deleted is None:
        raise not_found(f"input {input_id}")
    return responses.ok({"id": deleted, "deleted": True})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/v1/projects/{id}/jobsets", list_jobsets)
    router.add_post("/api/v1/projects/{id}/jobsets", create_jobset)
    one = "/api/v1/projects/{project_id}/jobsets/{id}"
    router.add_get(one, get_jobset)
    router.add_put(one, update_jobset)
    router.add_delete(one, delete_jobset)
    inputs = "/api/v1/projects/{project_id}/jobsets/{jid}/inputs"
    router.add_get(inputs, list_inputs)
    router.add_post(inputs, create_input)
    router.add_delete(inputs + "/{id}", delete_input)
