"""Hydra's JSON API on Hydra's URLs, so Hydra's clients, scripts and badges keep working
(`../shared/specs/hydra-api.yaml`, `../shared/seeds/hydra-api-guide.md`).

The handlers live in hydra/projects (projects, jobsets, evaluations lists, push),
hydra/builds (builds, evaluations, jobs, search, queue) and hydra/login; their JSON
shapes in hydra/shapes; who may write in hydra/dispatch. This module declares the routes
for /api/v1's OpenAPI document (Hydra's own document is the contract: the tests validate
against it) and registers those only Hydra serves. Its answers on the URLs another
front end shares too (the dashboard's pages, `/login`, the job badges) are declared at
the top and registered by `http/routes.SHARED`, which says who answers JSON and who
answers HTML there.
"""

from __future__ import annotations

from aiohttp import web

from circus.server.accounts import auth
from circus.server.api import search
from circus.server.http.openapi import ANY, STR, arr, doc, obj, query
from circus.server.hydra import builds as hydra_builds
from circus.server.hydra import login as hydra_login
from circus.server.hydra import projects as hydra_projects
from circus.server.hydra import queue_status as hydra_queue
from circus.server.hydra.dispatch import Handler

_TAGS = ("hydra",)
_REDIRECT = dict(status=302, content_type=None)
# A PUT that creates answers 201 with Location and {name, uri, redirect, type}.
CREATED = {201: ("application/json", obj(name=ANY, uri=ANY, redirect=ANY, type=ANY), "created")}
_JOB = "/job/{project}/{jobset}/{job}"
ACTION_METHODS = ("GET, POST and PUT do the same; a GET with only the session cookie is a "
                  "403: send the X-CSRF-Token header, an API key, or POST.")


def _json(summary: str, view: Handler, **fields: object) -> Handler:
    return doc(summary, response=fields.pop("response", ANY), tags=_TAGS, **fields)(view)


# The least a caller needs: creating; replacing or deleting an existing one is admin's.
_ADMIN = dict(permission=auth.ADMIN)

# Hydra's answers on the URLs it shares (http/routes.SHARED registers them).
PROJECTS = _json("Hydra: all projects", hydra_projects.list_projects)
PROJECT = _json("Hydra: a project", hydra_projects.get_project)
PUT_PROJECT = _json("Hydra: create or update a project", hydra_projects.put_project,
                    response=obj(redirect=ANY), extra=CREATED,
                    permission=auth.CREATE_PROJECT)
DELETE_PROJECT = _json("Hydra: delete a project", hydra_projects.delete_project,
                       response=obj(redirect=ANY), **_ADMIN)
JOBSET = _json("Hydra: a jobset", hydra_projects.get_jobset)
PUT_JOBSET = _json("Hydra: create or replace a jobset and its inputs", hydra_projects.put_jobset,
                   response=obj(redirect=ANY), extra=CREATED, permission=auth.CREATE_JOBSET)
DELETE_JOBSET = _json("Hydra: delete a jobset", hydra_projects.delete_jobset,
                      response=obj(redirect=ANY), **_ADMIN)
EVAL = _json("Hydra: an evaluation", hydra_builds.get_eval)
BUILD = _json("Hydra: a build", hydra_builds.get_build)
JOB_LATEST = _json("Hydra: the latest successful build", hydra_builds.job_latest, **_REDIRECT)
JOB_SHIELD = _json("Hydra: a shields.io endpoint document", hydra_builds.job_shield)
LOGIN = _json("Hydra: log in", hydra_login.login, status=302,
              response=obj(username=ANY, fullname=ANY, emailaddress=ANY, userroles=ANY),
              description="Hydra's answer: 302 to /current-user with the session cookie, "
                          "the user as the body.")
LOGOUT = _json("Hydra: log out", hydra_login.logout, status=204, content_type=None)
QUEUE = _json("Hydra: the queue, in the order runners take it", hydra_queue.queue)


def add_routes(router: web.UrlDispatcher) -> None:
    p, b = hydra_projects, hydra_builds
    one = "/jobset/{project}/{jobset}"
    router.add_get(one + "/evals", _json("Hydra: a jobset's evaluations", p.jobset_evals))
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
    pushes: tuple[tuple[str, Handler], ...] = (("GitHub", p.push_github), ("Gitea", p.push_gitea))
    for kind, push_view in pushes:
        router.add_post(f"/api/push-{kind.lower()}", _json(
            f"Hydra: {kind}'s push event triggers the jobsets of the projects on its "
            "repository", push_view, response=obj(jobsetsTriggered=arr(STR)),
            body={"type": "object"},
            description=f"Signed as {kind} signs webhooks, with the secret of the "
                        f"project's {kind.lower()} webhook (/api/v1/projects/{{id}}/webhooks)"))

    router.add_get("/evals", _json("Hydra: the evaluations that brought new builds, 20 a "
                                   "page (`page`)", p.all_evals))
    router.add_get("/eval/{id}/builds", _json("Hydra: an evaluation's builds", b.eval_builds))
    router.add_get("/eval/{id}/store-paths", _json(
        "Hydra: the output paths of an evaluation's successful builds", b.eval_store_paths))
    download = _json("Hydra: a build product's file (the same rule as /api/v1's download)",
                     b.download, content_type="application/octet-stream",
                     response={"type": "string", "format": "binary"})
    router.add_get("/build/{id}/download/{nr}", download)
    router.add_get("/build/{id}/download/{nr}/{path:.+}", download)
    channel = "/channel/custom/{project}/{jobset}/{channel}"
    router.add_get(channel + "/binary-cache-url", _json(
        "Hydra: the binary cache of a custom channel (this server's root)",
        b.channel_cache_url, content_type="text/plain", response=STR))
    router.add_get(channel + "/{product}", _json(
        "Hydra: a custom channel's product, by name (a redirect to its download)",
        b.channel_product, **_REDIRECT))
    router.add_get("/status", _json("Hydra: the builds running now", hydra_queue.status))
    router.add_get("/queue-runner-status", _json("Hydra: the queue runner's figures",
                                                 hydra_queue.queue_runner_status))
    router.add_get("/machines", _json("Hydra: the remote builders and their state",
                                      hydra_queue.machines))
    router.add_get("/build/{id}/constituents", _json("Hydra: an aggregate's constituents",
                                                     b.build_constituents))
    actions: tuple[tuple[str, str, Handler, str], ...] = (
        ("/eval/{id}/cancel", "cancel (evaluation)", b.cancel_eval, auth.CANCEL),
        ("/eval/{id}/restart-failed", "restart-failed (evaluation)", b.restart_failed_eval,
         auth.RESTART),
        ("/eval/{id}/restart-aborted", "restart-aborted (evaluation)", b.restart_aborted_eval,
         auth.RESTART),
        ("/eval/{id}/bump", "bump (evaluation)", b.bump_eval, auth.BUMP),
        ("/build/{id}/restart", "restart (build)", b.restart_build, auth.RESTART),
        ("/build/{id}/cancel", "cancel (build)", b.cancel_build, auth.CANCEL),
        ("/build/{id}/bump", "bump (build)", b.bump_build, auth.BUMP),
        ("/build/{id}/keep/{value}", "keep (build; 1 keeps, 0 stops)", b.keep_build, auth.ADMIN))
    for path, summary, action_view, needs in actions:
        view = _json(f"Hydra: {summary}", action_view, **_REDIRECT, permission=needs,
                     description=ACTION_METHODS)
        # Hydra's actions answer any method; its clients send POST, PUT and GET.
        for method in ("GET", "POST", "PUT"):
            router.add_route(method, path, view)
    jobs: tuple[tuple[str, str, Handler], ...] = (
        ("/latest-finished", "the latest successful build of a finished evaluation",
         b.job_latest_finished),
        ("/latest-for/{system}", "the latest successful build for a system", b.job_latest_for))
    for tail, summary, job_view in jobs:
        router.add_get(_JOB + tail, _json(f"Hydra: {summary}", job_view, **_REDIRECT))
    router.add_get("/search", _json("Hydra: search", b.search, query=search.HYDRA_QUERY))
    router.add_get("/api/latestbuilds", _json("Hydra: latest builds", b.latest_builds))
    router.add_get("/api/queue", _json("Hydra: the queue", b.queue))
    router.add_get("/api/nrbuilds", _json("Hydra: finished builds per period", b.nr_builds))
    router.add_get("/current-user", _json("Hydra: who is logged in", hydra_login.current_user,
                                          response=obj(username=ANY)))
