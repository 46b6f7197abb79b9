"""Issue 10, every hole attacked against one real `circus run` (server, evaluator and
runner in one process) that has evaluated and built a real flake from a real git
repository with real Nix. Each test performs the attack over HTTP as an outsider would,
asserts the refusal, and asserts that nothing leaked: not in the answers, the rows, the
evaluations, nor the process's own log. The in-process tests beside this module
(test_security_*.py) go through the many variants; this one shows the running program
refuses them.

Holes 1, 6, 7 and 9 have their real-run tests in test_security_products.py,
test_security_secrets.py, test_security_logs.py and test_security_load.py."""

from __future__ import annotations

import asyncio
import io
import json
import lzma
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import attrs
import pytest

from circus.db import embedded
from tests.helpers.e2e import (
    ADMIN_KEY,
    NONCE,
    READONLY_KEY,
    Circus,
    evaluations,
    trigger_and_wait_eval,
    wait_all_finished,
    wait_for,
)
from tests.helpers.repos import commit_files, git
from tests.helpers.suite import TEMPLATE, host_system

pytestmark = pytest.mark.slow

CREATOR_KEY = "circus_attack_creator_key"
EVAL_KEY = "circus_attack_eval_key"
CONFIG = "".join(
    f'[[declarative.api_keys]]\nname = "{name}"\nkey = "{key}"\nrole = "{role}"\n'
    for name, key, role in (("admin", ADMIN_KEY, "admin"), ("ro", READONLY_KEY, "read-only"),
                            ("creator", CREATOR_KEY, "create-projects"),
                            ("eval", EVAL_KEY, "eval-jobset")))
SECRET = f"s3cr3t-of-the-server-{NONCE}"
TOKEN = f"ghp_attackT0ken{NONCE[:8]}"
PASSWORD = "correct horse battery"
KEYWORDS = ("let", "in", "rec", "inherit", "or")

FLAKE = """
{
  outputs = { self }:
    let
      mk = name: builtins.derivation {
        inherit name; system = "@SYSTEM@"; nonce = "@NONCE@"; builder = "/bin/sh";
        args = [ "-c" "echo building ${name}; /bin/mkdir $out; echo ${name} > $out/n" ];
      };
    in { hydraJobs = { hello = mk "hello"; @KEYWORD_JOBS@ }; };
}
"""
# Reads a file of the server through a path input's `-I root=...` and prints it in an
# evaluation error: what hole 2's attacker wants to run.
LEAK_NIX = """{ root ? null }:
{ leak = throw (builtins.readFile <root/server-secret>); }
"""


@attrs.define
class World:
    api: Circus
    database_url: str
    repo: Path
    tmp: Path
    project_id: int
    jobset_id: int
    builds: dict[str, dict]


def _flake() -> str:
    jobs = " ".join(f'"{k}" = mk "kw-{k}";' for k in KEYWORDS)
    return (FLAKE.replace("@SYSTEM@", host_system()).replace("@NONCE@", NONCE)
            .replace("@KEYWORD_JOBS@", jobs))


async def _create_database(pg: embedded.EmbeddedPostgres, name: str) -> None:
    admin = await asyncpg.connect(pg.admin_url())
    await admin.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    await admin.close()


async def _drop_database(pg: embedded.EmbeddedPostgres, name: str) -> None:
    admin = await asyncpg.connect(pg.admin_url())
    await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await admin.close()


@pytest.fixture(scope="module")
def world(pg_server: embedded.EmbeddedPostgres,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("attacks")
    name = f"t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_create_database(pg_server, name))
    (tmp / "server-secret").write_text(SECRET)
    repo = tmp / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit_files(repo, {"flake.nix": _flake(), "release.nix": LEAK_NIX}, "jobs")
    (tmp / "circus-e2e.toml").write_text(CONFIG)
    api = Circus(tmp, pg_server.admin_url(name), "server,evaluator,runner", "attacks",
                 settings={"CIRCUS_SERVER__LOGIN_FREE_FAILURES": "3",
                           "CIRCUS_SERVER__LOGIN_BACKOFF_MAX": "2",
                           "CIRCUS_SERVER__LOGIN_ATTEMPTS_BURST": "100"}).start()
    try:
        project = api.post("/api/v1/projects", {"name": "p",
                                                "repository_url": f"file://{repo}"})
        jobset = api.post(f"/api/v1/projects/{project['id']}/jobsets", {
            "name": "main", "nix_expression": "hydraJobs", "flake": True,
            "check_interval": 0})
        api.post("/api/v1/channels", {"name": "kw", "project_id": project["id"],
                                      "jobset_id": jobset["id"]})
        evaluation = trigger_and_wait_eval(api, jobset["id"], 0)
        assert evaluation["status"] == "succeeded", evaluation
        builds = wait_all_finished(api, evaluation["id"])
        assert {b["status"] for b in builds.values()} == {"succeeded"}, builds
        yield World(api, pg_server.admin_url(name), repo, tmp, project["id"], jobset["id"],
                    builds)
    finally:
        api.stop()
        asyncio.run(_drop_database(pg_server, name))


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _fetch(world: World, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(world.database_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


def _leaks(world: World, *secrets: str) -> list[str]:
    """Which secrets the running process wrote to its own log."""
    text = world.api.log_text()
    return [secret for secret in secrets if secret in text]


async def _session(http: aiohttp.ClientSession, username: str, role: str) -> str:
    """A user of `role` logged in on `http`; returns the session's CSRF token."""
    async with http.post("/api/v1/users", headers=_bearer(ADMIN_KEY), json={
            "username": username, "password": PASSWORD, "role": role}) as resp:
        assert resp.status == 201, await resp.text()
    async with http.post("/api/v1/auth/login",
                         json={"username": username, "password": PASSWORD}) as resp:
        assert resp.status == 200, await resp.text()
    async with http.get("/api/v1/me") as resp:
        return (await resp.json())["csrf_token"]


def _client(world: World) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(world.api.url, cookie_jar=aiohttp.CookieJar(unsafe=True))


def _legacy(world: World, **inputs: dict[str, str]) -> dict[str, Any]:
    return {"type": 0, "nixexprinput": "src", "nixexprpath": "release.nix", "enabled": 1,
            "checkinterval": 0, "inputs": {
                "src": {"type": "git", "value": f"file://{world.repo} main"}, **inputs}}


# Hole 2 ---------------------------------------------------------------------------

async def test_hole_2_path_inputs_cannot_reach_the_servers_files(world: World) -> None:
    root = {"root": {"type": "path", "value": str(world.tmp)}}
    async with _client(world) as http:
        async with http.put("/jobset/p/evil", headers=_bearer(CREATOR_KEY),
                            json=_legacy(world, **root)) as resp:
            assert resp.status == 403, await resp.text()
            assert "may not add jobset inputs (root)" in (await resp.json())["error"]
        async with http.put("/jobset/p/evil", headers=_bearer(ADMIN_KEY),
                            json=_legacy(world, **root)) as resp:
            assert resp.status == 400, await resp.text()
            assert (await resp.json())["error"] == (
                "inputs.root.value: path inputs are disabled: evaluator.allowed_path_inputs "
                "lists no directory")
        # The jobset without the path input is allowed; then the input is planted in the
        # database, as a declarative file or an older version could have written it.
        async with http.put("/jobset/p/legacy", headers=_bearer(ADMIN_KEY),
                            json=_legacy(world)) as resp:
            assert resp.status == 201, await resp.text()
    assert [r["name"] for r in await _fetch(world, "SELECT name FROM jobsets ORDER BY id")
            ] == ["main", "legacy"]
    jobset_id = (await _fetch(world, "SELECT id FROM jobsets WHERE name = 'legacy'"))[0][0]
    await _fetch(world, "INSERT INTO jobset_inputs (jobset_id, name, type, value) "
                 "VALUES ($1, 'root', 'path', $2)", jobset_id, str(world.tmp))
    evaluation = trigger_and_wait_eval(world.api, jobset_id, 0)
    assert evaluation["status"] == "failed"
    assert evaluation["error_message"] == (
        "refused to evaluate: inputs.root: path inputs are disabled: "
        "evaluator.allowed_path_inputs lists no directory")
    stored = await _fetch(world, "SELECT error_message FROM evaluation_errors UNION ALL "
                          "SELECT error_message FROM evaluations")
    assert [r[0] for r in stored if r[0] and SECRET in r[0]] == []
    assert _leaks(world, SECRET) == []


# Hole 3 ---------------------------------------------------------------------------

async def test_hole_3_git_urls_cannot_run_commands_or_reach_private_hosts(
        world: World) -> None:
    marker = world.tmp / f"pwned-{uuid.uuid4().hex}"
    inputs = f"/api/v1/projects/{world.project_id}/jobsets/{world.jobset_id}/inputs"
    attacks = {
        f"ext::touch%S{marker} main": "scheme 'ext' is never allowed",
        "fd::3": "scheme 'fd' is never allowed",
        "http://169.254.169.254/latest/meta-data/ main": "host '169.254.169.254'",
        "https://example.com/r --upload-pack=touch": "",
    }
    async with _client(world) as http:
        for value, why in attacks.items():
            async with http.post(inputs, headers=_bearer(ADMIN_KEY), json={
                    "name": "dep", "type": "git", "value": value}) as resp:
                assert resp.status == 400, (value, await resp.text())
                assert why in (await resp.json())["error"], value
            async with http.put("/jobset/p/evil", headers=_bearer(ADMIN_KEY), json=_legacy(
                    world, dep={"type": "git", "value": value})) as resp:
                assert resp.status == 400, (value, await resp.text())
        async with http.post("/api/v1/projects", headers=_bearer(ADMIN_KEY), json={
                "name": "metadata", "repository_url": "http://169.254.169.254/x"}) as resp:
            assert resp.status == 400
            assert "private" in (await resp.json())["error"]
    # Planted around the API, on a legacy jobset whose inputs the evaluator fetches: it
    # checks again and never runs git on it.
    async with _client(world) as http, http.put(
            "/jobset/p/planted", headers=_bearer(ADMIN_KEY), json=_legacy(world)) as resp:
        assert resp.status == 201, await resp.text()
    jobset_id = (await _fetch(world, "SELECT id FROM jobsets WHERE name = 'planted'"))[0][0]
    await _fetch(world, "INSERT INTO jobset_inputs (jobset_id, name, type, value) "
                 "VALUES ($1, 'dep', 'git', $2)", jobset_id, f"ext::touch%S{marker} main")
    evaluation = trigger_and_wait_eval(world.api, jobset_id, 0)
    assert evaluation["status"] == "failed"
    assert "scheme 'ext' is never allowed" in evaluation["error_message"]
    assert not marker.exists()
    assert await _fetch(world, "SELECT name FROM projects WHERE name = 'metadata'") == []


# Hole 4 ---------------------------------------------------------------------------

async def test_hole_4_a_creator_cannot_repoint_the_project(world: World) -> None:
    evil = {"type": 1, "flake": "git+https://evil.example/x.git", "checkinterval": 0}
    async with _client(world) as http:
        async with http.put("/jobset/p/main", headers=_bearer(CREATOR_KEY), json=evil) as resp:
            assert resp.status == 403, await resp.text()
            assert "may not administer" in (await resp.json())["error"]
        async with http.put("/jobset/p/other", headers=_bearer(CREATOR_KEY),
                            json=evil) as resp:
            assert resp.status == 403, await resp.text()
            assert "may not change the repository of a project" in (await resp.json())["error"]
        async with http.get(f"/api/v1/projects/{world.project_id}") as resp:
            assert (await resp.json())["repository_url"] == f"file://{world.repo}"
    assert await _fetch(world, "SELECT name FROM jobsets WHERE name = 'other'") == []


# Hole 5 ---------------------------------------------------------------------------

async def test_hole_5_a_cross_site_get_triggers_nothing(world: World) -> None:
    commit_files(world.repo, {"README": "a new commit to evaluate\n"}, "readme")
    known = max(e["id"] for e in evaluations(world.api, world.jobset_id))
    async with _client(world) as http:
        csrf = await _session(http, "pusher", "eval-jobset")
        # What <img src="https://ci/api/push?jobsets=p:main"> on another site sends.
        async with http.get("/api/push?jobsets=p:main") as resp:
            assert resp.status == 403, await resp.text()
            assert "X-CSRF-Token" in (await resp.json())["error"]
        await asyncio.sleep(3)  # the evaluator answers a trigger within a second
        assert max(e["id"] for e in evaluations(world.api, world.jobset_id)) == known
        # The control: with the session's token the same GET triggers.
        async with http.get("/api/push?jobsets=p:main",
                            headers={"X-CSRF-Token": csrf}) as resp:
            assert resp.status == 200, await resp.text()
    wait_for(lambda: max(e["id"] for e in evaluations(world.api, world.jobset_id)) > known,
             60, "the triggered evaluation")


# Hole 8 ---------------------------------------------------------------------------

async def test_hole_8_login_redirects_csrf_sessions_and_guessing(world: World) -> None:
    same_origin = {"Origin": world.api.url}
    async with _client(world) as http:
        await _session(http, "victim", "read-only")
        async with http.post("/login", allow_redirects=False, headers=same_origin, data={
                "username": "victim", "password": PASSWORD,
                "next": "/\t/evil.example"}) as resp:
            assert resp.status == 302
            assert "evil.example" not in resp.headers["Location"]
        async with http.get("/login?next=/%09/evil.example") as resp:
            assert "evil.example" not in await resp.text()
        # Login CSRF: a form on another site logging the browser into the attacker's account.
        async with aiohttp.ClientSession(world.api.url) as other, other.post(
                "/login", headers={"Origin": "https://evil.example"},
                data={"username": "victim", "password": PASSWORD}) as resp:
            assert resp.status == 403
            assert "circus_session" not in resp.cookies
        # An admin's reset ends the sessions the victim (or a thief) holds.
        async with http.get("/api/v1/me") as resp:
            assert resp.status == 200
            user_id = (await resp.json())["id"]
        async with http.put(f"/api/v1/users/{user_id}", headers=_bearer(ADMIN_KEY),
                            json={"password": "a brand new password"}) as resp:
            assert resp.status == 200, await resp.text()
        async with http.get("/api/v1/me") as resp:
            assert resp.status == 401
        # Guessing: three free failures, then 429 without hashing, whatever the password.
        statuses = []
        for guess in ("a", "b", "c", "d", "a brand new password"):
            async with http.post("/api/v1/auth/login",
                                 json={"username": "victim", "password": guess}) as resp:
                statuses.append(resp.status)
                retry = resp.headers.get("Retry-After")
        assert statuses == [401, 401, 401, 429, 429]
        assert retry and int(retry) >= 1
        await asyncio.sleep(int(retry) + 0.5)
        async with http.post("/api/v1/auth/login", json={
                "username": "victim", "password": "a brand new password"}) as resp:
            assert resp.status == 200, await resp.text()
    assert _leaks(world, PASSWORD, "a brand new password") == []


# Hole 10 --------------------------------------------------------------------------

@pytest.mark.parametrize("method,path", [
    ("POST", "/api/v1/auth/login"), ("POST", "/login"), ("PUT", "/project/p"),
    ("POST", "/dashboard/login"), ("POST", "/api/v1/projects"),
])
async def test_hole_10_a_body_without_boundary_is_a_400(world: World, method: str,
                                                        path: str) -> None:
    headers = {**_bearer(ADMIN_KEY), "Origin": world.api.url,
               "Content-Type": "multipart/form-data"}
    body = b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--x--\r\n'
    async with _client(world) as http:
        async with http.request(method, path, headers=headers, data=body) as resp:
            assert resp.status == 400, await resp.text()
            assert "boundary" in await resp.text()
        async with http.get(f"/api/v1/projects/{world.project_id}") as resp:
            assert (await resp.json())["name"] == "p"
    assert "Traceback" not in world.api.log_text()


# Hole 11 --------------------------------------------------------------------------

async def test_hole_11_homepages_are_http_only(world: World) -> None:
    bad = "javascript:alert(document.cookie)"
    async with _client(world) as http:
        async with http.put(f"/api/v1/projects/{world.project_id}",
                            headers=_bearer(ADMIN_KEY), json={"homepage": bad}) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"].startswith("homepage: must be an http")
        async with http.put("/project/p", headers=_bearer(ADMIN_KEY),
                            json={"homepage": bad}) as resp:
            assert resp.status == 400
        async with http.get("/project/p", headers={"Accept": "text/html"}) as resp:
            assert "javascript:" not in await resp.text()


async def test_hole_11_credentials_in_a_repository_url_are_never_shown(world: World) -> None:
    url = f"https://ci-bot:{TOKEN}@git.invalid/secret/repo.git"
    async with _client(world) as http:
        async with http.post("/api/v1/projects", headers=_bearer(ADMIN_KEY), json={
                "name": "private", "repository_url": url}) as resp:
            assert resp.status == 201, await resp.text()
            project = await resp.json()
        async with http.post(f"/api/v1/projects/{project['id']}/jobsets",
                             headers=_bearer(ADMIN_KEY), json={
                                 "name": "main", "flake": True, "check_interval": 0}) as resp:
            jobset = await resp.json()
        evaluation = trigger_and_wait_eval(world.api, jobset["id"], 0)
        assert evaluation["status"] == "failed"
        shown = [json.dumps(evaluation)]
        for path in ("/api/v1/projects", f"/api/v1/projects/{project['id']}",
                     "/project/private", "/projects", "/jobset/private/main"):
            async with http.get(path, headers={"Accept": "application/json"}) as resp:
                shown.append(await resp.text())
        async with http.get("/project/private", headers={"Accept": "text/html"}) as resp:
            shown.append(await resp.text())
    assert "https://***@git.invalid/secret/repo.git" in shown[2]
    assert [text[:200] for text in shown if TOKEN in text] == []
    assert _leaks(world, TOKEN) == []
    stored = await _fetch(world, "SELECT repository_url FROM projects WHERE name = 'private'")
    assert stored[0][0] == url


async def test_hole_11_keyword_job_names_give_a_channel_nix_reads(world: World) -> None:
    async with _client(world) as http:
        async with http.get("/channel/kw/nixexprs.tar.xz") as resp:
            assert resp.status == 200, await resp.text()
            data = await resp.read()
        async with http.get("/channel/kw/binary-cache-url",
                            headers={"Host": "evil.example"}) as resp:
            assert resp.status == 200
            assert await resp.text() == f"{world.api.url}/nix-cache"
    unpacked = world.tmp / "unpacked"
    with tarfile.open(fileobj=io.BytesIO(lzma.decompress(data))) as tar:
        tar.extractall(unpacked, filter="data")
    expr = (f"builtins.mapAttrs (n: v: v.outPath) (import {unpacked / 'kw'} {{}})")
    out = (await asyncio.to_thread(
        subprocess.run, ["nix-instantiate", "--eval", "--strict", "--json", "-E", expr],
        check=True, capture_output=True, text=True)).stdout
    outputs = {job: world.api.get(f"/api/v1/builds/{build['id']}")["outputs"]
               for job, build in world.builds.items()}
    assert json.loads(out) == {job: next(o["path"] for o in outs if o["name"] == "out")
                               for job, outs in outputs.items()}
