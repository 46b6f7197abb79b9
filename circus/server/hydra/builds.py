"""Hydra's builds, evaluations and jobs: `/build/{id}` and its actions, `/eval/{id}` and
its actions, `/job/.../latest*` and the shield, `/search`, `/api/latestbuilds`,
`/api/queue` and `/api/nrbuilds`.

The actions answer as Hydra does, with a 302 back to the build (or evaluation); what
Hydra refuses with a 500 is a 400 here with Hydra's text.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from circus.domain.errors import Conflict
from circus.domain.status import ABORTED_CODES, FAILED_CODES, BuildStatus
from circus.server.accounts import auth
from circus.server.api import search as search_api
from circus.server.http import params
from circus.server.http.errors import ApiError, refusals
from circus.server.http.keys import CONTEXT
from circus.server.hydra import shapes
from circus.server.hydra.body import bad, q
from circus.server.hydra.dispatch import Handler, require
from circus.server.hydra.projects import absolute
from circus.services import build_actions, downloads
from circus.store import build_list, builds, jobs
from circus.store import evaluations as evaluation_rows

log = structlog.get_logger(__name__)


def _id(request: web.Request, field: str, what: str) -> int:
    raw = request.match_info[field]
    if not params.digits(raw) or int(raw) > 2**62:
        raise ApiError(404, f"{what} with ID {raw} doesn't exist.")
    return int(raw)


async def _one_build(pool: asyncpg.Pool, build_id: int) -> dict[str, Any]:
    found = await shapes.builds(pool, [build_id])
    if not found:
        raise ApiError(404, f"Build with ID {build_id} doesn't exist.")
    return found[0]


async def get_build(request: web.Request) -> web.Response:
    pool = request.app[CONTEXT].pool
    return web.json_response(await _one_build(pool, _id(request, "id", "Build")))


async def build_constituents(request: web.Request) -> web.Response:
    pool = request.app[CONTEXT].pool
    build_id = _id(request, "id", "Build")
    await _one_build(pool, build_id)
    ids = [r["id"] for r in await builds.constituents(pool, build_id)]
    return web.json_response(await shapes.builds(pool, ids))


async def _bumped(pool: asyncpg.Pool, build_id: int) -> bool:
    try:
        await build_actions.bump(pool, build_id)
    except Conflict:
        return False
    return True


async def _restarted(pool: asyncpg.Pool, build_id: int) -> bool:
    return bool(await build_actions.restart_all(pool, [build_id]))


async def _cancelled(pool: asyncpg.Pool, build_id: int) -> bool:
    return bool(await build_actions.cancel_all(pool, [build_id]))


def _build_action(permission: str, act: Callable[[asyncpg.Pool, int], Awaitable[bool]],
                  refused: str) -> Handler:
    """`/build/{id}/<action>`: Hydra's 404 for no build, its sentence (`refused`) when the
    action does not fit the build's state, a 302 back to the build when done."""

    async def action(request: web.Request) -> web.StreamResponse:
        await require(request, permission)  # before the id: strangers learn nothing
        build_id = _id(request, "id", "Build")
        pool = request.app[CONTEXT].pool
        await _one_build(pool, build_id)
        if not await act(pool, build_id):
            raise bad(refused)
        log.info("hydra build action", build_id=build_id, action=permission)
        raise web.HTTPFound(absolute(request, f"/build/{build_id}"))

    return action


restart_build = _build_action(auth.RESTART, _restarted, "This build cannot be restarted.")
cancel_build = _build_action(auth.CANCEL, _cancelled, "Build has already finished.")
bump_build = _build_action(auth.BUMP, _bumped, "This build is not queued.")


async def keep_build(request: web.Request) -> web.StreamResponse:
    """`/build/{id}/keep/{0|1}`: keep its outputs from garbage collection, or stop."""
    await require(request, auth.ADMIN)
    build_id = _id(request, "id", "Build")
    value = request.match_info["value"]
    if value not in ("0", "1"):
        raise bad("The keep flag must be 0 or 1.")
    pool = request.app[CONTEXT].pool
    await _one_build(pool, build_id)
    await build_actions.keep(pool, build_id, value == "1")
    raise web.HTTPFound(absolute(request, f"/build/{build_id}"))


async def _eval_row(pool: asyncpg.Pool, request: web.Request) -> asyncpg.Record:
    eval_id = _id(request, "id", "Evaluation")
    row = await evaluation_rows.get(pool, eval_id)
    if row is None:
        raise ApiError(404, f"Evaluation {eval_id} doesn't exist.")
    return row


async def eval_store_paths(request: web.Request) -> web.Response:
    """The output paths of the evaluation's successful builds, sorted, each once."""
    pool = request.app[CONTEXT].pool
    row = await _eval_row(pool, request)
    ids = await evaluation_rows.build_ids(pool, row["id"])
    succeeded = [b["id"] for b in await builds.by_ids(pool, ids)
                 if b["state"] == "finished" and b["buildstatus"] == BuildStatus.SUCCEEDED]
    outputs = await builds.outputs(pool, succeeded)
    paths = {o["path"] for build_id in succeeded for o in outputs[build_id]}
    return web.json_response(sorted(paths))


async def download(request: web.Request) -> web.StreamResponse:
    """`/build/{id}/download/{nr}[/{path}]`: a product's file, by the one download rule."""
    build_id = _id(request, "id", "Build")
    nr = request.match_info["nr"]
    if not params.digits(nr) or int(nr) >= 2**31:
        raise ApiError(404, f"Build doesn't have a product #{nr}.")
    with refusals():
        target = await downloads.product_file(request.app[CONTEXT].pool, build_id, int(nr),
                                              request.match_info.get("path") or None)
    return web.FileResponse(target, headers={"Content-Type": "application/octet-stream"})


async def get_eval(request: web.Request) -> web.Response:
    pool = request.app[CONTEXT].pool
    row = await _eval_row(pool, request)
    return web.json_response((await shapes.evaluations(pool, [row]))[0])


async def eval_builds(request: web.Request) -> web.Response:
    pool = request.app[CONTEXT].pool
    row = await _eval_row(pool, request)
    ids = await evaluation_rows.build_ids(pool, row["id"])
    return web.json_response(await shapes.builds(pool, ids))


async def _eval_action(request: web.Request, permission: str, what: str) -> web.Response:
    await require(request, permission)
    pool = request.app[CONTEXT].pool
    row = await _eval_row(pool, request)
    ids = await evaluation_rows.build_ids(pool, row["id"])
    if what == "cancel":
        done = await build_actions.cancel_all(pool, ids)
    elif what == "bump":
        done = await build_actions.bump_all(pool, ids)
    else:
        done = await build_actions.restart_all(
            pool, ids, FAILED_CODES if what == "restart-failed" else ABORTED_CODES)
    log.info("hydra evaluation action", evaluation_id=row["id"], action=what, builds=len(done))
    raise web.HTTPFound(absolute(request, f"/eval/{row['id']}"))


async def cancel_eval(request: web.Request) -> web.Response:
    return await _eval_action(request, auth.CANCEL, "cancel")


async def restart_failed_eval(request: web.Request) -> web.Response:
    return await _eval_action(request, auth.RESTART, "restart-failed")


async def restart_aborted_eval(request: web.Request) -> web.Response:
    return await _eval_action(request, auth.RESTART, "restart-aborted")


async def bump_eval(request: web.Request) -> web.Response:
    return await _eval_action(request, auth.BUMP, "bump")


def _job(request: web.Request) -> tuple[str, str, str]:
    info = request.match_info
    return info["project"], info["jobset"], info["job"]


async def _latest(request: web.Request, system: str | None, finished: bool) -> web.Response:
    names = _job(request)
    found = await jobs.latest_success(request.app[CONTEXT].pool, names, system, finished)
    if found is None:
        raise ApiError(404, f"No successful build of job {q(names[2])} found.")
    raise web.HTTPFound(absolute(request, f"/build/{found}"))


async def job_latest(request: web.Request) -> web.Response:
    return await _latest(request, None, False)


async def job_latest_finished(request: web.Request) -> web.Response:
    return await _latest(request, None, True)


async def job_latest_for(request: web.Request) -> web.Response:
    return await _latest(request, request.match_info["system"], False)


async def _channel_build(request: web.Request) -> int:
    """Hydra's custom channel: the newest successful build of the job it is named for."""
    info = request.match_info
    names = (info["project"], info["jobset"], info["channel"])
    found = await jobs.latest_success(request.app[CONTEXT].pool, names, None, False)
    if found is None:
        raise ApiError(404, f"Channel {info['channel']} either doesn't exist or was never "
                            "built successfully.")
    return found


async def channel_product(request: web.Request) -> web.Response:
    """`/channel/custom/{project}/{jobset}/{channel}/{name}`: to the download of the
    channel build's `channel` product of that name, as Hydra redirects."""
    build_id = await _channel_build(request)
    name = request.match_info["product"]
    products = (await builds.products(request.app[CONTEXT].pool, [build_id]))[build_id]
    found = next((p for p in products if p["type"] == "channel" and p["name"] == name), None)
    if found is None:
        raise ApiError(404, f"Channel {request.match_info['channel']} has no product "
                            f"{q(name)}.")
    raise web.HTTPFound(absolute(
        request, f"/build/{build_id}/download/{found['product_nr']}/{name}"))


async def channel_cache_url(request: web.Request) -> web.Response:
    """The binary cache a custom channel's paths come from: this server, at its root."""
    await _channel_build(request)
    return web.Response(text=absolute(request, "/"), content_type="text/plain")


async def job_shield(request: web.Request) -> web.Response:
    """A shields.io endpoint document (https://shields.io/endpoint), as Hydra's."""
    names = _job(request)
    pool = request.app[CONTEXT].pool
    if await jobs.latest_build(pool, names) is None:
        raise ApiError(404, f"Job {q(names[2])} doesn't exist.")
    finished = await jobs.latest_finished_build(pool, names)
    status = None if finished is None else finished["buildstatus"]
    message, colour = {None: ("queued", "lightgrey"),
                       BuildStatus.SUCCEEDED: ("passing", "green"),
                       BuildStatus.CANCELLED: ("cancelled", "lightgrey"),
                       }.get(status, ("failing", "red"))
    return web.json_response({"schemaVersion": 1, "label": "hydra build",
                              "message": message, "color": colour})


async def search(request: web.Request) -> web.Response:
    # Bounded in one place (api/search.py): a minimum length, rows and statements per call.
    text = search_api.hydra_query(request)
    return web.json_response(await search_api.hydra_search(request.app[CONTEXT].pool, text))


def _nr(request: web.Request, default: int, maximum: int) -> int:
    raw = request.query.get("nr", str(default))
    if not params.digits(raw) or not 0 < int(raw) <= maximum:
        raise bad(f"Parameter \u2018nr\u2019 must be a number between 1 and {maximum}.")
    return int(raw)


async def latest_builds(request: web.Request) -> web.Response:
    nr = _nr(request, 10, 1000)
    q = request.query
    pool = request.app[CONTEXT].pool
    ids = await build_list.latest_finished_ids(pool, nr, q.get("project"), q.get("jobset"),
                                               q.get("job"), q.get("system"))
    return web.json_response(await shapes.listed_builds(pool, ids))


async def queue(request: web.Request) -> web.Response:
    nr = _nr(request, 100, 10000)
    pool = request.app[CONTEXT].pool
    ids = await build_list.unfinished_ids(pool, nr)
    return web.json_response(await shapes.listed_builds(pool, ids))


async def nr_builds(request: web.Request) -> web.Response:
    period = request.query.get("period", "hour")
    if period not in ("hour", "day", "month"):
        raise bad("Parameter \u2018period\u2019 must be one of hour, day, month.")
    nr = _nr(request, 24, 1000)
    q = request.query
    counts = await build_list.finished_per_period(request.app[CONTEXT].pool, period, nr,
                                                  q.get("project"), q.get("jobset"),
                                                  q.get("job"))
    return web.json_response(counts)
