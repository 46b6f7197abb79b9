"""The builds.sr.ht jobs API (`/api/jobs`): sr.ht's shapes and errors, and manifests run
end to end by the real runner, each task in a bubblewrap sandbox. There is no nixpkgs
here: the image is a small flake of /bin/sh-built packages written by the test."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from circus.app.context import Context
from circus.server.http.app import init_app
from tests.helpers.api import ADMIN_KEY, ROLE_KEYS, bearer
from tests.helpers.hooks import Recorder
from tests.helpers.repos import git
from tests.helpers.runner import running_runner, wait_for
from tests.helpers.suite import host_system

IMAGE = r'''
{
  outputs = { self }:
    let
      system = "@SYSTEM@";
      tool = name: line: builtins.derivation {
        inherit name system;
        builder = "/bin/sh";
        args = [ "-c" ''
          /bin/mkdir -p $out/bin
          printf '%s\n' '#!/bin/sh' '${line}' > $out/bin/${name}
          /bin/chmod +x $out/bin/${name}
        '' ];
      };
    in {
      packages.${system} = {
        hello = tool "hello" "echo Hello from the image";
        greet = tool "greet" "echo greetings, $1";
      };
    };
}
'''


def token(key: str) -> dict[str, str]:
    return {"Authorization": f"token {key}"}


@pytest.fixture
def image(tmp_path: Path) -> str:
    flake = tmp_path / "image"
    flake.mkdir()
    (flake / "flake.nix").write_text(IMAGE.replace("@SYSTEM@", host_system()))
    return f"path:{flake}"


@pytest.fixture
def srht_config(make_config: Callable[..., Any], image: str) -> Callable[..., Any]:
    def make(**srht: Any) -> Any:
        return make_config({"srht": {"images": {"nixos/unstable": image}, **srht},
                            "server": {"allowed_url_schemes": ["file", "https"]},
                            # The trigger's receiver listens on 127.0.0.1.
                            "notifications": {"allow_private_targets": True},
                            "queue_runner": {"lease_seconds": 3}})
    return make


@pytest.fixture
async def api(aiohttp_client: Any, context: Context, srht_config: Callable[..., Any]
              ) -> TestClient:
    context.config = srht_config(job_timeout=20)
    return await aiohttp_client(await init_app(context))


def manifest(*tasks: tuple[str, str], **top: Any) -> str:
    lines = ["image: nixos/unstable"]
    for key, value in top.items():
        lines.append(f"{key}: {json.dumps(value)}")
    lines.append("tasks:")
    for name, script in tasks:
        lines.append(f"  - {name}: |")
        lines.extend(f"      {line}" for line in script.splitlines())
    return "\n".join(lines) + "\n"


async def submit(api: TestClient, text: str, key: str = ADMIN_KEY, **body: Any) -> int:
    resp = await api.post("/api/jobs", json={"manifest": text, **body}, headers=token(key))
    assert resp.status == 200, await resp.text()
    return int((await resp.json())["id"])


async def refused(resp: Any, status: int, field: str | None = None) -> str:
    body = await resp.json()
    assert resp.status == status, body
    assert list(body) == ["errors"] and len(body["errors"]) == 1, body
    error = body["errors"][0]
    assert error.get("field") == field, body
    return str(error["reason"])


async def test_jobs_api_answers_in_srhts_shapes_and_errors(api: TestClient) -> None:
    text = manifest(("build", "echo hi"))
    resp = await api.post("/api/jobs", json={"manifest": text})
    assert "authentication required" in await refused(resp, 401)
    resp = await api.post("/api/jobs", json={"manifest": text},
                          headers=bearer(ROLE_KEYS["read-only"]))
    assert "jobs:write" in await refused(resp, 403)
    for body, field, words in [
        ({}, "manifest", "is required"),
        ({"manifest": "image: [unclosed"}, "manifest", "YAML"),
        ({"manifest": "image: x\n" + "#" * 17000 + "\ntasks: []"}, "manifest", "16384"),
        ({"manifest": manifest(("a", "true")).replace("nixos/unstable", "alpine/edge")},
         "image", "nixos/unstable"),
        ({"manifest": text, "tags": ["Not OK"]}, "tags", ""),
        ({"manifest": text, "execute": "yes"}, "execute", "true or false"),
    ]:
        resp = await api.post("/api/jobs", json=body, headers=token(ADMIN_KEY))
        assert words in await refused(resp, 400, field), body

    own = await submit(api, text, ROLE_KEYS["create-projects"], note="mine",
                       tags=["ci", "v1.0"], execute=False)
    job = await (await api.get(f"/api/jobs/{own}", headers=token(ADMIN_KEY))).json()
    assert set(job) == {"id", "status", "setup_log", "tasks", "note", "tags", "runner",
                        "owner", "created", "updated"}
    assert (job["status"], job["note"], job["tags"]) == ("pending", "mine", ["ci", "v1.0"])
    assert job["tasks"] == [{"name": "build", "status": "pending",
                             "log": str(api.make_url(f"/api/jobs/{own}/log/1"))}]
    assert job["setup_log"] == str(api.make_url(f"/api/jobs/{own}/log/0"))
    resp = await api.get(f"/api/jobs/{own}/manifest", headers=token(ADMIN_KEY))
    assert (resp.content_type, await resp.text()) == ("text/plain", text)
    # Another caller does not see it; its owner and admins do.
    resp = await api.get(f"/api/jobs/{own}", headers=token(ROLE_KEYS["eval-jobset"]))
    await refused(resp, 404)
    listed = await (await api.get("/api/jobs", headers=token(ROLE_KEYS["eval-jobset"]))).json()
    assert listed == {"next": None, "results": [], "total": 0, "results_per_page": 50}
    mine = await (await api.get("/api/jobs", headers=token(ROLE_KEYS["create-projects"])
                                )).json()
    assert [j["id"] for j in mine["results"]] == [own] and mine["total"] == 1

    resp = await api.post(f"/api/jobs/{own}/start", headers=token(ROLE_KEYS["create-projects"]))
    assert (resp.status, await resp.json()) == (200, {})
    resp = await api.post(f"/api/jobs/{own}/start", headers=token(ADMIN_KEY))
    assert await refused(resp, 400) == "This job is already queued"
    resp = await api.post(f"/api/jobs/{own}/cancel", headers=token(ADMIN_KEY))
    assert (resp.status, await resp.json()) == (200, {})
    job = await (await api.get(f"/api/jobs/{own}", headers=token(ADMIN_KEY))).json()
    assert job["status"] == "cancelled" and job["tasks"][0]["status"] == "skipped"
    resp = await api.get(f"/api/jobs/{own}/artifacts", headers=token(ADMIN_KEY))
    assert await resp.json() == {"next": None, "results": [], "total": 0,
                                 "results_per_page": 50}
    await refused(await api.get("/api/jobs/99999", headers=token(ADMIN_KEY)), 404)
    await refused(await api.post("/api/jobs/99999/start", headers=token(ADMIN_KEY)), 404)

    # Pages: newest first, `next` is the first id of the next page.
    ids = [await submit(api, text, execute=False) for _ in range(51)]
    first = await (await api.get("/api/jobs", headers=token(ADMIN_KEY))).json()
    assert [j["id"] for j in first["results"]] == sorted(ids, reverse=True)[:50]
    assert first["total"] == 52 and first["next"] == ids[0]
    rest = await (await api.get(f"/api/jobs?start={first['next']}",
                                headers=token(ADMIN_KEY))).json()
    assert [j["id"] for j in rest["results"]] == [ids[0], own] and rest["next"] is None


async def curl(*args: str) -> str:
    """curl as the client; the server runs in this event loop, so curl must not block it."""
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "--fail-with-body", "--max-time", "60", *args,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, (out + err).decode()
    return out.decode()


async def wait_status(pool: asyncpg.Pool, job_id: int, wanted: set[str],
                      seconds: float = 120) -> str:
    async def ended() -> str | None:
        status = await pool.fetchval("SELECT status FROM srht_jobs WHERE id = $1", job_id)
        return status if status in wanted else None
    return str(await wait_for(ended, seconds))


async def test_a_manifest_runs_end_to_end_with_curl_as_the_client(
        api: TestClient, context: Context, make_repo: Callable[..., Path],
        database_url: str) -> None:
    hook = await Recorder().start()
    repo = make_repo({"README": "from the source repository\n"})
    commit = git(repo, "rev-parse", "HEAD")
    text = manifest(
        ("hello", 'hello\ngreet "$WHO"\ncat repo/README\necho "home=$HOME"'),
        ("package", "echo made-by-the-job > ~/out.txt\ncomplete-build\necho not-reached"),
        ("never", "echo never-runs"),
        packages=["nixos.hello", "greet"], sources=[f"file://{repo}#{commit}"],
        environment={"WHO": "sr.ht users"}, artifacts=["~/out.txt"],
        triggers=[{"action": "webhook", "condition": "always", "url": hook.url},
                  {"action": "webhook", "condition": "failure", "url": hook.url + "/f"}])
    base = str(api.make_url("/api/jobs"))
    answer = await curl("-H", f"Authorization: token {ADMIN_KEY}", "-H",
                  "Content-Type: application/json", "--data",
                  json.dumps({"manifest": text}), base)
    job_id = json.loads(answer)["id"]
    try:
        async with running_runner(context.config, database_url):
            status = await wait_status(context.pool, job_id, {"success", "failed"})
            await wait_for(lambda: bool(hook.bodies), 30)
    finally:
        await hook.close()
    # The `always` trigger fired once, with the job as the API shows it; `failure` not.
    [delivered] = hook.bodies
    assert (delivered["id"], delivered["status"]) == (job_id, "success")
    assert [t["status"] for t in delivered["tasks"]] == ["success", "success", "skipped"]
    job = json.loads(await curl("-H", f"Authorization: token {ADMIN_KEY}", f"{base}/{job_id}"))
    setup = await curl("-H", f"Authorization: token {ADMIN_KEY}", job["setup_log"])
    first = await curl("-H", f"Authorization: token {ADMIN_KEY}", job["tasks"][0]["log"])
    assert status == "success", setup + first
    assert [(t["name"], t["status"]) for t in job["tasks"]] == [
        ("hello", "success"), ("package", "success"), ("never", "skipped")]
    log = await curl("-H", f"Authorization: token {ADMIN_KEY}", job["tasks"][0]["log"])
    assert "Hello from the image" in log and "greetings, sr.ht users" in log
    assert "from the source repository" in log and "home=/home/build" in log
    second = await curl("-H", f"Authorization: token {ADMIN_KEY}", job["tasks"][1]["log"])
    assert "not-reached" not in second.replace("echo not-reached", "")
    artifacts = json.loads(await curl("-H", f"Authorization: token {ADMIN_KEY}",
                                f"{base}/{job_id}/artifacts"))
    [artifact] = artifacts["results"]
    assert (artifact["path"], artifact["name"], artifact["size"]) == (
        "~/out.txt", "out.txt", len("made-by-the-job\n"))
    assert await curl("-H", f"Authorization: token {ADMIN_KEY}",
                artifact["url"]) == "made-by-the-job\n"


async def test_a_task_cannot_reach_the_state_directory_or_write_outside_its_home(
        api: TestClient, context: Context, database_url: str) -> None:
    state = Path(context.config.state_dir)
    _write(state / "secret", "the signing key\n")
    job_id = await submit(api, manifest(
        ("snoop", f"cat {state}/secret || echo no-state-here\n"
                  "touch /nix/store/planted || echo store-is-read-only\n"
                  f"touch {state}/planted || echo no-write-there\n"
                  "ls /nix/var/nix/db || echo no-nix-db\n"
                  "cat /nix/store/planted"),
        ("after", "echo after")))
    async with running_runner(context.config, database_url):
        status = await wait_status(context.pool, job_id, {"success", "failed"})
    log = await (await api.get(f"/api/jobs/{job_id}/log/1", headers=token(ADMIN_KEY))).text()
    assert status == "failed", log
    for line in ("no-state-here", "store-is-read-only", "no-write-there", "no-nix-db"):
        assert line in log
    assert "the signing key" not in log
    assert not _exists(state / "planted") and not _exists(Path("/nix/store/planted"))
    tasks = await context.pool.fetch("SELECT name, status FROM srht_tasks WHERE job_id = $1 "
                                     "ORDER BY nr", job_id)
    assert [tuple(t) for t in tasks] == [("snoop", "failed"), ("after", "pending")]


async def test_cancel_and_timeout_kill_the_whole_job(
        api: TestClient, context: Context, srht_config: Callable[..., Any],
        database_url: str) -> None:
    config = srht_config(job_timeout=4)
    slow = manifest(("wait", "sleep 4242.5 &\nsleep 4242.5"))
    timed = await submit(api, slow)
    async with running_runner(config, database_url):
        assert await wait_status(context.pool, timed, {"timeout", "success", "failed"}) \
            == "timeout"
        cancelled = await submit(api, slow)
        await wait_status(context.pool, cancelled, {"running"})
        await wait_for(lambda: _sleeping(), 30)
        resp = await api.post(f"/api/jobs/{cancelled}/cancel", headers=token(ADMIN_KEY))
        assert resp.status == 200
        await wait_for(lambda: not _sleeping(), 30)
        await asyncio.sleep(1)
    assert await context.pool.fetchval("SELECT status FROM srht_jobs WHERE id = $1",
                                       cancelled) == "cancelled"
    log = await (await api.get(f"/api/jobs/{timed}/log/1", headers=token(ADMIN_KEY))).text()
    assert "job_timeout" in log


def _sleeping(marker: bytes = b"4242.5") -> bool:
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "cmdline").read_bytes():
                return True
        except OSError:
            continue
    return False


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _exists(path: Path) -> bool:
    return path.exists()


async def test_a_job_whose_runner_stops_midway_runs_again_elsewhere(
        api: TestClient, context: Context, database_url: str) -> None:
    job_id = await submit(api, manifest(("first", "sleep 6.4343"), ("second", "echo done")))
    async with running_runner(context.config, database_url) as first:
        await wait_status(context.pool, job_id, {"running"})
        await wait_for(lambda: _sleeping(b"6.4343"), 30)
        # The runner goes away without ending the job: its lease is left to run out.
        first.stopping.set()
    assert not _sleeping(b"6.4343")
    row = await context.pool.fetchrow("SELECT status, attempts FROM srht_jobs WHERE id = $1",
                                      job_id)
    assert (row["status"], row["attempts"]) == ("running", 1)
    async with running_runner(context.config, database_url):
        status = await wait_status(context.pool, job_id, {"success", "failed"}, 60)
    row = await context.pool.fetchrow("SELECT status, attempts FROM srht_jobs WHERE id = $1",
                                      job_id)
    assert (row["status"], row["attempts"]) == ("success", 2), status
    tasks = await context.pool.fetch("SELECT status FROM srht_tasks WHERE job_id = $1 "
                                     "ORDER BY nr", job_id)
    assert [t["status"] for t in tasks] == ["success", "success"]
