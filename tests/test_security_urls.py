"""Issue 10, holes 3, 4, 5 and part of 11, performed against the real server app, real
PostgreSQL, real git and (for the evaluator) real Nix:
- every git URL (project, jobset input, Hydra input) passes one check: allowed schemes,
  never ext::/fd::, no private addresses by default; every git call is locked down;
- repointing a project at another repository through Hydra's PUT /jobset needs admin;
- a cross-site GET /api/push with the session cookie triggers nothing;
- homepages are http(s) everywhere; credentials in repository URLs are never shown."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from structlog.testing import capture_logs

from circus.app.context import Context
from circus.services import sources
from tests.helpers.api import ADMIN, ROLE_KEYS, bearer
from tests.helpers.evaluator import create_jobset, evaluate_now

CREATOR = bearer(ROLE_KEYS["create-projects"])
TOKEN = "ghp_s3cr3tT0ken"


async def _error(resp, status: int) -> str:
    assert resp.status == status, await resp.text()
    return (await resp.json())["error"]


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/", "https://127.0.0.1/r", "http://127.1/r",
    "http://2130706433/r", "http://[::1]/r", "http://[::ffff:127.0.0.1]/r",
    "git://10.0.0.7/r", "ssh://git@192.168.1.1/r", "git@172.16.0.1:r.git",
    "https://100.100.100.200/r", "http://[fd00::1]/r", "http://localhost:5432/r",
])
async def test_private_addresses_are_refused_by_default(client: TestClient, context: Context,
                                                        url: str) -> None:
    resp = await client.post("/api/v1/projects", headers=ADMIN,
                             json={"name": "p", "repository_url": url})
    error = await _error(resp, 400)
    assert error.startswith("repository_url: host ") and "private" in error
    context.config.server.allow_private_addresses = True
    resp = await client.post("/api/v1/projects", headers=ADMIN,
                             json={"name": "p", "repository_url": url})
    assert resp.status == 201, await resp.text()


async def test_git_inputs_pass_the_url_check_on_every_front_end(
        client: TestClient, pool: asyncpg.Pool, make_repo: Callable) -> None:
    repo = make_repo({"release.nix": "{ ... }: { }"})
    resp = await client.put("/project/p", headers=ADMIN, json={"displayname": "p"})
    assert resp.status == 201
    # Default schemes: no file, so neither a file:// source nor a local path input.
    legacy = {"type": 0, "nixexprinput": "src", "nixexprpath": "release.nix",
              "inputs": {"src": {"type": "git", "value": "https://example.com/r.git"},
                         "dep": {"type": "git", "value": f"{repo} main"}}}
    error = await _error(await client.put("/jobset/p/j", headers=ADMIN, json=legacy), 400)
    assert error.startswith("inputs.dep.value: scheme 'file' is not allowed")
    legacy["inputs"]["dep"]["value"] = "ext::git-upload-pack%s/etc"
    error = await _error(await client.put("/jobset/p/j", headers=ADMIN, json=legacy), 400)
    assert error.startswith("inputs.dep.value: scheme 'ext' is never allowed")
    flake = {"type": 1, "flake": "git+http://169.254.169.254/x"}
    error = await _error(await client.put("/jobset/p/f", headers=ADMIN, json=flake), 400)
    assert error.startswith("repository_url: host '169.254.169.254'")
    assert await pool.fetchval("SELECT count(*) FROM jobsets") == 0

    project = await (await client.post("/api/v1/projects", headers=ADMIN, json={
        "name": "q", "repository_url": "https://example.com/q"})).json()
    jobset = await (await client.post(f"/api/v1/projects/{project['id']}/jobsets",
                                      headers=ADMIN, json={"name": "j"})).json()
    inputs = f"/api/v1/projects/{project['id']}/jobsets/{jobset['id']}/inputs"
    for value in (f"file://{repo}", str(repo), "fd::3", "http://[::1]:8080/r main",
                  "https://example.com/r --upload-pack=touch"):
        resp = await client.post(inputs, headers=ADMIN,
                                 json={"name": "dep", "type": "git", "value": value})
        assert (await _error(resp, 400)).startswith("value: "), value
    assert await pool.fetchval("SELECT count(*) FROM jobset_inputs") == 0


async def test_the_evaluator_checks_urls_written_around_the_api(
        context: Context, make_repo: Callable, tmp_path: Path) -> None:
    # As a declarative project or an older version could have stored it.
    marker = tmp_path / "marker"
    repo = make_repo({"flake.nix": "{ outputs = _: { hydraJobs = { }; }; }"})
    jobset_id = await create_jobset(context.pool, repo)
    evaluation = await evaluate_now(context, jobset_id)
    assert evaluation["status"] == "failed"
    assert evaluation["error_message"].startswith(
        "refused to fetch: repository_url: scheme 'file' is not allowed")
    await context.pool.execute("UPDATE projects SET repository_url = $1",
                               f"ext::sh -c touch% {marker}")
    evaluation = await evaluate_now(context, jobset_id)
    assert "scheme 'ext' is never allowed" in evaluation["error_message"]
    assert not marker.exists()


def _git(argv: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    env = sources.git_env({"PATH": "/usr/bin:/bin", "HOME": str(home),
                           "GIT_CONFIG_GLOBAL": str(home / ".gitconfig")})
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


def test_every_git_call_is_locked_down(make_repo: Callable, tmp_path: Path) -> None:
    repo = make_repo({"a": "1"})
    home = tmp_path / "home"
    home.mkdir()
    marker = tmp_path / "helper-ran"
    # A user configuration that would allow file:// and ext:: and run a credential helper.
    (home / ".gitconfig").write_text(
        f'[protocol]\n\tallow = always\n[credential]\n\thelper = "!touch {marker}"\n')
    locked = sources.Policy(frozenset({"https"}))
    done = _git(sources.git_argv(locked, "ls-remote", "--", str(repo)), home)
    assert done.returncode != 0 and "transport 'file' not allowed" in done.stderr
    done = _git(sources.git_argv(locked, "ls-remote", "--", f"ext::sh -c touch% {marker}"),
                home)
    assert done.returncode != 0 and "transport 'ext' not allowed" in done.stderr
    done = _git(sources.git_argv(sources.Policy(frozenset({"file"})), "ls-remote", "--",
                                 str(repo)), home)
    assert done.returncode == 0 and "refs/heads/main" in done.stdout
    assert not marker.exists()
    env = sources.git_env({"GIT_ASKPASS": "/bin/x", "SSH_ASKPASS": "/bin/x"})
    assert (env["GIT_ASKPASS"], env["GIT_TERMINAL_PROMPT"], env["GIT_CONFIG_NOSYSTEM"],
            env["GIT_CONFIG_GLOBAL"], "SSH_ASKPASS" in env) == ("", "0", "1", "/dev/null",
                                                                False)


async def test_a_creator_cannot_repoint_a_project_through_hydra(client: TestClient,
                                                                pool: asyncpg.Pool) -> None:
    resp = await client.post("/api/v1/projects", headers=ADMIN, json={
        "name": "p", "repository_url": "https://example.com/good.git"})
    assert resp.status == 201
    evil = {"type": 1, "flake": "git+https://evil.example/x.git", "checkinterval": 0}
    error = await _error(await client.put("/jobset/p/evil", headers=CREATOR, json=evil), 403)
    assert "may not change the repository of a project" in error
    assert await pool.fetchval("SELECT repository_url FROM projects") == (
        "https://example.com/good.git")
    assert await pool.fetchval("SELECT count(*) FROM jobsets") == 0
    # A jobset on the project's own repository is the creator's to add; an admin may move it.
    same = {"type": 1, "flake": "git+https://example.com/good.git", "checkinterval": 0}
    assert (await client.put("/jobset/p/main", headers=CREATOR, json=same)).status == 201
    # A fresh Hydra project has no repository yet: its first jobset gives it one.
    assert (await client.put("/project/fresh", headers=CREATOR, json={})).status == 201
    assert (await client.put("/jobset/fresh/main", headers=CREATOR, json=evil)).status == 201


async def _session(client: TestClient, role: str) -> str:
    resp = await client.post("/api/v1/users", headers=ADMIN, json={
        "username": "alice", "password": "correct horse battery", "role": role})
    assert resp.status == 201, await resp.text()
    resp = await client.post("/login", json={"username": "alice",
                                             "password": "correct horse battery"})
    assert resp.status == 200, await resp.text()
    return (await (await client.get("/api/v1/me")).json())["csrf_token"]


async def test_a_cross_site_get_does_not_trigger(client: TestClient, pool: asyncpg.Pool) -> None:
    resp = await client.post("/api/v1/projects", headers=ADMIN, json={
        "name": "p", "repository_url": "https://example.com/p"})
    project = await resp.json()
    await client.post(f"/api/v1/projects/{project['id']}/jobsets", headers=ADMIN,
                      json={"name": "main"})
    csrf = await _session(client, "eval-jobset")

    async def triggered() -> bool:
        return await pool.fetchval("SELECT trigger_time IS NOT NULL FROM jobsets")

    # What <img src="https://ci/api/push?jobsets=p:main"> on another site sends.
    error = await _error(await client.get("/api/push?jobsets=p:main"), 403)
    assert "X-CSRF-Token" in error
    assert not await triggered()
    # Hydra's clients: a POST with the cookie, a GET with the token, a Bearer key.
    for method, headers in (("POST", {}), ("GET", {"X-CSRF-Token": csrf}),
                            ("GET", bearer(ROLE_KEYS["eval-jobset"]))):
        await pool.execute("UPDATE jobsets SET trigger_time = NULL")
        resp = await client.request(method, "/api/push?jobsets=p:main", headers=headers)
        assert resp.status == 200, (method, await resp.text())
        assert await resp.json() == {"jobsetsTriggered": ["p:main"]}
        assert await triggered()
    # A POST from another site is refused by Hydra's Origin check.
    await pool.execute("UPDATE jobsets SET trigger_time = NULL")
    resp = await client.post("/api/push?jobsets=p:main",
                             headers={"Origin": "https://evil.example"})
    assert resp.status == 403 and not await triggered()


async def test_homepage_is_http_on_every_front_end(client: TestClient) -> None:
    for bad in ("javascript:alert(document.cookie)", "data:text/html,x", "//evil.example",
                "java\tscript:alert(1)"):
        resp = await client.post("/api/v1/projects", headers=ADMIN, json={
            "name": "p", "repository_url": "https://example.com/p", "homepage": bad})
        assert (await _error(resp, 400)).startswith("homepage: must be an http"), bad
        resp = await client.put("/project/h", headers=ADMIN, json={"homepage": bad})
        assert (await _error(resp, 400)).startswith("homepage: must be an http"), bad
        resp = await client.post("/api/v1/projects/setup", headers=ADMIN, json={
            "name": "s", "repository_url": "https://example.com/s", "homepage": bad})
        assert (await _error(resp, 400)).startswith("homepage: must be an http"), bad
    resp = await client.put("/project/h", headers=ADMIN, json={"homepage": "https://h.org/"})
    assert resp.status == 201


async def test_credentials_in_repository_urls_are_never_shown(
        client: TestClient, context: Context, pool: asyncpg.Pool) -> None:
    url = f"https://ci-bot:{TOKEN}@git.invalid/secret/repo.git"
    with capture_logs() as logs:
        resp = await client.post("/api/v1/projects", headers=ADMIN, json={
            "name": "p", "repository_url": url})
        project = await resp.json()
        assert project["repository_url"] == "https://***@git.invalid/secret/repo.git"
        await client.put("/jobset/p/flake", headers=ADMIN, json={
            "type": 1, "flake": f"git+{url}", "checkinterval": 0})
        jobset = await (await client.post(f"/api/v1/projects/{project['id']}/jobsets",
                                          headers=ADMIN, json={"name": "legacy",
                                                               "flake": False})).json()
        inputs = f"/api/v1/projects/{project['id']}/jobsets/{jobset['id']}/inputs"
        created = await client.post(inputs, headers=ADMIN, json={
            "name": "dep", "type": "git", "value": f"{url} main"})
        shown = [await created.text()]
        for path in ("/api/v1/projects", f"/api/v1/projects/{project['id']}", inputs,
                     "/jobset/p/flake", "/project/p"):
            resp = await client.get(path, headers={"Accept": "application/json"})
            assert resp.status == 200, path
            shown.append(await resp.text())
        for page in ("/projects", "/project/p"):  # the dashboard, as a browser asks
            resp = await client.get(page, headers={"Accept": "text/html"})
            assert resp.status == 200 and "***@git.invalid" in await resp.text(), page
            shown.append(await resp.text())
        # Sending back what was shown keeps the real URL.
        resp = await client.put(f"/api/v1/projects/{project['id']}", headers=ADMIN,
                                json={"repository_url": project["repository_url"]})
        assert resp.status == 200
        shown.append(await resp.text())
        # The evaluator's error and its records are public too.
        evaluation = await evaluate_now(context, jobset["id"])
        shown.append(evaluation["error_message"])
        shown += [r["uri"] for r in await pool.fetch("SELECT uri FROM evaluation_inputs")]
    shown += [repr(entry) for entry in logs]
    assert "***@git.invalid" in shown[0]
    assert [text for text in shown if TOKEN in text] == []
    assert await pool.fetchval("SELECT repository_url FROM projects") == url
    assert await pool.fetchval("SELECT value FROM jobset_inputs") == f"{url} main"


def test_no_log_line_shows_a_urls_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    import structlog

    from circus.app import config as configuration
    from circus.app import logsetup as circus_logging

    circus_logging.setup(configuration.TracingConfig(format="json", show_targets=False))
    try:
        structlog.get_logger("anywhere").error(
            "fetch failed", repo=f"https://ci-bot:{TOKEN}@git.invalid/r.git",
            error=f"fatal: unable to access 'https://ci-bot:{TOKEN}@git.invalid/'")
    finally:
        structlog.reset_defaults()
    err = capsys.readouterr().err
    assert "https://***@git.invalid/r.git" in err and TOKEN not in err
