"""/api/v1/projects: list, create, read, update, delete."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import asyncpg
import attrs
from aiohttp import web

from circus.app.config import Config
from circus.server.accounts import auth
from circus.server.http import params, responses, safety
from circus.server.http.errors import ApiError, not_found, refusals
from circus.server.http.keys import CONTEXT
from circus.server.http.openapi import (
    BOOL,
    DELETED,
    INT,
    NAME,
    PAGE_QUERY,
    STR,
    TIME,
    doc,
    obj,
    page_of,
)
from circus.services import projects
from circus.services.sources import Policy, SourceRefused
from circus.store import projects as project_store

PROJECT = obj(id=INT, name=STR, display_name=STR, description=STR, repository_url=STR,
              homepage=STR, enabled=BOOL, declarative=BOOL, pull_requests=BOOL,
              fork_pull_requests=BOOL, created_at=TIME, updated_at=TIME)
_PROJECT_FIELDS = dict(name=NAME, repository_url=STR, description=STR, display_name=STR,
                       homepage=STR, enabled=BOOL, pull_requests=BOOL, fork_pull_requests=BOOL)
PROJECT_BODY = obj(required=("name", "repository_url"), **_PROJECT_FIELDS)
PROJECT_UPDATE = obj(required=(), **_PROJECT_FIELDS)


@contextlib.contextmanager
def answered() -> Iterator[None]:
    """A project/jobset operation's refusal as the API (and the dashboard) answer it."""
    try:
        with refusals():
            yield
    except SourceRefused as exc:
        raise ApiError(400, f"{exc.field}: {exc.problem}") from None


@attrs.frozen
class ProjectSpec(projects.Project):
    """A project as /api/v1 and the dashboard's forms send it."""

    @classmethod
    def from_body(cls, body: dict[str, Any], base: projects.Project | None = None
                  ) -> ProjectSpec:
        """The fields of `body` over `base` (a PUT changes only what it names)."""
        old = attrs.asdict(base) if base else {}
        return cls(
            name=params.name(body, "name", old.get("name", params.REQUIRED)),
            repository_url=params.text(body, "repository_url",
                                       old.get("repository_url", params.REQUIRED)),
            description=params.text(body, "description", old.get("description", "")),
            display_name=params.text(body, "display_name", old.get("display_name", "")),
            homepage=params.text(body, "homepage", old.get("homepage", "")),
            enabled=params.boolean(body, "enabled", old.get("enabled", True)),
            pull_requests=params.boolean(body, "pull_requests",
                                         old.get("pull_requests", False)),
            fork_pull_requests=params.boolean(body, "fork_pull_requests",
                                              old.get("fork_pull_requests", False)),
        )


def check_repository_url(url: str, config: Config) -> None:
    """400 unless git may fetch `url` (the one check, in safety and circus.sources)."""
    safety.check_git_url(url, config)


def project_json(row: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    """A project as responses show it: credentials in its repository URL masked."""
    shown = dict(row)
    shown["repository_url"] = safety.shown_url(shown["repository_url"])
    return shown


async def resolve_project_id(request: web.Request, field: str = "id") -> int:
    """The project named in the path by id or by name; 404 when there is none."""
    raw = request.match_info[field]
    pool = request.app[CONTEXT].pool
    found: int | None
    if params.digits(raw) and int(raw) <= params.MAX_ID:
        found = await project_store.existing_id(pool, int(raw))
    else:
        found = await project_store.id_by_name(pool, raw)
    if found is None:
        raise not_found(f"project {raw!r}")
    return found


@doc("List projects, newest first", response=page_of(PROJECT), query=PAGE_QUERY,
     tags=("projects",))
async def list_projects(request: web.Request) -> web.Response:
    page = params.page(request)
    pool = request.app[CONTEXT].pool
    items = await project_store.page(pool, page.limit, page.offset)
    total = await project_store.count(pool)
    return responses.ok(responses.page([project_json(r) for r in items], total,
                                        page.limit, page.offset))


@doc("Create a project", status=201, response=PROJECT, body=PROJECT_BODY,
     permission=auth.needs("create-project"), tags=("projects",))
@auth.requires(auth.needs("create-project"))
async def create_project(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    spec = ProjectSpec.from_body(await params.json_body(request))
    check_repository_url(spec.repository_url, ctx.config)  # required here: never ""
    with answered():
        row, _ = await projects.create_project(ctx.pool, auth.principal(request),
                                               Policy.of(ctx.config), spec)
    return responses.ok(project_json(row), status=201)


@doc("One project, by id or name", response=PROJECT, tags=("projects",))
async def get_project(request: web.Request) -> web.Response:
    project_id = await resolve_project_id(request)
    row = await project_store.by_id(request.app[CONTEXT].pool, project_id)
    if row is None:
        raise not_found(f"project {project_id}")
    return responses.ok(project_json(row))


@doc("Update a project: the fields given change, the others stay", response=PROJECT,
     body=PROJECT_UPDATE, permission=auth.needs("update-project"), tags=("projects",),
     description="Renaming onto the name of another project is a 409.")
@auth.requires(auth.needs("update-project"))
async def update_project(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    project_id = await resolve_project_id(request)
    body = await params.json_body(request)
    current = await project_store.by_id(ctx.pool, project_id)
    if current is None:
        raise not_found(f"project {project_id}")
    base = projects.project_of(current)
    spec = ProjectSpec.from_body(body, base)
    if spec.repository_url == safety.shown_url(base.repository_url):
        # A client that sends back what it read sends the masked URL: keep the real one.
        spec = attrs.evolve(spec, repository_url=base.repository_url)
    elif "repository_url" in body:
        check_repository_url(spec.repository_url, ctx.config)  # "" is no URL here
    with answered():
        row = await projects.update_project(ctx.pool, auth.principal(request),
                                            Policy.of(ctx.config), project_id, spec, base)
    return responses.ok(project_json(row))


@doc("Delete a project with its jobsets, evaluations and builds", response=DELETED,
     permission=auth.needs("delete-project"), tags=("projects",))
@auth.requires(auth.needs("delete-project"))
async def delete_project(request: web.Request) -> web.Response:
    project_id = await resolve_project_id(request)
    with answered():
        deleted = await projects.delete_project(request.app[CONTEXT].pool,
                                                auth.principal(request), project_id)
    return responses.ok({"id": deleted, "deleted": True})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/v1/projects", list_projects)
    router.add_post("/api/v1/projects", create_project)
    router.add_get("/api/v1/projects/{id}", get_project)
    router.add_put("/api/v1/projects/{id}", update_project)
    router.add_delete("/api/v1/projects/{id}", delete_project)

