"""/api/v1/builds: the filtered list, one build with what it produced, cancel, restart."""

from __future__ import annotations

from typing import Any

import asyncpg
import structlog
from aiohttp import web

from circus.db.queries import Q
from circus.server import auth, buildstatus, params, responses
from circus.server.errors import conflict, not_found
from circus.server.keys import CONTEXT
from circus.server.projects import resolve_project_id

log = structlog.get_logger(__name__)

# `total` is exact up to this many matching rows; past it, counting would cost more than
# the page, so the answer is this cap (or the planner's estimate) with total_exact false.
COUNT_CAP = 100_000


def _filters(request: web.Request, project_id: int | None) -> tuple[Any, ...]:
    """The list parameters $1..$7 shared by every api_builds_* query."""
    state, code = None, None
    raw = params.query_text(request, "status")
    if raw is not None:
        state, code = buildstatus.parse_filter(raw)
    return (
        project_id if project_id is not None else params.query_id(request, "project_id"),
        params.query_id(request, "jobset_id"),
        params.query_id(request, "evaluation_id"),
        state, code,
        params.query_text(request, "job"),
        params.query_text(request, "system"),
    )


def _access_path(filters: tuple[Any, ...]) -> str:
    """The query whose index serves these filters best (see sql/queries/builds.sql)."""
    project, jobset, evaluation, state, code, _job, _system = filters
    if evaluation is not None:
        return "evaluation"
    if jobset is not None:
        return "jobset"
    if project is not None:
        return "project"
    if code is not None:
        return "buildstatus"
    if state in ("queued", "running"):
        return "unfinished"
    return "all"


async def _total(pool: asyncpg.Pool, path: str, filters: tuple[Any, ...]) -> tuple[int, bool]:
    if all(f is None for f in filters):
        estimate = await pool.fetchval(Q.api_builds_estimate)
        if estimate is not None and estimate > COUNT_CAP:
            return estimate, False
    counted = await pool.fetchval(Q[f"api_builds_count_{path}"], *filters, COUNT_CAP + 1)
    if counted > COUNT_CAP:
        return COUNT_CAP, False
    return counted, True


def _present(row: asyncpg.Record) -> dict[str, Any]:
    item = dict(row)
    item["status"] = buildstatus.name(item["state"], item["buildstatus"])
    return item


async def _list(request: web.Request, project_id: int | None = None) -> web.Response:
    page = params.page(request)
    filters = _filters(request, project_id)
    path = _access_path(filters)
    pool = request.app[CONTEXT].pool
    items = await pool.fetch(Q[f"api_builds_page_{path}"], *filters, page.limit, page.offset)
    total, exact = await _total(pool, path, filters)
    return responses.ok(responses.page([_present(r) for r in items], total, page.limit,
                                       page.offset, exact))


async def list_builds(request: web.Request) -> web.Response:
    return await _list(request)


async def list_project_builds(request: web.Request) -> web.Response:
    return await _list(request, await resolve_project_id(request, "id"))


async def _build(pool: asyncpg.Pool, build_id: int) -> dict[str, Any]:
    row = await pool.fetchrow(Q.api_build_get, build_id)
    if row is None:
        raise not_found(f"build {build_id}")
    return _present(row)


async def get_build(request: web.Request) -> web.Response:
    build_id = params.path_id(request, "id", "build")
    pool = request.app[CONTEXT].pool
    body = await _build(pool, build_id)
    for key, query in (("outputs", Q.api_build_outputs), ("products", Q.api_build_products),
                       ("metrics", Q.api_build_metrics), ("steps", Q.api_build_steps),
                       ("dependencies", Q.api_build_dependencies),
                       ("constituents", Q.api_build_constituents)):
        body[key] = [_with_status(r) for r in await pool.fetch(query, build_id)]
    body["evaluations"] = [r["evaluation_id"] for r in
                           await pool.fetch(Q.api_build_evaluation_ids, build_id)]
    return responses.ok(body)


def _with_status(row: asyncpg.Record) -> dict[str, Any]:
    item = dict(row)
    if "state" in item and "buildstatus" in item:
        item["status"] = buildstatus.name(item["state"], item["buildstatus"])
    return item


async def _refuse(pool: asyncpg.Pool, build_id: int, why: str) -> None:
    """The write matched no row: the build is missing (404) or in the wrong state (409)."""
    current = await _build(pool, build_id)
    raise conflict(f"build {build_id} is {current['status']}: {why}")


@auth.requires(auth.CANCEL)
async def cancel_build(request: web.Request) -> web.Response:
    build_id = params.path_id(request, "id", "build")
    pool = request.app[CONTEXT].pool
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(Q.api_build_cancel, build_id)
        if row is not None:
            failed = await conn.fetch(
                Q.api_build_fail_dependents, build_id,
                f"dependency failed: build {build_id} ({row['job']}) was cancelled")
    if row is None:
        await _refuse(pool, build_id, "only a queued or running build can be cancelled")
    log.info("build cancelled", build_id=build_id, dependents_failed=len(failed))
    return responses.ok(await _build(pool, build_id))


@auth.requires(auth.RESTART)
async def restart_build(request: web.Request) -> web.Response:
    build_id = params.path_id(request, "id", "build")
    pool = request.app[CONTEXT].pool
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(Q.api_build_restart, build_id)
        if row is not None:
            await conn.execute(Q.api_build_clear_results, build_id)
    if row is None:
        await _refuse(pool, build_id, "only a finished build can be restarted")
    log.info("build restarted", build_id=build_id)
    return responses.ok(await _build(pool, build_id))


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/v1/builds", list_builds)
    router.add_get(r"/api/v1/builds/{id:\d+}", get_build)
    router.add_post(r"/api/v1/builds/{id:\d+}/cancel", cancel_build)
    router.add_post(r"/api/v1/builds/{id:\d+}/restart", restart_build)
    router.add_get("/api/v1/projects/{id}/builds", list_project_builds)
