"""Hydra's JSON API, as a Hydra user's script drives it, against real `circus run`
processes; every response is validated against Hydra's own OpenAPI document
(`../shared/specs/hydra-api.yaml`) with openapi-core.

Hydra's document disagrees with Hydra (and with its own examples) in a few places; the
validator reads it with these errata, each one what Hydra really serves:
- `finished` and `hasnewbuilds` are 0/1 integers (the document's own examples say 1);
- a queued build has no start or stop time yet: `starttime`/`stoptime` are null;
- a jobset never checked or never failed has null `lastcheckedtime`/`errortime` in the
  overview too, as in the Jobset schema;
- `/jobset/../evals` answers one `Evaluations` object (the guide's and the example's
  shape), `evals` and `/eval/{id}/builds` are lists of JobsetEval / Build objects;
- a JobsetEvalInput `value` is a string or null (the guide: "value": "false"; its
  examples: null), where the document asks for a boolean and a oneOf that null fails;
- Circus answers 400 where Hydra answers 500, and errors the document does not list
  (a 403, a 404) carry its `Error` schema.
"""

from __future__ import annotations

import copy
import http.cookiejar
import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_core import OpenAPI
from openapi_core.templating.paths.exceptions import PathNotFound
from openapi_core.testing import MockRequest, MockResponse

from tests.helpers.builders import ED25519
from tests.helpers.e2e import ADMIN_KEY, Circus, make_flake_repo, wait_for
from tests.helpers.repos import commit_files
from tests.helpers.suite import SHARED, host_system

pytestmark = pytest.mark.slow

SPEC = yaml.safe_load((SHARED / "specs" / "hydra-api.yaml").read_text())
SERVER = "https://hydra.nixos.org"
ERROR_REF = {"$ref": "#/components/schemas/Error"}


def with_errata(spec: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    schemas = spec["components"]["schemas"]
    zero_one = {"type": "integer", "enum": [0, 1]}
    schemas["Build"]["properties"]["finished"] = zero_one
    schemas["JobsetEval"]["properties"]["hasnewbuilds"] = zero_one
    for field in ("starttime", "stoptime"):
        schemas["Build"]["properties"][field]["nullable"] = True
    for field in ("errortime", "lastcheckedtime"):
        schemas["JobsetOverview"]["items"]["properties"][field]["nullable"] = True
    schemas["Evaluations"]["properties"]["evals"]["items"] = {
        "$ref": "#/components/schemas/JobsetEval"}
    schemas["JobsetEvalBuilds"]["items"] = {"$ref": "#/components/schemas/Build"}
    schemas["JobsetEvalInput"]["properties"]["value"] = {"type": "string", "nullable": True}
    evals = spec["paths"]["/jobset/{project-id}/{jobset-id}/evals"]["get"]["responses"]
    evals["200"]["content"]["application/json"]["schema"] = {
        "$ref": "#/components/schemas/Evaluations"}
    error = {"description": "error", "content": {"application/json": {"schema": ERROR_REF}}}
    for item in spec["paths"].values():
        for operation in item.values():
            responses = operation["responses"]
            if "500" in responses:
                responses["400"] = responses["500"]
            responses.setdefault("default", error)
    return spec


OPENAPI = OpenAPI.from_dict(with_errata(SPEC))


def test_the_errata_are_hydras_own_examples() -> None:
    """Hydra's examples fail its schemas exactly where the errata say, and pass with them."""
    examples = SPEC["components"]["examples"]
    build = examples["build-success"]["value"]
    evals = examples["evals-success"]["value"]

    def check(spec: dict[str, Any], path: str, body: Any) -> bool:
        api = OpenAPI.from_dict(spec)
        try:
            api.validate_response(MockRequest(SERVER, "get", path),
                                  MockResponse(json.dumps(body).encode(), 200,
                                               content_type="application/json"))
        except Exception:
            return False
        return True

    assert not check(SPEC, "/build/1", build)
    assert check(with_errata(SPEC), "/build/1", build)
    assert not check(SPEC, "/jobset/p/j/evals", evals)
    assert check(with_errata(SPEC), "/jobset/p/j/evals", evals)


# The key sets Hydra's own serialisers give (its Schema/Result/*.pm as_json and its
# API controller's buildToHash), whatever its looser document allows.
PROJECT_KEYS = {"name", "displayname", "description", "homepage", "owner", "enabled",
                "hidden", "enable_dynamic_run_command", "jobsets"}
JOBSET_KEYS = {"name", "project", "description", "nixexprinput", "nixexprpath", "errormsg",
               "errortime", "lastcheckedtime", "triggertime", "enabled", "enableemail",
               "enable_dynamic_run_command", "visible", "emailoverride", "keepnr",
               "checkinterval", "schedulingshares", "fetcherrormsg", "starttime", "type",
               "flake", "inputs"}
LISTED_KEYS = {"id", "project", "jobset", "job", "system", "nixname", "finished", "timestamp"}


class Hydra:
    """A Hydra client: cookies, `Accept: application/json`, no redirects followed; every
    answer is checked against the document."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.validated: set[tuple[str, str, int]] = set()

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any, **kwargs: Any) -> None:
                return None

        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), NoRedirect)

    def call(self, method: str, path: str, body: Any = None, *, form: bool = False,
             key: str | None = None, validate: bool = True) -> tuple[int, Any, Any]:
        data = None
        headers = {"Accept": "application/json"}
        if body is not None and form:
            data = "&".join(f"{k}={v}" for k, v in body.items()).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if key:
            headers["Authorization"] = f"Bearer {key}"
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers=headers)
        try:
            with self.opener.open(req, timeout=30) as resp:
                status, raw, got = resp.status, resp.read(), resp.headers
        except urllib.error.HTTPError as err:
            status, raw, got = err.code, err.read(), err.headers
        ctype = got.get("Content-Type", "").split(";")[0]
        if validate:
            self._validate(method, path, status, raw, ctype, got)
        parsed = json.loads(raw) if ctype == "application/json" and raw else raw
        return status, parsed, got

    def _validate(self, method: str, path: str, status: int, raw: bytes, ctype: str,
                  headers: Any) -> None:
        request = MockRequest(SERVER, method.lower(), path.split("?")[0],
                              args=dict(urllib.parse.parse_qsl(path.partition("?")[2])))
        response = MockResponse(raw, status, content_type=ctype or "application/json",
                                headers=dict(headers))
        try:
            OPENAPI.validate_response(request, response)
        except PathNotFound:
            return  # not one of the document's 17 paths (login extras, actions)
        self.validated.add((method, path.split("?")[0], status))


@pytest.fixture
def circus(tmp_path: Path, database_url: str):
    server = Circus(tmp_path, database_url, "server,evaluator,runner", "hydra",
                    settings={"CIRCUS_SERVER__ALLOWED_URL_SCHEMES": '["file", "https"]',
                              "CIRCUS_QUEUE_RUNNER__WORKERS": "4"}).start()
    yield server
    server.stop()


RELEASE_NIX = """{ greeting, enableExtra ? false, src }:
let
  mk = name: system: builtins.derivation {
    inherit name system;
    builder = "/bin/sh";
    args = [ "-c" "echo ${greeting}; /bin/mkdir $out" ];
  };
in {
  hello = mk "legacy-hello" "@SYSTEM@";
  # No runner here builds for this system: the build stays queued.
  elsewhere = mk "legacy-elsewhere" "riscv64-nowhere";
}
"""


def _wait_eval(hydra: Hydra, project: str, jobset: str, known: int) -> dict:
    def newer() -> dict | None:
        status, body, _ = hydra.call("GET", f"/jobset/{project}/{jobset}/evals")
        assert status == 200, body
        return next((e for e in body["evals"] if e["id"] > known), None)

    return wait_for(newer, 120, f"an evaluation of {project}:{jobset}")


def _wait_builds(hydra: Hydra, eval_id: int, done: set[str] | None = None
                 ) -> dict[str, dict]:
    """The evaluation's builds once those of `done` (default: all) are finished."""
    def finished() -> dict[str, dict] | None:
        _, builds, _ = hydra.call("GET", f"/eval/{eval_id}/builds")
        by_job = {b["job"]: b for b in builds}
        return by_job if all(by_job[j]["finished"] == 1 for j in done or by_job) else None

    return wait_for(finished, 180, f"builds of evaluation {eval_id}")


def test_a_hydra_users_session(circus: Circus, tmp_path: Path) -> None:
    repo = make_flake_repo(tmp_path / "repo")
    commit_files(repo, {"release.nix": RELEASE_NIX.replace("@SYSTEM@", host_system())},
                 "legacy expression")
    status, _ = circus.request("POST", "/api/v1/users", {
        "username": "alice", "password": "correct horse battery", "role": "admin"})
    assert status == 201
    hydra = Hydra(circus.url)

    # Not logged in: writes are refused, reads are public.
    status, body, _ = hydra.call("PUT", "/project/demo", {"displayname": "Demo"})
    assert (status, body) == (403, {"error": "This page requires you to sign in."})
    status, body, _ = hydra.call("POST", "/login", {"username": "alice", "password": "nope"})
    assert (status, body) == (403, {"error": "Bad username or password."})
    # Hydra's login: 302 to /current-user with the cookie, the user as the body (Hydra's
    # document has no 302 for it, so this answer is not validated against it).
    status, user, headers = hydra.call("POST", "/login", {
        "username": "alice", "password": "correct horse battery"}, validate=False)
    assert (status, headers["Location"]) == (302, f"{circus.url}/current-user")
    assert user == {"username": "alice", "fullname": "", "emailaddress": "",
                    "userroles": ["admin"]}
    assert hydra.call("GET", "/current-user")[1]["username"] == "alice"

    # Projects.
    status, body, headers = hydra.call("PUT", "/project/demo", {
        "displayname": "Demo", "description": "a demo", "homepage": "https://example.com/",
        "enabled": True, "visible": True})
    assert status == 201
    assert body == {"name": "demo", "type": "project", "uri": f"{circus.url}/project/demo",
                    "redirect": f"{circus.url}/project/demo"}
    assert headers["Location"] == f"{circus.url}/project/demo"
    status, body, _ = hydra.call("PUT", "/project/demo", {"description": "the demo"},
                                 form=True)
    assert (status, body) == (200, {"redirect": f"{circus.url}/project/demo"})

    # A flake jobset on a local git repository, then a legacy one with inputs.
    status, body, _ = hydra.call("PUT", "/jobset/demo/flake", {
        "type": 1, "flake": f"git+file://{repo}", "enabled": 1, "visible": True,
        "checkinterval": 0, "keepnr": 3, "schedulingshares": 100, "description": "flake"})
    assert (status, body["type"], body["name"]) == (201, "jobset", "flake")
    legacy = {"type": 0, "nixexprinput": "src", "nixexprpath": "release.nix", "enabled": 1,
              "checkinterval": 0, "inputs": {
                  "src": {"type": "git", "value": f"file://{repo} main"},
                  "greeting": {"type": "string", "value": "hi"},
                  "enableExtra": {"type": "boolean", "value": "false"}}}
    bad_type = copy.deepcopy(legacy)
    bad_type["inputs"]["greeting"]["type"] = "sysbuild"
    status, body, _ = hydra.call("PUT", "/jobset/demo/legacy", bad_type)
    assert status == 400
    assert body["error"] == ("Invalid input type \u2018sysbuild\u2019; valid types: "
                             "boolean, git, nix, path, string.")
    assert hydra.call("PUT", "/jobset/demo/legacy", legacy)[0] == 201
    assert hydra.call("PUT", "/jobset/demo/legacy", legacy)[0] == 200

    status, jobset, _ = hydra.call("GET", "/jobset/demo/legacy")
    assert status == 200
    assert (jobset["type"], jobset["enabled"], jobset["nixexprinput"],
            jobset["nixexprpath"], jobset["flake"], jobset["errormsg"]) == (
        0, 1, "src", "release.nix", "", "")
    assert jobset["inputs"]["greeting"] == {"name": "greeting", "type": "string",
                                            "value": "hi", "emailresponsible": False}
    assert jobset["inputs"]["src"]["value"] == f"file://{repo} main"
    flake = hydra.call("GET", "/jobset/demo/flake")[1]
    assert (flake["type"], flake["flake"]) == (1, f"git+file://{repo}")
    # One key set for flake and legacy jobsets: `visible`, no `hidden` or `jobsetinputs`.
    assert set(flake) == set(jobset) == JOBSET_KEYS
    assert flake["visible"] is True and flake["inputs"] == {}
    projects = hydra.call("GET", "/")[1]
    assert [(p["name"], p["jobsets"], p["description"]) for p in projects] == [
        ("demo", ["flake", "legacy"], "the demo")]
    # No `declarative` (no spec file); the owner is who created it.
    assert set(projects[0]) == PROJECT_KEYS and projects[0]["owner"] == "alice"
    assert hydra.call("GET", "/project/demo")[1] == projects[0]

    # Push-trigger both (the API key works as well as the cookie), wait, read.
    status, body, _ = hydra.call("POST", "/api/push?jobsets=demo:flake,demo:legacy&force=1",
                                 key=ADMIN_KEY)
    assert (status, body) == (200, {"jobsetsTriggered": ["demo:flake", "demo:legacy"]})
    flake_eval = _wait_eval(hydra, "demo", "flake", 0)
    legacy_eval = _wait_eval(hydra, "demo", "legacy", 0)
    assert legacy_eval["hasnewbuilds"] == 1
    inputs = legacy_eval["jobsetevalinputs"]
    assert inputs["greeting"] == {"type": "string", "value": "hi", "uri": None,
                                  "revision": None, "dependency": None}
    assert inputs["src"]["uri"] == f"file://{repo}" and len(inputs["src"]["revision"]) == 40
    assert hydra.call("GET", f"/eval/{legacy_eval['id']}")[1] == legacy_eval
    status, _, headers = hydra.call("GET", "/jobset/demo/legacy/latest-eval")
    assert (status, headers["Location"]) == (302, f"{circus.url}/eval/{legacy_eval['id']}")
    # Every jobset's evaluations with new builds, as Hydra's getEvals describes them; a
    # first evaluation's VCS inputs all count as changed.
    summaries = {s["eval"]["id"]: s for s in hydra.call("GET", "/evals")[1]}
    assert {flake_eval["id"], legacy_eval["id"]} <= set(summaries)
    legacy_summary = summaries[legacy_eval["id"]]
    assert set(legacy_summary) == {"eval", "nrScheduled", "nrSucceeded", "nrFailed", "diff",
                                   "changedInputs"}
    assert legacy_summary["eval"] == legacy_eval and legacy_summary["diff"] == 0
    assert {i["uri"] for i in legacy_summary["changedInputs"]} == {f"file://{repo}"}
    assert hydra.call("GET", "/evals?page=2")[1] == []
    # A jobset's evaluations page by page (one here: page 2 is empty, and says so).
    second = hydra.call("GET", "/jobset/demo/legacy/evals?page=2")[1]
    assert (second["evals"], second["previous"], second["last"]) == ([], "?page=1", "?page=1")
    assert "next" not in second
    overview = hydra.call("GET", "/api/jobsets?project=demo")[1]
    assert [j["name"] for j in overview] == ["flake", "legacy"]

    builds = _wait_builds(hydra, flake_eval["id"])
    docs = hydra.call("GET", f"/build/{builds['docs']['id']}")[1]
    assert (docs["finished"], docs["buildstatus"], docs["project"], docs["jobset"]) == (
        1, 0, "demo", "flake")
    assert docs["jobsetevals"] == [flake_eval["id"]]
    out = docs["buildoutputs"]["out"]["path"]
    assert docs["buildproducts"]["1"]["path"] == f"{out}/share/doc"
    assert docs["buildproducts"]["1"]["type"] == "doc"
    assert docs["buildmetrics"]["lines"] == {"name": "lines", "value": 42.0, "unit": "lines"}
    constituents = hydra.call("GET", f"/build/{builds['release']['id']}/constituents")[1]
    assert sorted(b["job"] for b in constituents) == ["docs", "hello"]
    # An output with no declared products is one nix-build product named as Hydra does.
    hello_build = hydra.call("GET", f"/build/{builds['hello']['id']}")[1]
    hello_out = hello_build["buildoutputs"]["out"]["path"]
    assert hello_build["buildproducts"] == {"1": {
        "type": "nix-build", "subtype": "", "name": "hello-1.0", "path": hello_out,
        "defaultpath": "", "filesize": None, "sha256hash": None}}
    # Hydra's other URLs: an evaluation's store paths, a product's file.
    paths = hydra.call("GET", f"/eval/{flake_eval['id']}/store-paths")[1]
    succeeded = {o["path"] for b in builds.values() if b["buildstatus"] == 0
                 for o in b["buildoutputs"].values()}
    assert hello_out in paths and out in paths and paths == sorted(succeeded)
    for tail in ("", "/index.html"):
        status, page, _ = hydra.call("GET", f"/build/{docs['id']}/download/1{tail}")
        assert (status, page) == (200, b"<h1>manual</h1>\n"), tail
    status, body, _ = hydra.call("GET", f"/build/{docs['id']}/download/1/missing.html")
    assert status == 404 and "missing.html" in body["error"]
    # A derivation's log, whole or its tail, as Hydra's /log/{drv} serves it.
    drv = hello_build["drvpath"].removeprefix("/nix/store/")
    status, text, _ = hydra.call("GET", f"/log/{drv}")
    assert status == 200 and b"hello from the build" in text
    status, text, _ = hydra.call("GET", f"/log/{drv}?tail=1")
    assert status == 200 and text.count(b"\n") <= 1 and text.strip()
    assert hydra.call("GET", f"/log/{drv}?tail=x")[0] == 400
    missing = "0" * 32 + "-missing.drv"
    status, body, _ = hydra.call("GET", f"/log/{missing}")
    assert (status, body) == (404, {"error": f"The build log of /nix/store/{missing} is "
                                             "not available."})
    latest = hydra.call("GET", "/api/latestbuilds?nr=100&project=demo")[1]
    assert latest and all(set(b) == LISTED_KEYS | {"buildstatus"} for b in latest)
    assert {b["job"]: b["buildstatus"] for b in latest}["hello"] == 0

    # Redirects to the latest build, by system too.
    hello = builds["hello"]["id"]
    for tail in ("latest-finished", f"latest-for/{host_system()}"):
        status, _, headers = hydra.call("GET", f"/job/demo/flake/hello/{tail}")
        assert (status, headers["Location"]) == (302, f"{circus.url}/build/{hello}"), tail

    # Search by project name and by output path.
    found = hydra.call("GET", "/search?query=dem")[1]
    assert [p["name"] for p in found["projects"]] == ["demo"]
    found = hydra.call("GET", f"/search?query={out}")[1]
    assert [b["id"] for b in found["builds"]] == [docs["id"]]
    status, body, _ = hydra.call("GET", "/search?query=")
    assert (status, body) == (400, {"error": "Query is empty."})

    # Restart a failed build (with PUT, as Hydra's clients may); cancel a queued one.
    broken = builds["broken"]["id"]
    status, _, headers = hydra.call("PUT", f"/build/{broken}/restart")
    assert (status, headers["Location"]) == (302, f"{circus.url}/build/{broken}")
    assert hydra.call("GET", f"/build/{broken}")[1]["jobsetevals"] == [flake_eval["id"]]
    legacy_builds = _wait_builds(hydra, legacy_eval["id"], {"hello"})
    queued = legacy_builds["elsewhere"]
    assert (queued["finished"], queued["buildstatus"], queued["starttime"]) == (0, None, None)
    waiting = {b["id"]: b for b in hydra.call("GET", "/api/queue")[1]}[queued["id"]]
    assert set(waiting) == LISTED_KEYS | {"priority"} and waiting["finished"] == 0
    # /queue is the whole Build document of each; the queue runner's figures count it.
    in_queue = {b["id"]: b for b in hydra.call("GET", "/queue")[1]}
    assert in_queue[queued["id"]] == hydra.call("GET", f"/build/{queued['id']}")[1]
    assert isinstance(hydra.call("GET", "/status")[1], list)
    runner = hydra.call("GET", "/queue-runner-status")[1]
    assert runner["status"] == "up" and runner["nrQueuedBuilds"] >= 1
    assert hydra.call("GET", "/machines")[1] == {}
    status, _, _ = hydra.call("POST", "/api/v1/admin/builders", {
        "name": "arm", "ssh_uri": "ssh-ng://nix@arm.invalid", "systems": ["aarch64-linux"],
        "max_jobs": 3, "supported_features": ["kvm"], "public_host_key": ED25519},
        key=ADMIN_KEY)
    assert status == 201
    arm = hydra.call("GET", "/machines")[1]["ssh-ng://nix@arm.invalid"]
    assert (arm["enabled"], arm["systemTypes"], arm["supportedFeatures"], arm["maxJobs"],
            arm["currentJobs"]) == (True, ["aarch64-linux"], ["kvm"], 3, 0)
    assert list(hydra.call("GET", "/queue-runner-status")[1]["machines"]) == [
        "ssh-ng://nix@arm.invalid"]
    # A GET with the cookie alone would be any site's link: it needs the CSRF token.
    status, body, _ = hydra.call("GET", f"/build/{queued['id']}/bump")
    assert status == 403 and "X-CSRF-Token" in body["error"]
    status, _, headers = hydra.call("GET", f"/build/{queued['id']}/bump", key=ADMIN_KEY)
    assert (status, headers["Location"]) == (302, f"{circus.url}/build/{queued['id']}")
    status, _, headers = hydra.call("PUT", f"/build/{queued['id']}/keep/1")
    assert (status, headers["Location"]) == (302, f"{circus.url}/build/{queued['id']}")
    status, _, headers = hydra.call("POST", f"/build/{queued['id']}/cancel")
    assert (status, headers["Location"]) == (302, f"{circus.url}/build/{queued['id']}")
    cancelled = hydra.call("GET", f"/build/{queued['id']}")[1]
    assert (cancelled["finished"], cancelled["buildstatus"]) == (1, 4)
    status, body, _ = hydra.call("POST", f"/build/{queued['id']}/cancel")
    assert (status, body) == (400, {"error": "Build has already finished."})

    # Delete the jobset, then the project: gone, with its builds.
    status, body, _ = hydra.call("DELETE", "/jobset/demo/legacy")
    assert (status, body) == (200, {"redirect": f"{circus.url}/project/demo"})
    assert hydra.call("GET", "/jobset/demo/legacy")[0] == 404
    status, body, _ = hydra.call("DELETE", "/project/demo")
    assert (status, body) == (200, {"redirect": f"{circus.url}/"})
    status, body, _ = hydra.call("GET", "/project/demo")
    assert (status, body) == (404, {"error": "Project \u2018demo\u2019 doesn't exist."})
    status, body, _ = hydra.call("GET", f"/build/{docs['id']}")
    assert (status, body) == (404, {"error": f"Build with ID {docs['id']} doesn't exist."})
    assert hydra.call("POST", "/logout")[0] == 204
    assert hydra.call("GET", "/current-user")[0] == 403

    documented = {(m, p) for m, p, _ in hydra.validated}
    assert len(documented) >= 15, sorted(documented)


class FollowingClient(Hydra):
    """A Hydra client as scripts write them with a requests-like library: a cookie jar,
    JSON, and every redirect followed with a GET (as requests does for 302)."""

    def call(self, method: str, path: str, body: Any = None, *, form: bool = False,
             key: str | None = None, validate: bool = True) -> tuple[int, Any, Any]:
        for _ in range(5):
            status, parsed, got = super().call(method, path, body, form=form, key=key,
                                               validate=False)
            if status not in (301, 302, 303):
                return status, parsed, got
            method, body, path = "GET", None, got["Location"].removeprefix(self.base)
        raise AssertionError(f"too many redirects at {path}")


def test_a_client_that_follows_redirects_never_notices_circus(circus: Circus,
                                                              tmp_path: Path) -> None:
    repo = make_flake_repo(tmp_path / "repo")
    circus.request("POST", "/api/v1/users", {"username": "bob", "role": "admin",
                                             "password": "correct horse battery"})
    hydra = FollowingClient(circus.url)
    status, user, _ = hydra.call("POST", "/login", {"username": "bob",
                                                    "password": "correct horse battery"})
    assert (status, user["username"]) == (200, "bob")  # /current-user, after the 302
    status, created, _ = hydra.call("PUT", "/project/follow", {"displayname": "Follow"})
    assert (status, created["type"]) == (201, "project")
    project = hydra.call("GET", "/project/follow")[1]
    assert (project["name"], project["owner"]) == ("follow", "bob")
    status, created, _ = hydra.call("PUT", "/jobset/follow/main", {
        "type": 1, "flake": f"git+file://{repo}", "enabled": 1, "checkinterval": 0})
    assert (status, created["type"]) == (201, "jobset")
    status, body, _ = hydra.call("POST", "/api/push?jobsets=follow:main")
    assert (status, body) == (200, {"jobsetsTriggered": ["follow:main"]})
    evaluation = _wait_eval(hydra, "follow", "main", 0)
    broken = _wait_builds(hydra, evaluation["id"], {"broken"})["broken"]
    assert (broken["finished"], broken["buildstatus"]) == (1, 1)
    status, again, _ = hydra.call("PUT", f"/build/{broken['id']}/restart")
    assert (status, again["id"]) == (200, broken["id"])  # the build, after the 302


def test_shield_and_latest_answer_hydra_clients(circus: Circus, tmp_path: Path) -> None:
    """`/shield` is a shields.io endpoint document and `/latest` goes to Hydra's build
    page (these paths are registered by badges.py, which must hand JSON clients over)."""
    repo = make_flake_repo(tmp_path / "repo")
    hydra = Hydra(circus.url)
    hydra.call("PUT", "/project/s", {}, key=ADMIN_KEY)
    hydra.call("PUT", "/jobset/s/main", {"type": 1, "flake": f"git+file://{repo}",
                                         "checkinterval": 0}, key=ADMIN_KEY)
    hydra.call("POST", "/api/push?jobsets=s:main", key=ADMIN_KEY)
    evaluation = _wait_eval(hydra, "s", "main", 0)
    hello = _wait_builds(hydra, evaluation["id"], {"hello"})["hello"]
    status, body, _ = hydra.call("GET", "/job/s/main/hello/shield")
    assert (status, body) == (200, {"schemaVersion": 1, "label": "hydra build",
                                    "message": "passing", "color": "green"})
    status, _, headers = hydra.call("GET", "/job/s/main/hello/latest")
    assert (status, headers["Location"]) == (302, f"{circus.url}/build/{hello['id']}")
