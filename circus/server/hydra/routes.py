"""Hydra's JSON API on Hydra's URLs, so Hydra's clients, scripts and badges keep working
(`../shared/specs/hydra-api.yaml`, `../shared/seeds/hydra-api-guide.md`).

The handlers live in hydra_projects (projects, jobsets, evaluations lists, push),
hydra_builds (builds, evaluations, jobs, search, queue) and hydra_login; their JSON
shapes in hydra_shapes; who answers a page URL (JSON or the dashboard) and who may write
in hydra_dispatch. This module registers the routes and declares them for /api/v1's
OpenAPI document (Hydra's own document is the contract: the tests validate against it).

`/job/{project}/{jobset}/{job}/shield` and `/latest` are registered by `badges` (SVG
badges) when it is loaded first; their Hydra answers are `hydra_builds.job_shield` and
`job_latest`, which `badges` should serve when the request accepts JSON.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from circus.server.accounts import auth
from circus.server.api import search
from circus.server.http.openapi import ANY, STR, doc, obj, query
from circus.server.hydra import builds as hydra_builds
from circus.server.hydra import login as hydra_login
from circus.server.hydra import projects as hydra_projects
from circus.server.hydra.dispatch import Handler, negotiated

_TAGS = ("hydra",)
_REDIRECT = dict(status=302, content_type=None)
# A PUT that creates answers 201 with Location and {name, uri, redirect, type}.
CREATED = {201: ("application/json", obj(name=ANY, uri=ANY, redirect=ANY, type=ANY), "created")}
_JOB = "/job/{project}/{jobset}/{job}"


# JSON with `Accept: application/json` (Hydra's clients), else the dashboard's page.
BOTH = ("application/json", "text/html")


def _page(summary: str, view: Handler) -> Handler:
    """A Hydra URL that is also a dashboard page."""
    return doc(summary, response=ANY, tags=_TAGS, content_type=BOTH,
               error_content_type=BOTH)(negotiated(view))


def _json(summary: str, view: Handler, **fields: object) -> Handler:
    return doc(summary, response=fields.pop("response", ANY), tags=_TAGS, **fields)(view)


def _free(router: web.UrlDispatcher, method: str, path: str) -> bool:
    for route in router.routes():
        info = route.resource.get_info() if route.resource else {}
        if route.method == method and (info.get("formatter") or info.get("path")) == path:
            return False
    return True


def add_routes(router: web.UrlDispatcher) -> None:
    p, b = hydra_projects, hydra_builds
    # The least a caller needs: creating; replacing or deleting an existing one is admin's.
    create_project, create_jobset = dict(permission=auth.CREATE_PROJECT), dict(
        permission=auth.CREATE_JOBSET)
    admin = dict(permission=auth.ADMIN)
    router.add_get("/", _page("Hydra: all projects", p.list_projects))
    router.add_get("/project/{id}", _page("Hydra: a project", p.get_project))
    router.add_put("/project/{id}", _json("Hydra: create or update a project", p.put_project,
                                          response=obj(redirect=ANY), extra=CREATED,
                                          **create_project))
    router.add_delete("/project/{id}", _json("Hydra: delete a project", p.delete_project,
                                             response=obj(redirect=ANY), **admin))
    one = "/jobset/{project}/{jobset}"
    router.add_get(one, _page("Hydra: a jobset", p.get_jobset))
    router.add_put(one, _json("Hydra: create or replace a jobset and its inputs",
                              p.put_jobset, response=obj(redirect=ANY), extra=CREATED,
                              **create_jobset))
    router.add_delete(one, _json("Hydra: delete a jobset", p.delete_jobset,
                                 response=obj(redirect=ANY), **admin))
    router.add_get(one + "/evals", _page("Hydra: a jobset's evaluations", p.jobset_evals))
    router.add_get(one + "/latest-eval", _json("Hydra: the latest finished evaluation",
                                               p.latest_eval, **_REDIRECT))
    router.add_get("/api/jobsets", _json("Hydra: jobset overview", p.api_jobsets, query={
        "project": query({**STR, "minLength": 1}, "the project's name", required=True)}))
    # GET stays for Hydra's scripts, but not on the session cookie alone (hydra_projects).
    push = _json("Hydra: trigger jobsets", p.api_push, permission=auth.TRIGGER,
                 description="GET with only the session cookie is a 403: send the "
                             "X-CSRF-Token header, an API key, or POST.")
    for method in ("GET", "POST", "PUT"):
        router.add_route(method, "/api/push", push)

    router.add_get("/eval/{id}", _page("Hydra: an evaluation", b.get_eval))
    router.add_get("/eval/{id}/builds", _json("Hydra: an evaluation's builds", b.eval_builds))
    for action, view, needs in (("cancel", b.cancel_eval, auth.CANCEL),
                                ("restart-failed", b.restart_failed_eval, auth.RESTART),
                                ("restart-aborted", b.restart_aborted_eval, auth.RESTART)):
        router.add_post(f"/eval/{{id}}/{action}", _json(f"Hydra: {action} (evaluation)", view,
                                                        **_REDIRECT, permission=needs))
    router.add_get("/build/{id}", _page("Hydra: a build", b.get_build))
    router.add_get("/build/{id}/constituents", _json("Hydra: an aggregate's constituents",
                                                     b.build_constituents))
    for action, view, needs in (("restart", b.restart_build, auth.RESTART),
                                ("cancel", b.cancel_build, auth.CANCEL),
                                ("bump", b.bump_build, auth.BUMP)):
        router.add_post(f"/build/{{id}}/{action}", _json(f"Hydra: {action} (build)", view,
                                                         **_REDIRECT, permission=needs))
    jobs: tuple[tuple[str, str, Handler, dict[str, Any]], ...] = (
            (_JOB + "/latest", "the latest successful build", b.job_latest, _REDIRECT),
            (_JOB + "/latest-finished", "the latest successful build of a finished "
             "evaluation", b.job_latest_finished, _REDIRECT),
            (_JOB + "/latest-for/{system}", "the latest successful build for a system",
             b.job_latest_for, _REDIRECT),
            (_JOB + "/shield", "a shields.io endpoint document", b.job_shield, {}))
    for path, summary, job_view, extra in jobs:
        if _free(router, "GET", path):
            router.add_get(path, _json(f"Hydra: {summary}", job_view, **extra))
    router.add_get("/search", _json("Hydra: search", b.search, query=search.HYDRA_QUERY))
    router.add_get("/api/latestbuilds", _json("Hydra: latest builds", b.latest_builds))
    router.add_get("/api/queue", _json("Hydra: the queue", b.queue))
    router.add_get("/api/nrbuilds", _json("Hydra: finished builds per period", b.nr_builds))

    router.add_post("/login", _json("Hydra: log in", hydra_login.login))
    router.add_post("/logout", _json("Hydra: log out", hydra_login.logout, status=204,
                                     content_type=None))
    router.add_get("/current-user", _json("Hydra: who is logged in", hydra_login.current_user,
                                          response=obj(username=ANY)))
