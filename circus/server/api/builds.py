"""/api/v1/builds: the filtered list (offset or keyset pages), one build and what it
produced, its steps, dependencies, dependents and constituents, stats and recent builds,
and the writes: cancel, restart, bump, keep."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from circus.domain import status as buildstatus
from circus.domain.errors import InvalidValue
from circus.server.accounts import auth
from circus.server.api.projects import resolve_project_id
from circus.server.http import params, responses
from circus.server.http.errors import bad_field, not_found, refusals
from circus.server.http.keys import ANCHORS, CONTEXT
from circus.server.http.openapi import (
    BOOL,
    INT,
    NUM,
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
from circus.services import build_actions
from circus.store import build_list, builds

log = structlog.get_logger(__name__)

RECENT_DEFAULT = 20
RECENT_MAX = 100

BUILD: dict[str, Any] = obj(
    id=INT, project_id=INT, project=STR, jobset_id=INT, jobset=STR, job=STR, nix_name=STR,
    system=STR, drv_path=STR, state=STR, buildstatus=nullable(INT),
    error_message=nullable(STR), priority=INT, global_priority=INT, is_aggregate=BOOL,
    keep=BOOL, attempts=INT, runner_id=nullable(STR), created_at=TIME,
    started_at=nullable(TIME), finished_at=nullable(TIME), status=STR)
BUILD_LINK = obj(id=INT, job=STR, state=STR, buildstatus=nullable(INT), status=STR)
BUILD_LIST = {**page_of(BUILD)}
BUILD_LIST["properties"] = {**BUILD_LIST["properties"],
                            "next_before_id": nullable(INT)}
FILTER_QUERY = {
    **PAGE_QUERY,
    "before_id": query({"type": "integer", "minimum": 1},
                       "keyset cursor: only builds with a smaller id. Pass the previous "
                       "page's `next_before_id` (with offset 0) to page stably while "
                       "builds are being added"),
    "project_id": query({"type": "integer", "minimum": 1}),
    "jobset_id": query({"type": "integer", "minimum": 1}),
    "evaluation_id": query({"type": "integer", "minimum": 1}),
    "status": query({"type": "string", "enum": buildstatus.filter_values()},
                    "queued, running, finished, a status name or a code 0-11"),
    "job": query(STR),
    "system": query(STR),
}
STEP = obj(step_nr=INT, drv_path=STR, system=STR, kind=STR, machine=STR,
           status=nullable(INT), error_message=nullable(STR), started_at=TIME,
           finished_at=nullable(TIME))
STATS = obj(total=INT, queued=INT, running=INT, finished=INT, succeeded=INT, failed=INT,
            cancelled=INT, avg_duration_seconds=nullable(NUM))


def _filters(request: web.Request, project_id: int | None) -> build_list.Filters:
    state, code = None, None
    raw = params.query_text(request, "status")
    if raw is not None:
        try:
            state, code = buildstatus.parse_filter(raw)
        except InvalidValue as exc:
            raise bad_field(exc.field, exc.problem) from exc
    return build_list.Filters(
        project_id if project_id is not None else params.query_id(request, "project_id"),
        params.query_id(request, "jobset_id"),
        params.query_id(request, "evaluation_id"),
        state, code,
        params.query_text(request, "job"),
        params.query_text(request, "system"),
    )


def _present(row: asyncpg.Record) -> dict[str, Any]:
    item = dict(row)
    item["status"] = buildstatus.name(item["state"], item["buildstatus"])
    return item


async def _list(request: web.Request, project_id: int | None = None) -> web.Response:
    page = params.page(request)
    before = params.query_id(request, "before_id")
    filters = _filters(request, project_id)
    pool = request.app[CONTEXT].pool
    items = await build_list.page(pool, filters, page.limit, page.offset, before,
                                  request.app[ANCHORS])
    total, exact = await build_list.total(pool, filters)
    body = responses.page([_present(r) for r in items], total, page.limit, page.offset, exact)
    body["next_before_id"] = items[-1]["id"] if len(items) == page.limit else None
    return responses.ok(body)


@doc("List builds, newest first (filtered; offset or keyset pages)", response=BUILD_LIST,
     query=FILTER_QUERY, tags=("builds",),
     description="`total` is exact up to 10 000 matching builds; past that it is a cap or "
                 "the planner's estimate and `total_exact` is false.")
async def list_builds(request: web.Request) -> web.Response:
    return await _list(request)


@doc("List the builds of a project (by id or name)", response=BUILD_LIST,
     query={k: v for k, v in FILTER_QUERY.items() if k != "project_id"}, tags=("builds",))
async def list_project_builds(request: web.Request) -> web.Response:
    return await _list(request, await resolve_project_id(request, "id"))


async def _build(pool: asyncpg.Pool, build_id: int) -> dict[str, Any]:
    row = await builds.get(pool, build_id)
    if row is None:
        raise not_found(f"build {build_id}")
    return _present(row)


@doc("One build with its outputs, products, metrics, steps, dependencies, constituents "
     "and evaluations", tags=("builds",),
     response={**BUILD, "properties": {
         **BUILD["properties"], "outputs": arr(obj(name=STR, path=STR)),
         "products": arr(obj(product_nr=INT, type=STR, name=STR, path=STR)),
         "metrics": arr(obj(name=STR, value=NUM, unit=STR)), "steps": arr(STEP),
         "dependencies": arr(BUILD_LINK), "constituents": arr(BUILD_LINK),
         "evaluations": arr(INT)}})
async def get_build(request: web.Request) -> web.Response:
    build_id = params.path_id(request, "id", "build")
    pool = request.app[CONTEXT].pool
    body = await _build(pool, build_id)
    for key, rows in (await builds.related(pool, build_id)).items():
        body[key] = rows if key == "evaluations" else [_with_status(r) for r in rows]
    return responses.ok(body)


def _with_status(row: Mapping[str, Any]) -> dict[str, Any]:
    item = dict(row)
    if "state" in item and "buildstatus" in item:
        item["status"] = buildstatus.name(item["state"], item["buildstatus"])
    return item


@doc("Cancel a queued or running build (queued dependents fail)", response=BUILD,
     permission=auth.CANCEL, tags=("builds",))
@auth.requires(auth.CANCEL)
async def cancel_build(request: web.Request) -> web.Response:
    build_id = params.path_id(request, "id", "build")
    pool = request.app[CONTEXT].pool
    with refusals():
        await build_actions.cancel(pool, build_id)
    return responses.ok(await _build(pool, build_id))


@doc("Queue a finished build again", response=BUILD, permission=auth.RESTART,
     tags=("builds",))
@auth.requires(auth.RESTART)
async def restart_build(request: web.Request) -> web.Response:
    build_id = params.path_id(request, "id", "build")
    pool = request.app[CONTEXT].pool
    with refusals():
        await build_actions.restart(pool, build_id)
    return responses.ok(await _build(pool, build_id))


@doc("Bump a queued build to the front of the queue", permission=auth.BUMP,
     response=BUILD, tags=("builds",),
     description="Sets its global priority one above every queued build, so the next "
                 "free runner claims it first. 409 when the build is not queued.")
@auth.requires(auth.BUMP)
async def bump_build(request: web.Request) -> web.Response:
    build_id = params.path_id(request, "id", "build")
    pool = request.app[CONTEXT].pool
    with refusals():
        await build_actions.bump(pool, build_id)
    return responses.ok(await _build(pool, build_id))


def _keep_value(request: web.Request) -> bool:
    raw = request.match_info["value"].lower()
    if raw not in ("true", "false", "1", "0"):
        raise bad_field("value", f"expected true or false, got {raw!r}")
    return raw in ("true", "1")


@doc("Keep a build (its outputs are protected from garbage collection) or stop keeping it",
     permission=auth.ADMIN, response=BUILD, tags=("builds",),
     path={"value": {"type": "string", "enum": ["true", "false"]}})
@auth.requires(auth.ADMIN)
async def keep_build(request: web.Request) -> web.Response:
    build_id = params.path_id(request, "id", "build")
    keep = _keep_value(request)
    pool = request.app[CONTEXT].pool
    with refusals():
        await build_actions.keep(pool, build_id, keep)
    return responses.ok(await _build(pool, build_id))


_SubList = Callable[[asyncpg.Pool, int], Awaitable[list[asyncpg.Record]]]


async def _sub_list(request: web.Request, rows_of: _SubList) -> web.Response:
    """A build's own small list (steps, dependencies...) as a page; 404 for no build."""
    build_id = params.path_id(request, "id", "build")
    page = params.page(request)
    pool = request.app[CONTEXT].pool
    if not await builds.exists(pool, build_id):
        raise not_found(f"build {build_id}")
    rows = [_with_status(r) for r in await rows_of(pool, build_id)]
    return responses.ok(responses.page(rows[page.offset:page.offset + page.limit], len(rows),
                                       page.limit, page.offset))


@doc("The derivations Nix built or substituted for a build", response=page_of(STEP),
     query=PAGE_QUERY, tags=("builds",))
async def list_steps(request: web.Request) -> web.Response:
    return await _sub_list(request, builds.steps)


@doc("The builds this build waits for", response=page_of(BUILD_LINK), query=PAGE_QUERY,
     tags=("builds",))
async def list_dependencies(request: web.Request) -> web.Response:
    return await _sub_list(request, builds.dependencies)


@doc("The builds that wait for this build", response=page_of(BUILD_LINK), query=PAGE_QUERY,
     tags=("builds",))
async def list_dependents(request: web.Request) -> web.Response:
    return await _sub_list(request, builds.dependents)


@doc("The constituents of an aggregate build", response=page_of(BUILD_LINK),
     query=PAGE_QUERY, tags=("builds",))
async def list_constituents(request: web.Request) -> web.Response:
    return await _sub_list(request, builds.constituents)


@doc("Build counts by outcome and the mean duration of successes", response=STATS,
     query={"project_id": query({"type": "integer", "minimum": 1}),
            "jobset_id": query({"type": "integer", "minimum": 1})}, tags=("builds",))
async def build_stats(request: web.Request) -> web.Response:
    row = await build_list.stats(request.app[CONTEXT].pool,
                                 params.query_id(request, "project_id"),
                                 params.query_id(request, "jobset_id"))
    return responses.ok(dict(row))


@doc("The most recently finished builds", response=obj(items=arr(BUILD)),
     query={"limit": query({"type": "integer", "minimum": 1},
                           f"how many (default {RECENT_DEFAULT}, at most {RECENT_MAX})")},
     tags=("builds",))
async def recent_builds(request: web.Request) -> web.Response:
    raw = request.query.get("limit", "")
    limit = RECENT_DEFAULT
    if raw != "":
        limit = min(params.page(request).limit, RECENT_MAX)
    rows = await build_list.recent(request.app[CONTEXT].pool, limit)
    return responses.ok({"items": [_present(r) for r in rows]})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/v1/builds", list_builds)
    router.add_get("/api/v1/builds/stats", build_stats)
    router.add_get("/api/v1/builds/recent", recent_builds)
    one = r"/api/v1/builds/{id:\d+}"
    router.add_get(one, get_build)
    router.add_post(one + "/cancel", cancel_build)
    router.add_post(one + "/restart", restart_build)
    router.add_post(one + "/bump", bump_build)
    router.add_put(one + "/keep/{value}", keep_build)
    router.add_get(one + "/steps", list_steps)
    router.add_get(one + "/dependencies", list_dependencies)
    router.add_get(one + "/dependents", list_dependents)
    router.add_get(one + "/constituents", list_constituents)
    router.add_get("/api/v1/projects/{id}/builds", list_project_builds)
