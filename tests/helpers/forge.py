"""Stand-ins for GitHub, Gitea/Forgejo and GitLab in the webhook and commit-status tests,
and their example webhook payloads.

Each peer is a local aiohttp server answering one forge's commit-status API. It checks
every request against that forge's published API description, taken from npm packages
installed at set-up (tests/helpers/npm.py), never from a copy in this tree:

- GitHub: GitHub's REST OpenAPI description (@octokit/openapi, api.github.com.json),
  validated by openapi-core: path, method, path parameters, content type, request body;
  the answer is the description's own Status example, checked against the 201 response.
  The description has no header parameters: the token, Accept and X-GitHub-Api-Version
  are checked as GitHub's REST docs ask.
- Gitea: gitea-js, generated from Gitea's swagger: every route with its method and
  `@secure` mark is in its JSDoc, and the body and answer types (CreateStatusOption,
  CommitStatus) become JSON Schemas by ts-json-schema-generator. The swagger types the
  state as a string and lists its values in the description: those are its enum.
- GitLab: @gitbeaker/core: the route of `Commits.editStatus` from its code, the request
  types (CommitablePipelineStatus, EditPipelineStatusOptions, with gitbeaker's own xcase
  decamelizing of the keys, as it does on the wire) and the answer type CommitStatusSchema.

A request that breaks the description is answered 4xx and kept in `peer.rejected` with
why; the others are kept in `peer.requests`. Payloads: GitHub's published examples
(@octokit/webhooks-examples) signed by GitHub's own code (@octokit/webhooks-methods);
Gitea and GitLab payloads built here and validated against the published types before
they are returned: gitlab-event-types for GitLab's events; for Gitea, whose webhook
envelopes are outside its swagger, the envelope of modules/structs/hook.go (_GITEA_HOOKS)
around gitea-js's types. The schemas made from TypeScript are cached in .venv/npm/derived.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import hashlib
import hmac
import itertools
import json
import re
import time
import urllib.parse
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import jsonschema
from aiohttp import web
from multidict import CIMultiDict
from openapi_core import Config, OpenAPI
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.templating.paths.finders import APICallPathFinder
from openapi_core.testing import MockRequest, MockResponse

from tests.helpers import npm

ZERO = "0" * 40

# Headers GitHub's REST docs ask for; the OpenAPI description has no header parameters.
GITHUB_MEDIA_TYPE = "application/vnd.github+json"
GITHUB_API_VERSIONS = ("2022-11-28",)
GITHUB_STATUS_ROUTE = ("post", "/repos/{owner}/{repo}/statuses/{sha}")


# --------------------------------------------------------------------------------------
# The published descriptions, read once per process


@functools.cache
def _github_spec() -> dict[str, Any]:
    path = npm.package_dir("@octokit/openapi") / "generated" / "api.github.com.json"
    spec: dict[str, Any] = json.loads(path.read_text())
    # The peer is the server: paths are matched from its root, whatever host it has.
    spec["servers"] = [{"url": "/"}]
    return spec


@functools.cache
def _github_api() -> OpenAPI:
    # The document is GitHub's, not ours to validate (that takes seconds).
    return OpenAPI.from_dict(_github_spec(), config=Config(spec_validator_cls=None))


@functools.cache
def _github_default_context() -> str:
    method, path = GITHUB_STATUS_ROUTE
    content = _github_spec()["paths"][path][method]["requestBody"]["content"]
    return str(content["application/json"]["schema"]["properties"]["context"]["default"])


def _pointer(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


@functools.cache
def _github_examples() -> dict[str, dict[str, Any]]:
    path = npm.package_dir("@octokit/webhooks-examples") / "api.github.com" / "index.json"
    return {entry["name"]: entry for entry in json.loads(path.read_text())}


_GENERATE = r"""
import { createGenerator } from "ts-json-schema-generator";
const [path, open, ...types] = process.argv.slice(1);
const generator = createGenerator({ path, skipTypeCheck: true, expose: "all", topRef: false,
                                    jsDoc: "extended", additionalProperties: open === "open" });
const out = {};
for (const type of types) out[type] = generator.createSchema(type);
process.stdout.write(JSON.stringify(out));
"""

_DECAMELIZE = r"""
import { createRequire } from "node:module";
const require = createRequire(import.meta.resolve("@gitbeaker/requester-utils"));
const xcase = require("xcase");
const keys = JSON.parse(process.argv[1]);
process.stdout.write(JSON.stringify(keys.map((key) => xcase.decamelize(key))));
"""

# Gitea's webhook payloads are Go structs (modules/structs/hook.go: PushPayload,
# PullRequestPayload) outside its swagger; their envelope is written here with Go's JSON
# names, and every object in it is gitea-js's (Gitea's swagger) type.
_GITEA_HOOKS = """
import type { PayloadCommit, PullRequest, Repository, User } from "gitea-js";
export interface PushPayload {
  ref: string; before: string; after: string; compare_url: string;
  commits: PayloadCommit[]; total_commits: number; head_commit: PayloadCommit | null;
  repository: Repository; pusher: User; sender: User;
}
export type HookIssueAction = "opened" | "closed" | "reopened" | "edited" | "assigned"
  | "unassigned" | "label_updated" | "label_cleared" | "synchronized" | "milestoned"
  | "demilestoned" | "reviewed" | "review_requested" | "review_request_removed";
export interface ChangesFromPayload { from: string }
export interface ChangesPayload {
  title?: ChangesFromPayload; body?: ChangesFromPayload; ref?: ChangesFromPayload;
}
export interface ReviewPayload { type: string; content: string }
export interface PullRequestPayload {
  action: HookIssueAction; number: number; changes?: ChangesPayload;
  pull_request: PullRequest; requested_reviewer: User | null; repository: Repository;
  sender: User; commit_id: string; review: ReviewPayload | null;
}
"""


def _generate(path: str, types: list[str], *, open_objects: bool = False) -> dict[str, Any]:
    out = npm.run_node(_GENERATE, path, "open" if open_objects else "closed", *types)
    return json.loads(out)


def _gitea_routes(dts: str) -> list[dict[str, Any]]:
    """Every operation of gitea-js's client: its JSDoc names the route and marks the ones
    needing a token, and the method's signature after it the body and answer types."""
    marks = list(re.finditer(r"@request (\w+):(\S+)", dts))
    routes = []
    for mark, after in zip(marks, [*marks[1:], None], strict=True):
        chunk = dts[mark.end():after.start() if after else len(dts)]
        doc, _, code = chunk.partition("*/")
        signature = re.match(r"\s*(\w+): \((.*?)\) => Promise<HttpResponse<(.+?), ", code,
                             re.S)
        if signature is None:
            raise RuntimeError(f"gitea-js: no method after @request {mark.group(2)}")
        name, params, answer = signature.groups()
        body = re.search(r"\bbody: (\w+)", params)
        routes.append({"name": name, "method": mark.group(1).lower(),
                       "template": mark.group(2), "secure": "@secure" in doc,
                       "body": body.group(1) if body else None, "answer": answer})
    return routes


def _derive() -> dict[str, Any]:
    """JSON Schemas and routes read from the Gitea and GitLab packages (slow: cached)."""
    gitea_dts_path = npm.package_dir("gitea-js") / "dist" / "index.d.ts"
    gitea_dts = gitea_dts_path.read_text()
    base = re.search(r"@baseUrl (\S+)", gitea_dts)
    if base is None:
        raise RuntimeError("gitea-js: no @baseUrl in its description")
    routes = _gitea_routes(gitea_dts)
    create = [r for r in routes if r["name"] == "repoCreateStatus"]
    if len(create) != 1 or not create[0]["body"]:
        raise RuntimeError("gitea-js: no repoCreateStatus operation with a body")
    hooks = npm.PREFIX / "derived" / "gitea-hooks.ts"
    hooks.parent.mkdir(exist_ok=True)
    hooks.write_text(_GITEA_HOOKS)
    gitea = _generate(str(gitea_dts_path), [create[0]["body"], create[0]["answer"]])
    gitea |= _generate(str(hooks), ["PushPayload", "PullRequestPayload"])

    core = npm.package_dir("@gitbeaker/core") / "dist"
    code, dts = (core / "index.js").read_text(), (core / "index.d.ts").read_text()
    route = re.search(r"\n  editStatus\(projectId, sha, state, options\) \{\s*return "
                      r"RequestHelper\.(\w+)\(\)\(\s*this,\s*endpoint`([^`]+)`", code)
    signature = re.search(r"editStatus<E extends boolean = false>\(projectId: string \| "
                          r"number, sha: string, state: (\w+), options\?: (\w+)[^)]*\): "
                          r"Promise<GitlabAPIResponse<(\w+),", dts)
    utils = (npm.package_dir("@gitbeaker/requester-utils") / "dist" / "index.js").read_text()
    prefix = re.search(r"this\.url = \[host, ((?:\"\w+\", )+)prefixUrl\]", utils)
    if route is None or signature is None or prefix is None:
        raise RuntimeError("@gitbeaker/core: Commits.editStatus not found as expected")
    state, options, answer = signature.groups()
    gitlab = _generate(str(core / "index.d.ts"), [state, options, answer])
    keys = list(gitlab[options]["properties"])
    snake = json.loads(npm.run_node(_DECAMELIZE, json.dumps(keys)))
    events = npm.package_dir("gitlab-event-types") / "src" / "index.ts"
    gitlab_events = _generate(str(events), ["PushEvent", "MergeRequestEvent"],
                              open_objects=True)
    template = re.sub(r"\$\{(\w+)\}", r"{\1}", route.group(2))
    return {
        "gitea": {"base": base.group(1), "routes": routes, "create": create[0],
                  "schemas": gitea},
        "gitlab": {"base": "/" + "/".join(json.loads(f"[{prefix.group(1)[:-2]}]")),
                   "method": route.group(1), "template": "/" + template,
                   "state": state, "options": options, "answer": answer,
                   "keys": dict(zip(keys, snake, strict=True)), "schemas": gitlab,
                   "events": gitlab_events},
    }


@functools.cache
def _derived() -> dict[str, Any]:
    # Keyed by this file too: a change to how schemas are derived remakes them.
    key = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    return npm.cached_json("forge-schemas.json", _derive, key=key)


def _state_enum(schema: dict[str, Any]) -> dict[str, Any]:
    """Gitea's swagger types CommitStatusState as a plain string and lists its values in
    the type's description ('It can be "pending", "success", ...'): those become its enum."""
    schema = copy.deepcopy(schema)
    state = schema.get("definitions", {}).get("CommitStatusState")
    if state is not None:
        values = re.findall(r'"(\w+)"', state.get("description", ""))
        if len(values) < 2:
            raise RuntimeError(f"gitea-js: no states in {state.get('description')!r}")
        state["enum"] = values
    return schema


@functools.cache
def _validator(source: str, name: str) -> jsonschema.Draft7Validator:
    """Type `name` of "gitea" (gitea-js), "gitlab" (@gitbeaker/core) or "gitlab-event"
    (gitlab-event-types) as a validator."""
    derived = _derived()
    if source == "gitea":
        schema = _state_enum(derived["gitea"]["schemas"][name])
    elif source == "gitlab-event":
        schema = derived["gitlab"]["events"][name]
    else:
        schema = derived["gitlab"]["schemas"][name]
    return jsonschema.Draft7Validator(schema)


@functools.cache
def _gitlab_request() -> jsonschema.Draft7Validator:
    """The JSON gitbeaker sends for editStatus: `state`, then its options' keys in
    snake case (its requester decamelizes them)."""
    gl = _derived()["gitlab"]
    options = gl["schemas"][gl["options"]]
    state = gl["schemas"][gl["state"]]
    definitions = {**options.get("definitions", {}), **state.get("definitions", {})}
    state_schema = {k: v for k, v in state.items() if k not in ("$schema", "definitions")}
    properties = {"state": state_schema} | {
        gl["keys"][key]: value for key, value in options["properties"].items()}
    return jsonschema.Draft7Validator({
        "type": "object", "properties": properties, "required": ["state"],
        "additionalProperties": False, "definitions": definitions})


def _errors(validator: jsonschema.Draft7Validator, value: Any) -> str | None:
    found = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    if not found:
        return None
    return "; ".join(f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
                     for e in found[:5])


def _check(source: str, name: str, value: Any) -> None:
    why = _errors(_validator(source, name), value)
    if why is not None:
        raise ValueError(f"not a {source} {name}: {why}")


# --------------------------------------------------------------------------------------
# The peers


@attrs.define
class Recorded:
    method: str
    path: str  # as sent, still URL-encoded, without the query string
    headers: Mapping[str, str]  # case-insensitive
    body: Any  # parsed JSON, a form's dict, else the text (None when empty)
    at: float  # time.monotonic()
    query: dict[str, str] = attrs.Factory(dict)
    params: dict[str, str] = attrs.Factory(dict)  # path parameters, decoded
    status: int = 0  # what the peer answered


class Rejected(Exception):
    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status, self.why = status, why


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_body(content_type: str, raw: bytes) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", "replace")
    if content_type == "application/json":
        try:
            return json.loads(text)
        except ValueError:
            return text
    if content_type == "application/x-www-form-urlencoded":
        return dict(urllib.parse.parse_qsl(text, keep_blank_values=True))
    return text


def _json_body(request: web.Request, raw: bytes) -> Any:
    if request.content_type != "application/json":
        raise Rejected(415, f"Content-Type {request.content_type or '(none)'}: the "
                            "description has only application/json for this operation")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise Rejected(400, f"the body is not JSON: {exc}") from exc


def _match(template: str, raw_path: str) -> dict[str, str] | None:
    """The template's parameters in `raw_path` (one encoded segment each), decoded."""
    names = re.findall(r"\{([^}]+)\}", template)
    pattern = re.sub(r"\\\{[^}]+\\\}", "([^/]+)", re.escape(template))
    found = re.fullmatch(pattern, raw_path)
    if found is None:
        return None
    return {n: urllib.parse.unquote(v) for n, v in zip(names, found.groups(), strict=True)}


@attrs.define(eq=False)
class ForgePeer:
    """A local aiohttp server on 127.0.0.1 (free port) that answers one forge's
    commit-status API, checked against its published description."""

    kind: str
    token: str
    url: str = ""
    requests: list[Recorded] = attrs.Factory(list)
    rejected: list[tuple[Recorded, str]] = attrs.Factory(list)
    _fail_until: float = 0.0
    _fail_status: int = 500
    _runner: web.AppRunner | None = None
    _ids: itertools.count[int] = attrs.Factory(lambda: itertools.count(1))

    def fail_for(self, seconds: float, status: int = 500) -> None:
        """Answer `status` to valid requests for that long (they are still recorded)."""
        self._fail_until, self._fail_status = time.monotonic() + seconds, status

    def statuses(self) -> list[tuple[str, str, str]]:
        """(sha, context, state) of the status requests answered 2xx, in order."""
        return [(r.params["sha"], self._context(r.body), r.body["state"])
                for r in self.requests if 200 <= r.status < 300]

    def _context(self, body: dict[str, Any]) -> str:
        raise NotImplementedError

    async def start(self) -> None:
        await asyncio.to_thread(self._load)
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> ForgePeer:
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        rec = Recorded(method=request.method, path=request.rel_url.raw_path,
                       headers=CIMultiDict(request.headers),
                       body=_parse_body(request.content_type, raw), at=time.monotonic(),
                       query=dict(request.query))
        try:
            status, answer, headers = self._serve(request, raw, rec)
        except Rejected as exc:
            rec.status = exc.status
            self.rejected.append((rec, exc.why))
            return web.json_response(self._error(exc.why), status=exc.status)
        self.requests.append(rec)
        if time.monotonic() < self._fail_until:
            rec.status = self._fail_status
            return web.json_response(self._error("failing on purpose (fail_for)"),
                                     status=self._fail_status)
        rec.status = status
        return web.json_response(answer, status=status, headers=headers)

    def _load(self) -> None:
        """Read the description before the first request (not in the event loop)."""

    def _error(self, why: str) -> dict[str, Any]:
        return {"message": why}

    def _serve(self, request: web.Request, raw: bytes,
               rec: Recorded) -> tuple[int, Any, dict[str, str]]:
        raise NotImplementedError


def _bearer_or_token(header: str | None) -> str | None:
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() in ("bearer", "token") else None


class GitHubPeer(ForgePeer):
    def _load(self) -> None:
        _github_api()

    def _context(self, body: dict[str, Any]) -> str:
        return str(body.get("context", _github_default_context()))

    def _serve(self, request: web.Request, raw: bytes,
               rec: Recorded) -> tuple[int, Any, dict[str, str]]:
        api, spec = _github_api(), _github_spec()
        try:
            found = APICallPathFinder(api.spec).find(request.method.lower(),
                                                     self.url + rec.path)
        except PathNotFound as exc:
            raise Rejected(404, f"{rec.path}: no such path in GitHub's REST "
                                "description") from exc
        except OperationNotFound as exc:
            raise Rejected(405, f"{request.method} {rec.path}: no such operation in "
                                "GitHub's REST description") from exc
        route = (request.method.lower(), found.path_result.pattern)
        if route != GITHUB_STATUS_ROUTE:
            raise Rejected(501, f"{request.method} {route[1]}: in GitHub's description, "
                                "not served by this peer")
        if _bearer_or_token(request.headers.get("Authorization")) != self.token:
            raise Rejected(401, "Authorization: not `Bearer <the peer's token>`")
        if GITHUB_MEDIA_TYPE not in request.headers.get("Accept", ""):
            raise Rejected(415, f"Accept: not {GITHUB_MEDIA_TYPE}")
        if request.headers.get("X-GitHub-Api-Version") not in GITHUB_API_VERSIONS:
            raise Rejected(400, "X-GitHub-Api-Version: not one of "
                                f"{', '.join(GITHUB_API_VERSIONS)}")
        operation = spec["paths"][GITHUB_STATUS_ROUTE[1]][GITHUB_STATUS_ROUTE[0]]
        media_types = operation["requestBody"]["content"]
        if request.content_type not in media_types:
            raise Rejected(415, f"Content-Type {request.content_type or '(none)'}: the "
                                f"description has only {', '.join(media_types)}")
        if raw:
            try:
                json.loads(raw)
            except ValueError as exc:
                raise Rejected(400, f"Problems parsing JSON: {exc}") from exc
        call = MockRequest(self.url, request.method.lower(), rec.path, data=raw or None,
                           content_type=request.headers.get("Content-Type", ""),
                           headers=dict(request.headers), args=dict(request.query))
        result = api.unmarshal_request(call)
        if result.errors:
            raise Rejected(422, "; ".join(_openapi_error(e) for e in result.errors))
        params = dict(result.parameters.path)
        rec.params = {k: str(v) for k, v in params.items()}
        body = result.body  # with the description's defaults (context "default")
        assert isinstance(body, dict)
        example = operation["responses"]["201"]["content"]["application/json"]
        answer = copy.deepcopy(_pointer(spec, example["examples"]["default"]["$ref"])
                               ["value"])
        status_id = next(self._ids)
        location = (f"{self.url}/repos/{params['owner']}/{params['repo']}/statuses/"
                    f"{params['sha']}")
        answer |= {"url": location, "id": status_id,
                   "node_id": f"SC_peer{status_id}", "state": body["state"],
                   "description": body.get("description"),
                   "target_url": body.get("target_url"), "context": body["context"],
                   "created_at": _now(), "updated_at": _now()}
        response = MockResponse(json.dumps(answer).encode(), status_code=201,
                                content_type="application/json")
        checked = api.unmarshal_response(call, response)
        if checked.errors:
            raise AssertionError(f"the GitHub peer's answer breaks the description: "
                                 f"{[_openapi_error(e) for e in checked.errors]}")
        return 201, answer, {"Location": location}


def _openapi_error(error: Exception) -> str:
    """openapi-core's error, down to the schema's own complaints when it has them."""
    head = str(error).split(":")[0]
    cause: BaseException | None = error
    last: BaseException = error
    while cause is not None:
        details = getattr(cause, "schema_errors", None)
        if details:
            return head + ": " + "; ".join(
                f"{'/'.join(map(str, d.absolute_path)) or '(body)'}: {d.message}"
                for d in details)
        last, cause = cause, cause.__cause__
    return str(last)


class GiteaPeer(ForgePeer):
    def _load(self) -> None:
        _derived()

    def _serve(self, request: web.Request, raw: bytes,
               rec: Recorded) -> tuple[int, Any, dict[str, str]]:
        gitea = _derived()["gitea"]
        method, base, create = request.method.lower(), gitea["base"], gitea["create"]
        inside = rec.path.removeprefix(base) if rec.path.startswith(base + "/") else None
        params = _match(create["template"], inside) if inside is not None else None
        if params is None or method != create["method"]:
            known = [r for r in gitea["routes"]
                     if inside is not None and _match(r["template"], inside) is not None]
            if not known:
                raise Rejected(404, f"{rec.path}: no such path in Gitea's API "
                                    f"(gitea-js, under {base})")
            if all(r["method"] != method for r in known):
                raise Rejected(405, f"{request.method} {rec.path}: no such operation in "
                                    "Gitea's API")
            raise Rejected(501, f"{request.method} {rec.path}: in Gitea's API, not served "
                                "by this peer")
        rec.params = params
        if create["secure"]:
            header = request.headers.get("Authorization")
            if _bearer_or_token(header) != self.token:
                raise Rejected(401, "Authorization: not `token <the peer's token>`")
        body = _json_body(request, raw)
        why = _errors(_validator("gitea", create["body"]), body)
        if why is not None:
            raise Rejected(422, f"not a {create['body']}: {why}")
        owner, repo, sha = params["owner"], params["repo"], params["sha"]
        answer = {"id": next(self._ids), "status": body.get("state", ""),
                  "context": body.get("context", ""),
                  "description": body.get("description", ""),
                  "target_url": body.get("target_url", ""),
                  "url": f"{self.url}{base}/repos/{owner}/{repo}/statuses/{sha}",
                  "created_at": _now(), "updated_at": _now(),
                  "creator": {"id": 1, "login": "circus", "full_name": "Circus",
                              "email": "circus@example.com", "avatar_url": "",
                              "html_url": f"{self.url}/circus"}}
        _check("gitea", create["answer"], answer)
        return 201, answer, {}

    def _context(self, body: dict[str, Any]) -> str:
        return str(body.get("context", ""))


class GitLabPeer(ForgePeer):
    def _load(self) -> None:
        _gitlab_request()

    def _error(self, why: str) -> dict[str, Any]:
        return {"message": why, "error": why}

    def _serve(self, request: web.Request, raw: bytes,
               rec: Recorded) -> tuple[int, Any, dict[str, str]]:
        gl = _derived()["gitlab"]
        params = _match(gl["base"] + gl["template"], rec.path)
        if params is None:
            raise Rejected(404, f"{rec.path}: not the route of gitbeaker's "
                                f"Commits.editStatus ({gl['base']}{gl['template']}; "
                                "the project id URL-encoded)")
        if request.method.lower() != gl["method"]:
            raise Rejected(405, f"{request.method}: editStatus is a {gl['method'].upper()}")
        rec.params = params
        private = request.headers.get("PRIVATE-TOKEN")
        bearer = request.headers.get("Authorization", "")
        if private != self.token and bearer != f"Bearer {self.token}":
            raise Rejected(401, "PRIVATE-TOKEN: not the peer's token")
        body = _json_body(request, raw)
        why = _errors(_gitlab_request(), body)
        if why is not None:
            raise Rejected(400, f"not editStatus's body: {why}")
        status_id = next(self._ids)
        answer = {"id": status_id, "sha": params["sha"], "ref": body.get("ref", "main"),
                  "status": body["state"], "name": self._context(body),
                  "target_url": body.get("target_url", ""),
                  "description": body.get("description"), "created_at": _now(),
                  "started_at": None, "finished_at": None, "allow_failure": False,
                  "coverage": body.get("coverage"),
                  "author": {"id": 1, "name": "Circus", "username": "circus",
                             "state": "active", "avatar_url": "",
                             "web_url": f"{self.url}/circus"}}
        answer = {k: v for k, v in answer.items() if v is not None}
        _check("gitlab", gl["answer"], answer)
        return 201, answer, {}

    def _context(self, body: dict[str, Any]) -> str:
        return str(body.get("name") or body.get("context") or "default")


_PEERS: dict[str, Callable[[str], ForgePeer]] = {
    "github": lambda token: GitHubPeer("github", token),
    "gitea": lambda token: GiteaPeer("gitea", token),
    "gitlab": lambda token: GitLabPeer("gitlab", token),
}


async def _started(kind: str, token: str) -> ForgePeer:
    peer = _PEERS[kind](token)
    await peer.start()
    return peer


async def github_peer(token: str = "ghs_test") -> ForgePeer:
    return await _started("github", token)


async def gitea_peer(token: str = "gitea_test_token") -> ForgePeer:
    return await _started("gitea", token)


async def gitlab_peer(token: str = "glpat-test") -> ForgePeer:
    return await _started("gitlab", token)


# --------------------------------------------------------------------------------------
# Payloads


def github_example(event: str, action: str | None = None) -> dict[str, Any]:
    """A deep copy of a published example payload: the first of `event` with `action`."""
    entry = _github_examples().get(event)
    if entry is None:
        raise KeyError(f"no GitHub example for event {event!r}")
    for example in entry["examples"]:
        if action is None or example.get("action") == action:
            return copy.deepcopy(example)
    actions = sorted({e.get("action") for e in entry["examples"] if e.get("action")})
    raise KeyError(f"no GitHub {event} example with action {action!r}: {actions}")


_SIGN = r"""
import { sign } from "@octokit/webhooks-methods";
let input = "";
for await (const chunk of process.stdin) input += chunk;
const { secret, payload } = JSON.parse(input);
process.stdout.write(await sign(secret, payload));
"""


def github_sign(secret: str, body: bytes) -> str:
    """X-Hub-Signature-256 of `body`, by GitHub's own @octokit/webhooks-methods."""
    payload = body.decode("utf-8")
    return npm.run_node(_SIGN, stdin=json.dumps({"secret": secret, "payload": payload}))


def gitea_sign(secret: str, body: bytes) -> str:
    """X-Gitea-Signature (and X-Forgejo-Signature): hex HMAC-SHA256 of the body."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def validate_gitea_event(kind: str, payload: dict[str, Any]) -> None:
    """Raise ValueError unless `payload` is a Gitea `push` or `pull_request` payload."""
    names = {"push": "PushPayload", "pull_request": "PullRequestPayload"}
    _check("gitea", names[kind], payload)


def validate_gitlab_event(kind: str, payload: dict[str, Any]) -> None:
    """Raise ValueError unless `payload` is a GitLab `push` or `merge_request` event."""
    names = {"push": "PushEvent", "merge_request": "MergeRequestEvent"}
    _check("gitlab-event", names[kind], payload)


def _split_clone_url(clone_url: str) -> tuple[str, str, str]:
    """(instance URL, owner, name) of `https://host/owner/name.git`."""
    parts = urllib.parse.urlsplit(clone_url)
    owner, _, name = parts.path.strip("/").removesuffix(".git").rpartition("/")
    if not owner or not name:
        raise ValueError(f"{clone_url}: not a repository URL like https://host/owner/name.git")
    return f"{parts.scheme}://{parts.netloc}", owner, name


def _gitea_user(instance: str, login: str, user_id: int = 1) -> dict[str, Any]:
    return {"id": user_id, "login": login, "login_name": "", "full_name": login.title(),
            "email": f"{login}@example.com", "avatar_url": f"{instance}/avatars/{login}",
            "html_url": f"{instance}/{login}", "language": "", "is_admin": False,
            "last_login": "0001-01-01T00:00:00Z", "created": "2024-01-01T00:00:00Z",
            "restricted": False, "active": False, "prohibit_login": False, "location": "",
            "website": "", "description": "", "visibility": "public",
            "followers_count": 0, "following_count": 0, "starred_repos_count": 0}


def _gitea_repo(clone_url: str, default_branch: str, repo_id: int = 1) -> dict[str, Any]:
    instance, owner, name = _split_clone_url(clone_url)
    html = f"{instance}/{owner}/{name}"
    host = urllib.parse.urlsplit(instance).hostname
    return {"id": repo_id, "owner": _gitea_user(instance, owner), "name": name,
            "full_name": f"{owner}/{name}", "description": "", "empty": False,
            "private": False, "fork": False, "template": False, "mirror": False,
            "size": 100, "language": "", "languages_url":
            f"{instance}/api/v1/repos/{owner}/{name}/languages", "html_url": html,
            "url": f"{instance}/api/v1/repos/{owner}/{name}",
            "link": "", "ssh_url": f"git@{host}:{owner}/{name}.git",
            "clone_url": f"{html}.git", "original_url": "", "website": "",
            "stars_count": 0, "forks_count": 0, "watchers_count": 1,
            "open_issues_count": 0, "open_pr_counter": 0, "release_counter": 0,
            "default_branch": default_branch, "archived": False,
            "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z",
            "archived_at": "1970-01-01T00:00:00Z", "has_issues": True,
            "has_wiki": True, "has_pull_requests": True, "has_projects": True,
            "has_releases": True, "has_packages": True, "has_actions": True,
            "ignore_whitespace_conflicts": False, "allow_merge_commits": True,
            "allow_rebase": True, "allow_rebase_explicit": True,
            "allow_squash_merge": True, "allow_fast_forward_only_merge": False,
            "allow_rebase_update": True, "default_delete_branch_after_merge": False,
            "default_merge_style": "merge", "default_allow_maintainer_edit": False,
            "avatar_url": "", "internal": False, "mirror_interval": "",
            "object_format_name": "sha1", "mirror_updated": "0001-01-01T00:00:00Z",
            "topics": [], "licenses": []}


def _gitea_commit(html: str, sha: str, message: str) -> dict[str, Any]:
    person = {"name": "Circus Tests", "email": "tests@circus.invalid", "username": ""}
    return {"id": sha, "message": message, "url": f"{html}/commit/{sha}",
            "author": person, "committer": dict(person), "timestamp": _now(),
            "added": [], "removed": [], "modified": ["flake.nix"]}


def gitea_push_event(clone_url: str, ref: str, after: str, before: str = ZERO, *,
                     default_branch: str = "main",
                     message: str = "A commit\n") -> dict[str, Any]:
    """What Gitea (and Forgejo) send with `X-Gitea-Event: push`."""
    repo = _gitea_repo(clone_url, default_branch)
    instance, owner, _ = _split_clone_url(clone_url)
    commits = [] if after == ZERO else [_gitea_commit(repo["html_url"], after, message)]
    payload = {"ref": ref, "before": before, "after": after,
               "compare_url": f"{repo['html_url']}/compare/{before}...{after}",
               "commits": commits, "total_commits": len(commits),
               "head_commit": commits[0] if commits else None, "repository": repo,
               "pusher": _gitea_user(instance, owner), "sender": _gitea_user(instance, owner)}
    validate_gitea_event("push", payload)
    return payload


def gitea_pull_request_event(clone_url: str, number: int, head_sha: str, *,
                             action: str = "opened", base_ref: str = "main",
                             head_ref: str = "feature", title: str = "A change",
                             fork_clone_url: str | None = None,
                             merged: bool = False) -> dict[str, Any]:
    """What Gitea sends with `X-Gitea-Event: pull_request`: `action` is one of Gitea's
    (opened, synchronized, closed, reopened, ...); a head from `fork_clone_url` when given."""
    base_repo = _gitea_repo(clone_url, base_ref)
    head_repo = _gitea_repo(fork_clone_url, base_ref, repo_id=2) if fork_clone_url \
        else base_repo
    instance, owner, _ = _split_clone_url(clone_url)
    user = _gitea_user(instance, owner)
    html = f"{base_repo['html_url']}/pulls/{number}"
    closed = action == "closed"
    pull = {"id": number, "url": html, "number": number, "user": user, "title": title,
            "body": "", "labels": [], "milestone": None, "assignee": None,
            "assignees": None, "requested_reviewers": None, "state":
            "closed" if closed else "open", "draft": False, "is_locked": False,
            "comments": 0, "review_comments": 0, "additions": 1, "deletions": 0,
            "changed_files": 1, "html_url": html, "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch", "mergeable": True, "merged": merged,
            "merged_at": None, "merge_commit_sha": None, "merged_by": None,
            "allow_maintainer_edit": False,
            "base": {"label": base_ref, "ref": base_ref, "sha": ZERO,
                     "repo_id": base_repo["id"], "repo": base_repo},
            "head": {"label": head_ref, "ref": head_ref, "sha": head_sha,
                     "repo_id": head_repo["id"], "repo": head_repo},
            "merge_base": ZERO, "due_date": None, "created_at": _now(),
            "updated_at": _now(), "closed_at": _now() if closed else None,
            "pin_order": 0}
    # Go's nil pointers are null on the wire; the swagger types leave those fields out.
    pull = {k: v for k, v in pull.items() if v is not None}
    payload = {"action": action, "number": number, "pull_request": pull,
               "requested_reviewer": None, "repository": base_repo, "sender": user,
               "commit_id": "", "review": None}
    validate_gitea_event("pull_request", payload)
    return payload


def _gitlab_project(http_url: str, default_branch: str, project_id: int) -> dict[str, Any]:
    instance, namespace, name = _split_clone_url(http_url)
    web_url = f"{instance}/{namespace}/{name}"
    host = urllib.parse.urlsplit(instance).hostname
    ssh = f"git@{host}:{namespace}/{name}.git"
    return {"id": project_id, "name": name, "description": "", "web_url": web_url,
            "avatar_url": f"{web_url}/avatar.png", "git_ssh_url": ssh,
            "git_http_url": f"{web_url}.git", "namespace": namespace,
            "visibility_level": 20, "path_with_namespace": f"{namespace}/{name}",
            "default_branch": default_branch, "ci_config_path": "", "homepage": web_url,
            "url": ssh, "ssh_url": ssh, "http_url": f"{web_url}.git"}


def _gitlab_repository(project: dict[str, Any]) -> dict[str, Any]:
    return {"name": project["name"], "url": project["url"], "description": "",
            "homepage": project["homepage"], "git_http_url": project["git_http_url"],
            "git_ssh_url": project["git_ssh_url"], "visibility_level": 20}


def _gitlab_commit(web_url: str, sha: str, message: str) -> dict[str, Any]:
    return {"id": sha, "message": message, "title": message.splitlines()[0],
            "timestamp": _now(), "url": f"{web_url}/-/commit/{sha}",
            "author": {"name": "Circus Tests", "email": "tests@circus.invalid"},
            "added": [], "modified": ["flake.nix"], "removed": []}


def gitlab_push_event(http_url: str, ref: str, after: str, before: str = ZERO, *,
                      default_branch: str = "main", project_id: int = 1,
                      message: str = "A commit\n") -> dict[str, Any]:
    """What GitLab sends with `X-Gitlab-Event: Push Hook`."""
    project = _gitlab_project(http_url, default_branch, project_id)
    commits = [] if after == ZERO else [_gitlab_commit(project["web_url"], after, message)]
    payload = {"object_kind": "push", "event_name": "push", "before": before,
               "after": after, "ref": ref, "ref_protected": ref.endswith(default_branch),
               "checkout_sha": None if after == ZERO else after, "message": None,
               "user_id": 1, "user_name": "Circus Tests", "user_username": "circus",
               "user_email": "tests@circus.invalid", "user_avatar": "",
               "project_id": project_id, "project": project,
               "repository": _gitlab_repository(project), "commits": commits,
               "total_commits_count": len(commits)}
    if payload["checkout_sha"] is None:
        # A deleted branch: GitLab sends null; the published type has only a string.
        payload["checkout_sha"] = ""
    payload = {k: v for k, v in payload.items() if v is not None}
    validate_gitlab_event("push", payload)
    return payload


def gitlab_merge_request_event(http_url: str, iid: int, last_commit: str, *,
                               action: str = "open", target_branch: str = "main",
                               source_branch: str = "feature", title: str = "A change",
                               source_http_url: str | None = None,
                               project_id: int = 1) -> dict[str, Any]:
    """What GitLab sends with `X-Gitlab-Event: Merge Request Hook`: `action` is GitLab's
    (open, update, close, reopen, merge); from `source_http_url`'s project when given."""
    target = _gitlab_project(http_url, target_branch, project_id)
    source = _gitlab_project(source_http_url, target_branch, project_id + 1) \
        if source_http_url else target
    user = {"id": 1, "name": "Circus Tests", "username": "circus", "avatar_url": "",
            "email": "tests@circus.invalid"}
    state = {"close": "closed", "merge": "merged"}.get(action, "opened")
    commit = _gitlab_commit(source["web_url"], last_commit, f"{title}\n")
    attributes = {
        "id": 100 + iid, "iid": iid, "target_branch": target_branch,
        "source_branch": source_branch, "source_project_id": source["id"],
        "target_project_id": target["id"], "author_id": 1, "title": title,
        "created_at": _now(), "updated_at": _now(), "milestone_id": None, "state": state,
        "merge_status": "can_be_merged", "description": "", "source": source,
        "target": target,
        "last_commit": {k: commit[k] for k in ("id", "message", "timestamp", "url",
                                               "author")},
        "work_in_progress": False, "url": f"{target['web_url']}/-/merge_requests/{iid}",
        "action": action, "assignee": user}
    payload = {"object_kind": "merge_request", "event_type": "merge_request",
               "user": user, "project": target, "repository": _gitlab_repository(target),
               "object_attributes": attributes, "labels": [], "changes": {},
               "assignees": [user], "reviewers": []}
    validate_gitlab_event("merge_request", payload)
    return payload
