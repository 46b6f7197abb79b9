"""Harness for end-to-end tests: real `circus run` processes on a test database, driven
through the HTTP API like a user would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.helpers.repos import commit_files, git
from tests.helpers.suite import ROOT, free_port, host_system

ADMIN_KEY = "circus_e2e_admin_key"
READONLY_KEY = "circus_e2e_readonly_key"
FLAKE_TEMPLATE = (ROOT / "tests" / "data" / "e2e-flake.nix").read_text()


NONCE = uuid.uuid4().hex


def flake_text(rev: str = "1", tick: int = 1) -> str:
    return (FLAKE_TEMPLATE.replace("@SYSTEM@", host_system()).replace("@REV@", rev)
            .replace("@TICK@", str(tick)).replace("@NONCE@", NONCE))


def make_flake_repo(path: Path, rev: str = "1", tick: int = 1) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    commit_files(path, {"flake.nix": flake_text(rev, tick)}, f"rev {rev}")
    return path


def wait_for(predicate: Callable[[], Any], timeout: float = 120, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except (urllib.error.URLError, ConnectionError, OSError) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


class Circus:
    """One `circus run` process; config through a TOML file plus CIRCUS_* variables."""

    def __init__(self, tmp: Path, database_url: str, roles: str, name: str,
                 port: int | None = None, settings: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        self.name = name
        self.roles = roles
        self.port = port or free_port()
        self.log_path = tmp / f"{name}.log"
        config = tmp / "circus-e2e.toml"
        if not config.exists():
            config.write_text(
                f'[[declarative.api_keys]]\nname = "admin"\nkey = "{ADMIN_KEY}"\nrole = "admin"\n'
                f'[[declarative.api_keys]]\nname = "ro"\nkey = "{READONLY_KEY}"\n'
                'role = "read-only"\n'
            )
        self.env = {
            **os.environ,
            "CIRCUS_CONFIG_FILE": str(config),
            "CIRCUS_DATABASE__URL": database_url,
            "CIRCUS_STATE_DIR": str(tmp / "state"),
            "CIRCUS_SERVER__PORT": str(self.port),
            "CIRCUS_EVALUATOR__WORK_DIR": str(tmp / f"{name}-eval"),
            "CIRCUS_EVALUATOR__POLL_INTERVAL": "60",
            "CIRCUS_QUEUE_RUNNER__WORK_DIR": str(tmp / f"{name}-runner"),
            "CIRCUS_QUEUE_RUNNER__LEASE_SECONDS": "3",
            "CIRCUS_QUEUE_RUNNER__POLL_INTERVAL": "30",
            "CIRCUS_GC__GC_ROOTS_DIR": str(tmp / "gcroots"),
            "CIRCUS_TRACING__FORMAT": "json",
            "CIRCUS_SERVER__ALLOWED_URL_SCHEMES": '["file", "https", "http", "ssh", "git"]',
            **(settings or {}),
        }
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Circus:
        log = self.log_path.open("a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "circus.cli", "run", f"--roles={self.roles}"],
            env=self.env, cwd=self.tmp, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if "server" in self.roles:
            wait_for(lambda: self.get("/health").get("status") == "ok", 60, f"{self.name} up")
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)

    def wait(self, timeout: float = 60) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait(10)

    # HTTP, as a script would do it.
    def request(self, method: str, path: str, body: Any = None, key: str | None = ADMIN_KEY
                ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if key and method != "GET":
            req.add_header("Authorization", f"Bearer {key}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
                status = resp.status
                ctype = resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as err:
            raw, status, ctype = err.read(), err.code, err.headers.get("Content-Type", "")
        return status, (json.loads(raw) if "json" in ctype and raw else raw.decode())

    def get(self, path: str) -> Any:
        status, body = self.request("GET", path)
        assert status == 200, (path, status, body)
        return body

    def post(self, path: str, body: Any, expect: tuple[int, ...] = (200, 201, 202)) -> Any:
        status, answer = self.request("POST", path, body)
        assert status in expect, (path, status, answer)
        return answer


def create_flake_project(api: Circus, repo: Path, name: str = "e2e") -> tuple[int, int]:
    project = api.post("/api/v1/projects", {"name": name, "repository_url": f"file://{repo}"})
    jobset = api.post(f"/api/v1/projects/{project['id']}/jobsets",
                      {"name": "main", "nix_expression": "hydraJobs", "flake": True,
                       "check_interval": 0})
    return project["id"], jobset["id"]


def evaluations(api: Circus, jobset_id: int) -> list[dict]:
    return api.get(f"/api/v1/evaluations?jobset_id={jobset_id}&limit=100")["items"]


def builds_of(api: Circus, evaluation_id: int) -> dict[str, dict]:
    items = api.get(f"/api/v1/builds?evaluation_id={evaluation_id}&limit=500")["items"]
    return {b["job"]: b for b in items}


def trigger_and_wait_eval(api: Circus, jobset_id: int, known: int) -> dict:
    api.post("/api/v1/evaluations/trigger", {"jobset_id": jobset_id})
    return wait_for(
        lambda: next((e for e in evaluations(api, jobset_id)
                      if e["id"] > known and e["status"] != "running"), None),
        120, "a new evaluation",
    )


def wait_all_finished(api: Circus, evaluation_id: int, timeout: float = 180) -> dict[str, dict]:
    def done() -> dict[str, dict] | None:
        builds = builds_of(api, evaluation_id)
        return builds if builds and all(b["state"] == "finished" for b in builds.values()) else None

    return wait_for(done, timeout, f"builds of evaluation {evaluation_id}")


def repo_root() -> Path:
    return ROOT
