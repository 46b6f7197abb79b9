"""End to end through the HTTP API with real `circus run` processes, PostgreSQL, Nix and git.

One flake covers every kind of job (tests/data/e2e-flake.nix); the roles are split over
two processes (`server,evaluator` and `runner`) as on a head node with a builder.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from pathlib import Path

import asyncpg
import pytest

from circus.db import embedded
from tests.helpers.e2e import (
    READONLY_KEY,
    Circus,
    builds_of,
    create_flake_project,
    evaluations,
    flake_text,
    make_flake_repo,
    trigger_and_wait_eval,
    wait_all_finished,
    wait_for,
)
from tests.helpers.repos import commit_files

pytestmark = pytest.mark.slow

EXPECTED_STATUS = {
    "hello": 0, "lib": 0, "app": 0, "docs": 0, "ticker": 0, "release": 0,
    "broken": 1, "needs-broken": 2, "flaky": 6, "slow": 7,
}


@pytest.fixture
def split(tmp_path: Path, database_url: str):
    head = Circus(tmp_path, database_url, "server,evaluator", "head").start()
    builder = Circus(tmp_path, database_url, "runner", "builder",
                     settings={"CIRCUS_QUEUE_RUNNER__WORKERS": "4"}).start()
    yield head, builder
    builder.stop()
    head.stop()


def read_sse(url: str, until: str, timeout: float = 60) -> list[tuple[str, str]]:
    """(event, data) pairs of an SSE stream until an event named `until`."""
    events: list[tuple[str, str]] = []
    event, data = "message", []
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        for raw in resp:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            elif line == "" and data:
                events.append((event, "\n".join(data)))
                if event == until:
                    return events
                event, data = "message", []
    return events


def test_flake_jobset_builds_every_kind_of_job(split, tmp_path: Path) -> None:
    head, _ = split
    repo = make_flake_repo(tmp_path / "repo")
    _, jobset_id = create_flake_project(head, repo)
    evaluation = trigger_and_wait_eval(head, jobset_id, 0)
    assert evaluation["status"] == "succeeded", evaluation
    builds = wait_all_finished(head, evaluation["id"])

    assert {job: b["buildstatus"] for job, b in builds.items()} == EXPECTED_STATUS
    detail = head.get(f"/api/v1/evaluations/{evaluation['id']}")
    assert any(e["job"] == "oops" and "this job cannot be evaluated" in e["error_message"]
               for e in detail["errors"])

    hello = head.get(f"/api/v1/builds/{builds['hello']['id']}")
    out = next(o["path"] for o in hello["outputs"] if o["name"] == "out")
    assert Path(out, "greeting").read_text() == "hi\n"
    assert any(Path(root).resolve() == Path(out)
               for root in (tmp_path / "gcroots").rglob("*") if root.is_symlink())
    _, log = head.request("GET", f"/api/v1/builds/{builds['hello']['id']}/log")
    assert "hello from the build" in log
    _, log = head.request("GET", f"/api/v1/builds/{builds['broken']['id']}/log")
    assert "about to fail on purpose" in log
    assert hello["steps"] and hello["steps"][0]["drv_path"] == hello["drv_path"]

    docs = head.get(f"/api/v1/builds/{builds['docs']['id']}")
    assert {(p["type"], p["subtype"], p["name"]) for p in docs["products"]} == {
        ("doc", "manual", "doc"), ("file", "binary-dist", "index.html")}
    assert {(m["name"], m["value"], m["unit"]) for m in docs["metrics"]} == {
        ("lines", 42.0, "lines"), ("coverage", 87.5, "%")}
    flaky = head.get(f"/api/v1/builds/{builds['flaky']['id']}")
    assert flaky["outputs"] and Path(flaky["outputs"][0]["path"], "report.txt").exists()
    needs = head.get(f"/api/v1/builds/{builds['needs-broken']['id']}")
    assert "broken" in (needs["error_message"] or "")

    # The same commit makes no new evaluation; a new commit does, and reuses unchanged builds.
    head.post("/api/v1/evaluations/trigger", {"jobset_id": jobset_id})
    time.sleep(3)
    assert len(evaluations(head, jobset_id)) == 1
    commit_files(repo, {"flake.nix": flake_text(rev="2", tick=4)}, "rev 2")
    second = trigger_and_wait_eval(head, jobset_id, evaluation["id"])
    new_builds = builds_of(head, second["id"])
    assert new_builds["hello"]["id"] == builds["hello"]["id"]
    assert new_builds["lib"]["id"] != builds["lib"]["id"]

    # The ticker of rev 2 prints, sleeps 4 s, prints: its first line arrives before it ends.
    ticker = new_builds["ticker"]["id"]
    events = read_sse(f"{head.url}/api/v1/builds/{ticker}/log/stream", until="done")
    lines = [data for event, data in events if event != "done"]
    first_at = next(i for i, d in enumerate(lines) if "tick one" in d)
    assert any("tick two" in d for d in lines[first_at + 1:])
    assert events[-1][0] == "done"
    wait_all_finished(head, second["id"])
    assert head.get(f"/api/v1/builds/{ticker}")["buildstatus"] == 0


def test_live_log_arrives_before_the_build_ends(split, tmp_path: Path) -> None:
    head, _ = split
    repo = make_flake_repo(tmp_path / "repo", tick=6)
    _, jobset_id = create_flake_project(head, repo)
    evaluation = trigger_and_wait_eval(head, jobset_id, 0)
    ticker = builds_of(head, evaluation["id"])["ticker"]["id"]
    seen_running = []
    with urllib.request.urlopen(f"{head.url}/api/v1/builds/{ticker}/log/stream",
                                timeout=60) as resp:
        for raw in resp:
            if b"tick one" in raw:
                seen_running.append(head.get(f"/api/v1/builds/{ticker}")["state"])
                break
    assert seen_running == ["running"]


def test_kill_9_of_a_runner_loses_no_build(tmp_path: Path, database_url: str) -> None:
    head = Circus(tmp_path, database_url, "server,evaluator", "head").start()
    first = Circus(tmp_path, database_url, "runner", "doomed").start()
    try:
        repo = make_flake_repo(tmp_path / "repo", tick=8)
        _, jobset_id = create_flake_project(head, repo)
        evaluation = trigger_and_wait_eval(head, jobset_id, 0)
        ticker = builds_of(head, evaluation["id"])["ticker"]["id"]
        wait_for(lambda: head.get(f"/api/v1/builds/{ticker}")["state"] == "running", 120,
                 "ticker running")
        first.signal(signal.SIGKILL)
        first.wait()
        second = Circus(tmp_path, database_url, "runner", "survivor").start()
        try:
            builds = wait_all_finished(head, evaluation["id"], timeout=240)
            assert {job: b["buildstatus"] for job, b in builds.items()} == EXPECTED_STATUS
            assert head.get(f"/api/v1/builds/{ticker}")["attempts"] >= 2
        finally:
            second.stop()
    finally:
        first.stop()
        head.stop()


def test_sigterm_hands_unfinished_builds_back_and_exits_0(tmp_path: Path,
                                                         database_url: str) -> None:
    head = Circus(tmp_path, database_url, "server,evaluator", "head").start()
    runner = Circus(tmp_path, database_url, "runner", "runner",
                    settings={"CIRCUS_QUEUE_RUNNER__SHUTDOWN_GRACE": "1"}).start()
    try:
        repo = make_flake_repo(tmp_path / "repo", tick=60)
        _, jobset_id = create_flake_project(head, repo)
        evaluation = trigger_and_wait_eval(head, jobset_id, 0)
        ticker = builds_of(head, evaluation["id"])["ticker"]["id"]
        wait_for(lambda: head.get(f"/api/v1/builds/{ticker}")["state"] == "running", 120,
                 "ticker running")
        runner.signal(signal.SIGTERM)
        assert runner.wait(60) == 0
        build = head.get(f"/api/v1/builds/{ticker}")
        assert build["state"] == "queued" and build["buildstatus"] is None
    finally:
        runner.stop()
        head.stop()


def test_read_only_key_cannot_write(split) -> None:
    head, _ = split
    status, body = head.request("POST", "/api/v1/projects",
                                {"name": "should-fail", "repository_url": "https://example.com"},
                                key=READONLY_KEY)
    assert status == 403 and "error" in body


def test_a_postgresql_restart_is_survived(tmp_path: Path) -> None:
    server = embedded.EmbeddedPostgres(tmp_path / "pg" / "postgres", port=5498)
    server.start()
    circus = Circus(tmp_path, server.url, "server,evaluator,runner", "all").start()
    try:
        repo = make_flake_repo(tmp_path / "repo")
        _, jobset_id = create_flake_project(circus, repo)
        first = trigger_and_wait_eval(circus, jobset_id, 0)
        wait_all_finished(circus, first["id"])

        server.stop("immediate")
        time.sleep(1)
        server.start()
        wait_for(lambda: circus.request("GET", "/health")[0] == 200, 60, "health after restart")

        commit_files(repo, {"flake.nix": flake_text(rev="after-restart")}, "after restart")
        second = wait_for(lambda: _trigger_when_up(circus, jobset_id, first["id"]), 120,
                          "evaluation after restart")
        builds = wait_all_finished(circus, second["id"])
        assert builds["lib"]["buildstatus"] == 0
        assert circus.proc is not None and circus.proc.poll() is None
    finally:
        circus.stop()
        server.stop("immediate")


def _trigger_when_up(circus: Circus, jobset_id: int, known: int) -> dict | None:
    status, _ = circus.request("POST", "/api/v1/evaluations/trigger", {"jobset_id": jobset_id})
    if status not in (200, 201, 202):
        return None
    return next((e for e in evaluations(circus, jobset_id)
                 if e["id"] > known and e["status"] != "running"), None)


async def test_evaluation_error_is_recorded(tmp_path: Path, database_url: str) -> None:
    head = Circus(tmp_path, database_url, "server,evaluator", "head").start()
    try:
        repo = make_flake_repo(tmp_path / "repo")
        commit_files(repo, {"flake.nix": "{ outputs = { self }: { hydraJobs = ; }; }"}, "bad")
        _, jobset_id = create_flake_project(head, repo)
        evaluation = trigger_and_wait_eval(head, jobset_id, 0)
        assert evaluation["status"] == "failed"
        assert "syntax error" in evaluation["error_message"]
        conn = await asyncpg.connect(database_url)
        try:
            assert "syntax error" in await conn.fetchval(
                "SELECT error_message FROM jobsets WHERE id = $1", jobset_id)
        finally:
            await conn.close()
    finally:
        head.stop()


def test_circus_json_logs_bind_context(split, tmp_path: Path) -> None:
    head, builder = split
    repo = make_flake_repo(tmp_path / "repo")
    _, jobset_id = create_flake_project(head, repo)
    evaluation = trigger_and_wait_eval(head, jobset_id, 0)
    wait_all_finished(head, evaluation["id"])
    built = [json.loads(line) for line in builder.log_text().splitlines()
             if line.startswith("{")]
    evaluated = [json.loads(line) for line in head.log_text().splitlines()
                 if line.startswith("{")]
    assert any("build_id" in r and r.get("level") == "info" for r in built)
    assert any(r.get("jobset") == "e2e:main" for r in evaluated)
