"""GET /api/v1/search?q=: projects and jobsets by substring, jobs by name prefix, builds
by derivation or output path prefix; and /search/quick, one short mixed list."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import asyncpg
from aiohttp import web

from circus.domain import status as buildstatus
from circus.server.http import params, responses
from circus.server.http.errors import ApiError, bad_field
from circus.server.http.keys import CONTEXT
from circus.server.http.openapi import INT, STR, TIME, arr, doc, nullable, obj, query
from circus.server.hydra import shapes
from circus.store import builds as build_rows
from circus.store import jobsets as jobset_rows
from circus.store import search as search_rows

STORE_DIR = "/nix/store/"
MAX_QUERY = 200
# Shorter texts match nearly everything: the work of a search, not an answer.
MIN_QUERY = 3
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
QUICK_LIMIT = 10
# Hydra's /search: hits per kind (projects, jobsets, jobs, outputs, derivations).
HYDRA_LIMIT = 50
HYDRA_SEARCH_RE = re.compile(r"^[a-zA-Z0-9_\-/.+]+$")
# Hydra's `query`, as hydra_query checks it.
HYDRA_QUERY = {"query": query({"type": "string", "pattern": HYDRA_SEARCH_RE.pattern,
                               "minLength": MIN_QUERY, "maxLength": MAX_QUERY},
                              "project, jobset, job or derivation name", required=True)}

PROJECT_HIT = obj(id=INT, name=STR, display_name=STR, description=STR)
JOBSET_HIT = obj(id=INT, name=STR, project_id=INT, project=STR, description=STR)
JOB_HIT = obj(job=STR, jobset_id=INT, jobset=STR, project_id=INT, project=STR)
BUILD_HIT = obj(id=INT, job=STR, jobset_id=INT, jobset=STR, project_id=INT, project=STR,
                drv_path=STR, status=STR, finished_at=nullable(TIME))
RESULTS = obj(query=STR, projects=arr(PROJECT_HIT), jobsets=arr(JOBSET_HIT),
              jobs=arr(JOB_HIT), builds=arr(BUILD_HIT))
QUICK = obj(query=STR, items=arr(obj(type=STR, id=nullable(INT), name=STR, url=STR)))
Q_PARAM = {"q": query({"type": "string", "minLength": MIN_QUERY, "maxLength": MAX_QUERY,
                       "pattern": r"\S[\s\S]+\S"},
                      "what to look for", required=True)}


def _query_text(request: web.Request) -> str:
    raw = request.query.get("q", "").strip()
    if not raw:
        raise bad_field("q", "is required")
    if not MIN_QUERY <= len(raw) <= MAX_QUERY:
        raise bad_field("q", f"must be {MIN_QUERY} to {MAX_QUERY} characters, got {len(raw)}")
    if "\x00" in raw:
        raise bad_field("q", "must not contain NUL characters")
    return raw


def _limit(request: web.Request, default: int) -> int:
    if "limit" not in request.query:
        return default
    return min(params.page(request).limit, MAX_LIMIT)


async def search_all(pool: asyncpg.Pool, text: str, limit: int) -> dict[str, Any]:
    jobs = await search_rows.jobs(pool, text, limit)
    builds: list[dict[str, Any]] = []
    path = text if text.startswith("/") else STORE_DIR + text
    for row in await search_rows.builds_by_path(pool, path, limit):
        item = dict(row)
        item["status"] = buildstatus.name(item.pop("state"), item.pop("buildstatus"))
        builds.append(item)
    return {
        "query": text,
        "projects": responses.rows(await search_rows.projects(pool, text, limit)),
        "jobsets": responses.rows(await search_rows.jobsets(pool, text, limit)),
        "jobs": responses.rows(jobs),
        "builds": builds,
    }


@doc("Search projects, jobsets, jobs (name prefix) and builds (store path prefix)",
     response=RESULTS, tags=("search",),
     query={**Q_PARAM, "limit": query({"type": "integer", "minimum": 1,
                                       "maximum": params.MAX_ID},
                                      f"per kind (default {DEFAULT_LIMIT}, at most "
                                      f"{MAX_LIMIT})")})
async def search(request: web.Request) -> web.Response:
    text = _query_text(request)
    pool = request.app[CONTEXT].pool
    return responses.ok(await search_all(pool, text, _limit(request, DEFAULT_LIMIT)))


@doc("Quick search: one short list of mixed hits with their API URLs", response=QUICK,
     query=Q_PARAM, tags=("search",))
async def quick_search(request: web.Request) -> web.Response:
    text = _query_text(request)
    found = await search_all(request.app[CONTEXT].pool, text, QUICK_LIMIT)
    items = [{"type": "project", "id": p["id"], "name": p["name"],
              "url": f"/api/v1/projects/{p['id']}"} for p in found["projects"]]
    items += [{"type": "jobset", "id": j["id"], "name": f"{j['project']}:{j['name']}",
               "url": f"/api/v1/projects/{j['project_id']}/jobsets/{j['id']}"}
              for j in found["jobsets"]]
    items += [{"type": "job", "id": None,
               "name": f"{j['project']}:{j['jobset']}:{j['job']}",
               "url": f"/api/v1/builds?jobset_id={j['jobset_id']}&job={quote(j['job'])}"}
              for j in found["jobs"]]
    items += [{"type": "build", "id": b["id"], "name": f"{b['job']} ({b['drv_path']})",
               "url": f"/api/v1/builds/{b['id']}"} for b in found["builds"]]
    return responses.ok({"query": text, "items": items[:QUICK_LIMIT]})


def hydra_query(request: web.Request) -> str:
    """Hydra's `query`, refused in Hydra's words (a 400 here, where Hydra says 500)."""
    text = request.query.get("query", "")
    if not text:
        raise ApiError(400, "Query is empty.")
    if not HYDRA_SEARCH_RE.fullmatch(text):
        raise ApiError(400, "Invalid character in query.")
    if not MIN_QUERY <= len(text) <= MAX_QUERY:
        raise ApiError(400, f"Query must be {MIN_QUERY} to {MAX_QUERY} characters long.")
    return text


async def hydra_search(pool: asyncpg.Pool, text: str) -> dict[str, Any]:
    """Hydra's /search document in a fixed number of statements (nine), each returning
    at most HYDRA_LIMIT rows, however many projects, jobsets or builds match."""
    projects = await search_rows.projects_whole(pool, text, HYDRA_LIMIT)
    jobsets = await search_rows.jobsets_whole(pool, text, HYDRA_LIMIT)
    inputs: dict[int, list[Any]] = {r["id"]: [] for r in jobsets}
    for row in await jobset_rows.inputs_of(pool, list(inputs)):
        inputs[row["jobset_id"]].append(row)
    by_job = await search_rows.latest_successes_by_job(pool, text, HYDRA_LIMIT)
    by_out = await search_rows.builds_with_output(pool, text, HYDRA_LIMIT)
    by_drv = set(await build_rows.of_drv(pool, text, HYDRA_LIMIT))
    found = set(by_job) | set(by_out)
    # One shaping of every build: its five queries run once, not per kind.
    docs = await shapes.builds(pool, sorted(found | by_drv))
    return {
        "projects": [shapes.project(r) for r in projects],
        "jobsets": [shapes.jobset(r, inputs[r["id"]]) for r in jobsets],
        "builds": [d for d in docs if d["id"] in found],
        "buildsdrv": [d for d in docs if d["id"] in by_drv],
    }


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/v1/search", search)
    router.add_get("/api/v1/search/quick", quick_search)
