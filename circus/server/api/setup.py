"""POST /api/v1/projects/probe (is this repository reachable, what is its default branch,
does it have a flake.nix) and POST /api/v1/projects/setup (a template → a project with
its jobsets, in one transaction)."""

from __future__ import annotations

import tempfile
from typing import Any

import attrs
import structlog
from aiohttp import web

from circus.app.config import Config
from circus.proc import git
from circus.proc.child import ChildTimeout
from circus.server.accounts import auth
from circus.server.api.jobsets import JOBSET, JobsetSpec
from circus.server.api.projects import (
    PROJECT,
    ProjectSpec,
    answered,
    check_repository_url,
    project_json,
)
from circus.server.http import params, responses, safety
from circus.server.http.errors import ApiError, bad_field
from circus.server.http.keys import CONTEXT
from circus.server.http.openapi import BOOL, NAME, STR, arr, doc, nullable, obj
from circus.services import projects, sources

log = structlog.get_logger(__name__)

# A probe answers an operator filling a form: it must not hang on a dead host.
PROBE_TIMEOUT = 30.0

TEMPLATES: dict[str, list[dict[str, Any]]] = {
    "flake": [{"name": "main", "flake": True, "nix_expression": "hydraJobs"}],
    "legacy": [{"name": "main", "flake": False, "nix_expression": "release.nix"}],
    "empty": [],
}

PROBE = obj(repository_url=STR, reachable=BOOL, default_branch=nullable(STR),
            head=nullable(STR), has_flake=BOOL, suggested_template=STR, error=nullable(STR))
SETUP_BODY = obj(
    required=("name", "repository_url"), name=NAME, repository_url=STR,
    template={"type": "string", "enum": list(TEMPLATES)}, branch=nullable(STR),
    description=STR, display_name=STR, homepage=STR,
    jobsets=arr({"type": "object", "properties": {"name": NAME}, "required": ["name"]}))


@attrs.frozen
class GitResult:
    ok: bool
    out: str
    err: str


async def _git(policy: sources.Policy, *args: str, cwd: str | None = None) -> GitResult:
    # Only the allowed protocols, no prompt, no credential helper (circus.sources).
    try:
        done = await git.run(policy, *args, cwd=cwd, limit=PROBE_TIMEOUT)
    except ChildTimeout:
        return GitResult(False, "", f"git {args[0]} timed out after {PROBE_TIMEOUT:g} s")
    return GitResult(done.ok, done.text, sources.redact(done.stderr.strip()))


def _default_branch(ls_remote: str) -> tuple[str | None, str | None]:
    branch = head = None
    for line in ls_remote.splitlines():
        ref, _, name = line.partition("\t")
        if name != "HEAD":
            continue
        if ref.startswith("ref: refs/heads/"):
            branch = ref.removeprefix("ref: refs/heads/")
        else:
            head = ref
    return branch, head


async def probe_repository(url: str, config: Config) -> dict[str, Any]:
    """What git sees at `url`; 400 when its host resolves to a refused address."""
    await safety.check_git_host(url, config)
    policy = sources.Policy.of(config)
    found: dict[str, Any] = {"repository_url": safety.shown_url(url), "reachable": False,
                             "default_branch": None, "head": None, "has_flake": False,
                             "suggested_template": "legacy", "error": None}
    listed = await _git(policy, "ls-remote", "--symref", "--", url, "HEAD")
    if not listed.ok:
        found["error"] = listed.err.splitlines()[-1] if listed.err else "git ls-remote failed"
        return found
    found["reachable"] = True
    found["default_branch"], found["head"] = _default_branch(listed.out)
    if found["head"] is None:  # reachable but empty: nothing to look into
        return found
    with tempfile.TemporaryDirectory(prefix="circus-probe-") as tmp:
        init = await _git(policy, "init", "-q", tmp)
        fetched = init.ok and (await _git(policy, "fetch", "-q", "--depth", "1", "--", url, "HEAD",
                                          cwd=tmp)).ok
        if fetched:
            found["has_flake"] = (await _git(policy, "cat-file", "-e", "FETCH_HEAD:flake.nix",
                                             cwd=tmp)).ok
    found["suggested_template"] = "flake" if found["has_flake"] else "legacy"
    return found


def _url(request: web.Request, body: dict[str, Any]) -> str:
    url: str = params.text(body, "repository_url")
    check_repository_url(url, request.app[CONTEXT].config)
    return url


@doc("Probe a repository: reachable, default branch, and whether it has a flake.nix",
     body=obj(repository_url=STR), response=PROBE, permission=auth.ADMIN,
     tags=("projects",),
     description="An unreachable repository is a 200 with `reachable: false` and `error`.")
@auth.requires(auth.ADMIN)
async def probe(request: web.Request) -> web.Response:
    url = _url(request, await params.json_body(request))
    found = await probe_repository(url, request.app[CONTEXT].config)
    log.info("repository probed", url=safety.shown_url(url), reachable=found["reachable"],
             has_flake=found["has_flake"])
    return responses.ok(found)


def _jobset_specs(body: dict[str, Any]) -> list[JobsetSpec]:
    if "jobsets" in body:
        raw = body["jobsets"]
        if not isinstance(raw, list) or not all(isinstance(j, dict) for j in raw):
            raise bad_field("jobsets", "expected a list of objects")
    else:
        template = params.text(body, "template", "flake")
        if template not in TEMPLATES:
            raise bad_field("template", f"must be one of {', '.join(TEMPLATES)}, "
                                        f"got {template!r}")
        branch = params.text(body, "branch", None, nullable=True)
        raw = [{**j, "branch": branch} for j in TEMPLATES[template]]
    specs = []
    for index, item in enumerate(raw):
        try:
            specs.append(JobsetSpec.from_body(item))
        except ApiError as exc:
            raise ApiError(exc.status, f"jobsets[{index}].{exc.message}") from None
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise bad_field("jobsets", "two jobsets have the same name")
    return specs


@doc("Set up a project from a template (flake, legacy, empty) or a list of jobsets, in "
     "one transaction", status=201, body=SETUP_BODY, permission=auth.ADMIN,
     response=obj(project=PROJECT, jobsets=arr(JOBSET)), tags=("projects",))
@auth.requires(auth.ADMIN)
async def setup(request: web.Request) -> web.Response:
    body = await params.json_body(request)
    spec = ProjectSpec.from_body(body)
    _url(request, body)
    jobsets = _jobset_specs(body)
    ctx = request.app[CONTEXT]
    with answered():
        row, saved = await projects.create_project(ctx.pool, auth.principal(request),
                                                   sources.Policy.of(ctx.config), spec, jobsets)
    project, rows = project_json(row), [dict(r) for r in saved]
    log.info("project set up", project=spec.name, jobsets=[j.name for j in jobsets])
    return responses.ok({"project": project, "jobsets": rows}, status=201)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/api/v1/projects/probe", probe)
    router.add_post("/api/v1/projects/setup", setup)
