"""Channels: /api/v1/channels (CRUD, promote, nixexprs.tar.xz), the project's channel
list, and /channel/{name}/... (git-revision, binary-cache-url, store-paths.xz,
nixexprs.tar.xz) as `nix-channel` reads them. A channel with no evaluation yet is 404.

Before a channel is read, automatic promotion catches up (circus/services/promotion.py): the
runner promotes when builds finish, but an evaluation whose builds were all reused
finishes none."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from aiohttp import web

from circus.app.config import Config
from circus.server.accounts import auth
from circus.server.api.projects import resolve_project_id
from circus.server.cache.nixexprs import Job, nixexprs_tarball, store_paths_xz
from circus.server.http import params, responses
from circus.server.http.errors import ApiError, bad_field, conflict, not_found
from circus.server.http.keys import CONTEXT
from circus.server.http.openapi import (
    DELETED,
    INT,
    NAME,
    PAGE_QUERY,
    STR,
    TIME,
    doc,
    nullable,
    obj,
    page_of,
    query,
)
from circus.services import promotion
from circus.store import channels, evaluations

CHANNEL = obj(id=INT, project_id=INT, jobset_id=INT, name=STR, description=STR,
              current_evaluation_id=nullable(INT), promoted_at=nullable(TIME),
              created_at=TIME, updated_at=TIME)
_ID = {"type": "integer", "minimum": 1, "maximum": params.MAX_ID}
CREATE_BODY = obj(("name", "project_id", "jobset_id"), name=NAME, project_id=_ID,
                  jobset_id=_ID, description=STR)
UPDATE_BODY = obj((), name=NAME, description=STR)
BINARY = {"type": "string", "format": "binary"}
TAGS = ("channels",)


def _present(row: asyncpg.Record) -> dict[str, Any]:
    item = dict(row)
    item.pop("notified", None)
    item.pop("advance_after_id", None)
    return item


def _required_id(body: dict[str, Any], field: str) -> int:
    if field not in body:
        raise bad_field(field, "is required")
    return params.integer(body, field, 0, 1, params.MAX_ID)


def _duplicate(name: str) -> ApiError:
    return conflict(f"name: a channel named {name!r} already exists")


async def _channel(pool: asyncpg.Pool, channel_id: int) -> asyncpg.Record:
    await promotion.advance(pool, channel_ids=[channel_id])
    row = await channels.by_id(pool, channel_id)
    if row is None:
        raise not_found(f"channel {channel_id}")
    return row


@doc("List channels", response=page_of(CHANNEL), tags=TAGS,
     query={**PAGE_QUERY, "project_id": query(INT, "only this project's channels")})
async def list_channels(request: web.Request) -> web.Response:
    return await _list(request, params.query_id(request, "project_id"))


@doc("List a project's channels", response=page_of(CHANNEL), query=PAGE_QUERY, tags=TAGS)
async def list_project_channels(request: web.Request) -> web.Response:
    return await _list(request, await resolve_project_id(request, "id"))


async def _list(request: web.Request, project_id: int | None) -> web.Response:
    page = params.page(request)
    pool = request.app[CONTEXT].pool
    rows = await channels.page(pool, project_id, page.limit, page.offset)
    moved = await promotion.advance(pool, channel_ids=[r["id"] for r in rows])
    if moved:
        rows = await channels.page(pool, project_id, page.limit, page.offset)
    total = await channels.count(pool, project_id)
    return responses.ok(responses.page([_present(r) for r in rows], total, page.limit,
                                       page.offset))


@doc("Create a channel following a jobset", status=201, response=CHANNEL, body=CREATE_BODY,
     permission=auth.ADMIN, tags=TAGS)
@auth.requires(auth.ADMIN)
async def create_channel(request: web.Request) -> web.Response:
    body = await params.json_body(request)
    name = params.name(body)
    project_id, jobset_id = _required_id(body, "project_id"), _required_id(body, "jobset_id")
    description = params.text(body, "description", "")
    pool = request.app[CONTEXT].pool
    try:
        row = await channels.insert(pool, project_id, jobset_id, name, description)
    except asyncpg.UniqueViolationError:
        raise _duplicate(name) from None
    if row is None:
        raise not_found(f"jobset {jobset_id} of project {project_id}")
    await promotion.advance(pool, channel_ids=[row["id"]])
    return responses.ok(_present(await channels.by_id(pool, row["id"])), status=201)


@doc("One channel", response=CHANNEL, tags=TAGS)
async def get_channel(request: web.Request) -> web.Response:
    channel_id = params.path_id(request, "id", "channel")
    return responses.ok(_present(await _channel(request.app[CONTEXT].pool, channel_id)))


@doc("Rename a channel or change its description", response=CHANNEL, body=UPDATE_BODY,
     permission=auth.ADMIN, tags=TAGS)
@auth.requires(auth.ADMIN)
async def update_channel(request: web.Request) -> web.Response:
    channel_id = params.path_id(request, "id", "channel")
    pool = request.app[CONTEXT].pool
    current = await _channel(pool, channel_id)
    body = await params.json_body(request)
    name = params.name(body, "name", current["name"])
    description = params.text(body, "description", current["description"])
    try:
        row = await channels.update(pool, channel_id, name, description)
    except asyncpg.UniqueViolationError:
        raise _duplicate(name) from None
    if row is None:
        raise not_found(f"channel {channel_id}")
    return responses.ok(_present(row))


@doc("Delete a channel", response=DELETED, permission=auth.ADMIN, tags=TAGS)
@auth.requires(auth.ADMIN)
async def delete_channel(request: web.Request) -> web.Response:
    channel_id = params.path_id(request, "id", "channel")
    if not await channels.delete(request.app[CONTEXT].pool, channel_id):
        raise not_found(f"channel {channel_id}")
    return responses.ok({"id": channel_id, "deleted": True})


@doc("Point a channel at an evaluation of its jobset", response=CHANNEL,
     permission=auth.ADMIN, tags=TAGS,
     description="409 when the evaluation belongs to another jobset or did not evaluate. "
                 "Automatic promotion then only follows evaluations newer than this one.")
@auth.requires(auth.ADMIN)
async def promote(request: web.Request) -> web.Response:
    channel_id = params.path_id(request, "id", "channel")
    evaluation_id = params.path_id(request, "eval", "evaluation")
    pool = request.app[CONTEXT].pool
    channel = await channels.by_id(pool, channel_id)
    if channel is None:
        raise not_found(f"channel {channel_id}")
    evaluation = await evaluations.get(pool, evaluation_id)
    if evaluation is None:
        raise not_found(f"evaluation {evaluation_id}")
    if evaluation["jobset_id"] != channel["jobset_id"]:
        raise conflict(f"evaluation {evaluation_id} belongs to jobset "
                       f"{evaluation['jobset_id']}, channel {channel['name']!r} follows "
                       f"jobset {channel['jobset_id']}")
    if evaluation["status"] != "succeeded":
        raise conflict(f"evaluation {evaluation_id} is {evaluation['status']}: only an "
                       "evaluation that succeeded can be promoted")
    row = await channels.promote(pool, channel_id, evaluation_id)
    if row is None:
        raise not_found(f"channel {channel_id}")
    return responses.ok(_present(row))


async def _current(pool: asyncpg.Pool, channel: asyncpg.Record) -> asyncpg.Record:
    evaluation_id = channel["current_evaluation_id"]
    evaluation = None
    if evaluation_id is not None:
        evaluation = await channels.evaluation(pool, evaluation_id)
    if evaluation is None:
        raise ApiError(404, f"channel {channel['name']!r} has no evaluation yet")
    return evaluation


async def _jobs(pool: asyncpg.Pool, evaluation_id: int) -> list[Job]:
    rows = await channels.jobs(pool, evaluation_id)
    return [Job(r["job"], r["nix_name"], r["system"],
                dict(zip(r["output_names"], r["output_paths"], strict=True))) for r in rows]


async def _by_name(request: web.Request) -> asyncpg.Record:
    pool = request.app[CONTEXT].pool
    name = request.match_info["name"]
    row = await channels.by_name(pool, name)
    if row is None:
        raise not_found(f"channel {name!r}")
    return await _channel(pool, row["id"])


async def _nixexprs(request: web.Request, channel: asyncpg.Record) -> web.Response:
    pool = request.app[CONTEXT].pool
    evaluation = await _current(pool, channel)
    jobs = await _jobs(pool, evaluation["id"])
    data = await asyncio.to_thread(nixexprs_tarball, channel["name"], evaluation["id"], jobs)
    return web.Response(body=data, content_type="application/x-xz")


@doc("The channel's Nix expressions (an xz tarball of <name>/default.nix)",
     content_type="application/x-xz", response=BINARY, tags=TAGS)
async def api_nixexprs(request: web.Request) -> web.Response:
    channel_id = params.path_id(request, "id", "channel")
    pool = request.app[CONTEXT].pool
    return await _nixexprs(request, await _channel(pool, channel_id))


@doc("The channel's Nix expressions, where nix-channel looks for them",
     content_type="application/x-xz", response=BINARY, tags=TAGS)
async def channel_nixexprs(request: web.Request) -> web.Response:
    return await _nixexprs(request, await _by_name(request))


@doc("The git revision of the channel's evaluation", content_type="text/plain",
     response=STR, tags=TAGS)
async def git_revision(request: web.Request) -> web.Response:
    channel = await _by_name(request)
    evaluation = await _current(request.app[CONTEXT].pool, channel)
    return web.Response(text=evaluation["commit_hash"])


@doc("The binary cache the channel's paths come from", content_type="text/plain",
     response=STR, tags=TAGS)
async def binary_cache_url(request: web.Request) -> web.Response:
    channel = await _by_name(request)
    await _current(request.app[CONTEXT].pool, channel)
    return web.Response(text=public_cache_url(request.app[CONTEXT].config, request))


# Addresses that mean "every interface": no URL a client could use.
_WILDCARDS = frozenset(("", "0.0.0.0", "::", "[::]"))


def public_cache_url(config: Config, request: web.Request) -> str:
    """The binary cache's URL as published to clients. Never from the Host header unless
    `server.trust_host_header`: any client picks that header, and a cache in front of us
    would hand its answer to everyone. Failing both, the address the server listens on."""
    if config.cache.cache_url:
        return config.cache.cache_url
    if config.server.trust_host_header:
        return f"{request.scheme}://{request.host}/nix-cache"
    host = config.server.host
    if host in _WILDCARDS:
        raise not_found("binary-cache-url: set cache.cache_url (the server listens on "
                        f"{host or 'every interface'!r}, which is no address to publish)")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address in a URL
    return f"http://{host}:{config.server.port}/nix-cache"


@doc("The output paths of the channel's successful jobs, one a line, xz-compressed",
     content_type="application/x-xz", response=BINARY, tags=TAGS)
async def store_paths(request: web.Request) -> web.Response:
    channel = await _by_name(request)
    pool = request.app[CONTEXT].pool
    evaluation = await _current(pool, channel)
    data = await asyncio.to_thread(store_paths_xz, await _jobs(pool, evaluation["id"]))
    return web.Response(body=data, content_type="application/x-xz")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/v1/channels", list_channels)
    router.add_post("/api/v1/channels", create_channel)
    router.add_get(r"/api/v1/channels/{id:\d+}", get_channel)
    router.add_put(r"/api/v1/channels/{id:\d+}", update_channel)
    router.add_delete(r"/api/v1/channels/{id:\d+}", delete_channel)
    router.add_post(r"/api/v1/channels/{id:\d+}/promote/{eval:\d+}", promote)
    router.add_get(r"/api/v1/channels/{id:\d+}/nixexprs.tar.xz", api_nixexprs)
    router.add_get("/api/v1/projects/{id}/channels", list_project_channels)
    router.add_get("/channel/{name}/git-revision", git_revision)
    router.add_get("/channel/{name}/binary-cache-url", binary_cache_url)
    router.add_get("/channel/{name}/store-paths.xz", store_paths)
    router.add_get("/channel/{name}/nixexprs.tar.xz", channel_nixexprs)
