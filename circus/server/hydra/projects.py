"""Hydra's projects and jobsets: `/`, `/project/{id}`, `/jobset/{project}/{jobset}`,
its evaluations, `/api/jobsets` and `/api/push`.

Circus evaluates one repository per project, Hydra one per jobset input. A Hydra
project therefore starts with no repository, and the first jobset that names one (its
flake, or the git input holding its Nix expression) gives it; another jobset of the
project on another repository is refused with the reason.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from circus.domain.errors import Conflict, Forbidden, NotFound
from circus.server.accounts import auth
from circus.server.http import params, safety
from circus.server.http.errors import ApiError, refusals
from circus.server.http.keys import CONTEXT
from circus.server.hydra import shapes
from circus.server.hydra.body import INPUT_NAME_RE, NAME_RE, bad, flag, number, q, read, text
from circus.server.hydra.dispatch import principal, require
from circus.services import evaluations as evaluation_requests
from circus.services import forge, forge_events, projects, sources
from circus.store import evaluations
from circus.store import jobsets as jobset_store
from circus.store import projects as project_store

log = structlog.get_logger(__name__)

INPUT_TYPES = ("boolean", "git", "nix", "path", "string")
EVALS_PER_PAGE = 20


def absolute(request: web.Request, path: str) -> str:
    return str(request.url.origin()) + path


def project_missing(name: str) -> ApiError:
    return ApiError(404, f"Project {q(name)} doesn't exist.")


def jobset_missing(name: str) -> ApiError:
    return ApiError(404, f"Jobset {q(name)} doesn't exist.")


async def list_projects(request: web.Request) -> web.Response:
    rows = await project_store.all_with_jobsets(request.app[CONTEXT].pool)
    return web.json_response([shapes.project(r) for r in rows])


async def get_project(request: web.Request) -> web.Response:
    name = request.match_info["id"]
    row = await project_store.by_name(request.app[CONTEXT].pool, name)
    if row is None:
        raise project_missing(name)
    return web.json_response(shapes.project(row))


@contextlib.contextmanager
def _answered(kind: str, name: str) -> Iterator[None]:
    """A project/jobset operation's refusal in Hydra's words (its 403s, 404s, 409s)."""
    try:
        yield
    except Forbidden as exc:
        raise ApiError(403, str(exc)) from None
    except NotFound:
        raise (project_missing(name) if kind == "project" else jobset_missing(name)) from None
    except Conflict:
        raise ApiError(409, f"A {kind} named {q(name)} already exists.") from None
    except sources.SourceRefused as exc:
        raise ApiError(400, f"{exc.field}: {exc.problem}") from None


async def put_project(request: web.Request) -> web.Response:
    name = request.match_info["id"]
    ctx = request.app[CONTEXT]
    exists = await project_store.by_name(ctx.pool, name)
    who = await principal(request)
    with _answered("project", name):
        projects.authorize(who, "update-project" if exists else "create-project")
    body = await read(request)
    new_name = text(body, "name", name) or name
    for candidate in (name, new_name):
        if not NAME_RE.fullmatch(candidate):
            raise bad(f"Invalid project identifier {q(candidate)}.")
    before = projects.project_of(exists) if exists else None
    project = projects.Project(
        name=new_name, repository_url=before.repository_url if before else "",
        display_name=text(body, "displayname", before.display_name if before else new_name),
        description=text(body, "description", before.description if before else ""),
        homepage=text(body, "homepage", before.homepage if before else ""),
        enabled=flag(body, "enabled", before.enabled if before else True),
        # Hydra has no pull request settings: what /api/v1 set stays.
        pull_requests=before.pull_requests if before else False,
        fork_pull_requests=before.fork_pull_requests if before else False)
    policy = sources.Policy.of(ctx.config)
    with _answered("project", new_name):
        if exists and before:
            await projects.update_project(ctx.pool, who, policy, exists["id"], project, before)
        else:
            await projects.create_project(ctx.pool, who, policy, project)
    uri = absolute(request, f"/project/{new_name}")
    if exists:
        return web.json_response({"redirect": uri})
    return web.json_response({"redirect": uri, "uri": uri, "name": new_name, "type": "project"},
                             status=201, headers={"Location": uri})


async def delete_project(request: web.Request) -> web.Response:
    name = request.match_info["id"]
    who = await principal(request)
    with _answered("project", name):
        projects.authorize(who, "delete-project")
        found = await project_store.by_name(request.app[CONTEXT].pool, name)
        if found is None:
            raise NotFound(name)
        await projects.delete_project(request.app[CONTEXT].pool, who, found["id"])
    return web.json_response({"redirect": absolute(request, "/")})


async def _jobset_json(pool: asyncpg.Pool, row: asyncpg.Record) -> dict[str, Any]:
    inputs = await jobset_store.inputs_of(pool, [row["id"]])
    # Credentials inside URLs are masked alike, so the shape still finds the main input.
    shown = {**dict(row), "repository_url": safety.shown_url(row["repository_url"])}
    return shapes.jobset(shown, [{**dict(i), "value": safety.shown_url(i["value"])}
                                       for i in inputs])


async def get_jobset(request: web.Request) -> web.Response:
    project, name = request.match_info["project"], request.match_info["jobset"]
    pool = request.app[CONTEXT].pool
    row = await jobset_store.by_names(pool, project, name)
    if row is None:
        if await project_store.by_name(pool, project) is None:
            raise project_missing(project)
        raise jobset_missing(name)
    return web.json_response(await _jobset_json(pool, row))


def _inputs(body: dict[str, Any]) -> list[tuple[str, str, str]]:
    raw = body.get("inputs") or {}
    if not isinstance(raw, dict):
        raise bad("Invalid value for \u2018inputs\u2019: expected an object of inputs by name.")
    out = []
    for name, spec in raw.items():
        if not INPUT_NAME_RE.fullmatch(name):
            raise bad(f"Invalid input name {q(name)}.")
        if not isinstance(spec, dict):
            raise bad(f"Invalid input {q(name)}: expected an object with type and value.")
        kind = text(spec, "type")
        if kind not in INPUT_TYPES:
            raise bad(f"Invalid input type {q(kind)}; valid types: {', '.join(INPUT_TYPES)}.")
        out.append((name, kind, text(spec, "value")))
    return out


def _source(body: dict[str, Any], inputs: list[tuple[str, str, str]]
            ) -> tuple[bool, str, str | None, str]:
    """(flake, repository URL, branch, Nix expression) of a jobset PUT."""
    kind = number(body, "type", 0, 0, 1)
    if kind == 1:
        flake = text(body, "flake").strip()
        if not flake:
            raise bad("Flake URI is required for a flake jobset (type 1).")
        url, branch = shapes.parse_flake(flake)
        return True, url, branch, "hydraJobs"
    input_name = text(body, "nixexprinput")
    path = text(body, "nixexprpath").strip()
    if not INPUT_NAME_RE.fullmatch(input_name):
        raise bad(f"Invalid Nix expression input name {q(input_name)}.")
    if not path or path.startswith("/") or ".." in path.split("/"):
        raise bad(f"Invalid Nix expression path {q(path)}.")
    named = {name: (kind_, value) for name, kind_, value in inputs}
    if input_name not in named:
        raise bad(f"The Nix expression input {q(input_name)} is not one of the jobset's inputs.")
    kind_, value = named[input_name]
    words = value.split()
    if kind_ != "git" or not words:
        raise bad(f"The Nix expression input {q(input_name)} must be a git input "
                  "(\u201cURL [branch]\u201d): Circus evaluates from a git checkout.")
    return False, words[0], words[1] if len(words) > 1 else None, path


async def put_jobset(request: web.Request) -> web.Response:
    project, name = request.match_info["project"], request.match_info["jobset"]
    ctx = request.app[CONTEXT]
    pool = ctx.pool
    who = await principal(request)
    with _answered("jobset", name):
        projects.authorize(who, "create-jobset")  # before anything is looked up
    owner = await project_store.by_name(pool, project)
    if owner is None:
        raise project_missing(project)
    exists = await jobset_store.by_names(pool, project, name)
    with _answered("jobset", name):
        projects.authorize(who, "update-jobset" if exists else "create-jobset")
    if not NAME_RE.fullmatch(name):
        raise bad(f"Invalid jobset identifier {q(name)}.")
    body = await read(request)
    current = owner["repository_url"]
    inputs = _unmasked(_inputs(body), current)
    flake, url, branch, expression = _source(body, inputs)
    if current and url == safety.shown_url(current):
        url = current  # a client sending back the masked URL it read means the same one
    # The same rules as /api/v1: the URL check, repointing and inputs need administer.
    safety.check_git_url(url, ctx.config)
    safety.check_repository_change(who, current, url)
    safety.check_inputs(who, _extra_inputs(inputs, url, flake, body), ctx.config)
    others = await jobset_store.count_others(pool, owner["id"], name)
    if current and current != url and others:
        raise bad(f"Project {q(project)} evaluates {q(current)}: Circus evaluates one "
                  f"repository per project, so put a jobset on {q(url)} in its own project.")
    enabled = body.get("enabled", 1)
    enabled = (1 if enabled else 0) if isinstance(enabled, bool) else number(
        body, "enabled", 1, 0, 3)
    jobset = projects.Jobset(
        name=name, description=text(body, "description"), nix_expression=expression,
        flake=flake, branch=branch, enabled=enabled, hidden=not flag(body, "visible", True),
        check_interval=number(body, "checkinterval", 300, 0),
        scheduling_shares=number(body, "schedulingshares", 100, 1),
        keep_evaluations=number(body, "keepnr", 3, 0))
    with _answered("jobset", name):
        _, created = await projects.put_jobset(
            pool, who, owner["id"], exists["id"] if exists else None, jobset,
            [] if flake else inputs, url if current != url else None)
    uri = absolute(request, f"/jobset/{project}/{name}")
    if not created:
        return web.json_response({"redirect": uri})
    return web.json_response({"redirect": uri, "uri": uri, "name": name, "type": "jobset"},
                             status=201, headers={"Location": uri})


def _unmasked(inputs: list[tuple[str, str, str]], current: str | None
              ) -> list[tuple[str, str, str]]:
    """Inputs with the project's URL as GET showed it (credentials masked) put back."""
    shown = safety.shown_url(current)
    if not current or shown == current:
        return inputs
    out = []
    for name, kind, value in inputs:
        words = value.split()
        if kind == "git" and words[:1] == [shown]:
            value = " ".join([current, *words[1:]])
        out.append((name, kind, value))
    return out


def _extra_inputs(inputs: list[tuple[str, str, str]], url: str, flake: bool,
                  body: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The inputs beyond the one holding the Nix expression, which only names the
    project's repository (checked as such): what /api/v1 would need an admin to add."""
    if flake:
        return []  # a flake jobset keeps no inputs
    main = text(body, "nixexprinput")
    return [i for i in inputs if not (i[0] == main and i[2].split()[:1] == [url])]


async def delete_jobset(request: web.Request) -> web.Response:
    project, name = request.match_info["project"], request.match_info["jobset"]
    who = await principal(request)
    pool = request.app[CONTEXT].pool
    with _answered("jobset", name):
        projects.authorize(who, "delete-jobset")
        found = await jobset_store.by_names(pool, project, name)
        if found is None:
            raise NotFound(name)
        await projects.delete_jobset(pool, who, found["project_id"], found["id"])
    return web.json_response({"redirect": absolute(request, f"/project/{project}")})


async def _jobset_id(pool: asyncpg.Pool, project: str, name: str) -> int:
    row = await jobset_store.by_names(pool, project, name)
    if row is None:
        raise jobset_missing(name)
    found: int = row["id"]
    return found


async def jobset_evals(request: web.Request) -> web.Response:
    pool = request.app[CONTEXT].pool
    jobset_id = await _jobset_id(pool, request.match_info["project"],
                                 request.match_info["jobset"])
    page = _page(request)
    total = await evaluations.finished_count(pool, jobset_id)
    rows = await evaluations.finished_page(pool, jobset_id, EVALS_PER_PAGE,
                                           (page - 1) * EVALS_PER_PAGE)
    last = max(1, -(-total // EVALS_PER_PAGE))
    doc: dict[str, Any] = {"evals": await shapes.evaluations(pool, rows),
                           "first": "?page=1", "last": f"?page={last}"}
    if page > 1:
        doc["previous"] = f"?page={page - 1}"
    if page < last:
        doc["next"] = f"?page={page + 1}"
    return web.json_response(doc)


def _page(request: web.Request) -> int:
    """Hydra's `page` (from 1; anything else is the first page)."""
    raw = request.query.get("page", "1")
    return int(raw) if params.digits(raw) and 0 < int(raw) < 10**6 else 1


async def all_evals(request: web.Request) -> web.Response:
    """Hydra's /evals: every jobset's evaluations that brought new builds, a page of 20."""
    pool = request.app[CONTEXT].pool
    offset = (_page(request) - 1) * EVALS_PER_PAGE
    rows = await evaluations.with_new_builds_page(pool, EVALS_PER_PAGE, offset)
    return web.json_response(await shapes.eval_summaries(pool, rows))


async def latest_eval(request: web.Request) -> web.Response:
    project, name = request.match_info["project"], request.match_info["jobset"]
    pool = request.app[CONTEXT].pool
    await _jobset_id(pool, project, name)
    found = await evaluations.latest_succeeded_id(pool, project, name)
    if found is None:
        raise ApiError(404, f"Jobset {q(name)} has no finished evaluation.")
    raise web.HTTPFound(absolute(request, f"/eval/{found}"))


async def api_jobsets(request: web.Request) -> web.Response:
    project = request.query.get("project")
    if not project:
        raise bad("Missing parameter \u2018project\u2019.")
    pool = request.app[CONTEXT].pool
    if await project_store.by_name(pool, project) is None:
        raise project_missing(project)
    rows = await jobset_store.overview(pool, project)
    return web.json_response([shapes.overview(r) for r in rows])


async def api_push(request: web.Request) -> web.Response:
    await require(request, auth.TRIGGER)
    wanted = [j for j in request.query.get("jobsets", "").split(",") if j.strip()]
    triggered = await evaluation_requests.request_by_labels(request.app[CONTEXT].pool, wanted)
    # force=1 asks Hydra to evaluate even unchanged inputs; the Circus evaluator already
    # does for a triggered jobset whose last evaluation failed, and skips otherwise.
    log.info("hydra push", jobsets=triggered, force=request.query.get("force"))
    return web.json_response({"jobsetsTriggered": triggered})


async def push_github(request: web.Request) -> web.Response:
    return await _push_forge(request, "github")


async def push_gitea(request: web.Request) -> web.Response:
    return await _push_forge(request, "gitea")


async def _push_forge(request: web.Request, kind: str) -> web.Response:
    """Hydra's push-github/push-gitea: GitHub's or Gitea's push event, signed with the
    secret of a project's webhook (Hydra checks none; Circus will not let an unsigned
    request start evaluations)."""
    ctx = request.app[CONTEXT]
    body = await params.sized_body(request, ctx.config.webhooks.max_body_size,
                                   "webhooks.max_body_size")
    payload = await params.json_body(request)
    with refusals():
        event = forge_events.event_name(kind, request.headers) \
            if forge_events.EVENT_HEADERS[kind] in request.headers else "push"
        change = forge_events.change_of(kind, event, payload)
        if not isinstance(change, forge.Push):
            return web.json_response({"jobsetsTriggered": []})
        try:
            triggered = await forge.receive_for_repository(
                ctx.pool, ctx.config, kind, forge_events.repository_urls(payload), body,
                request.headers, forge_events.delivery_id(kind, request.headers, body),
                event, change)
        except forge.BadSignature as exc:
            raise ApiError(401, str(exc)) from None
    log.info("hydra push", forge=kind, jobsets=triggered)
    return web.json_response({"jobsetsTriggered": triggered})
