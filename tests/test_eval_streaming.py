"""Evaluation that streams: builds start while the jobset is still evaluating; a Nix
worker past its memory limit is restarted and costs one job, not the evaluation; an
evaluator killed halfway is taken over, not repeated. Real `circus run`, real Nix."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path

import asyncpg

from tests.helpers.e2e import (
    Circus,
    create_flake_project,
    evaluations,
    trigger_and_wait_eval,
    wait_for,
)
from tests.helpers.repos import commit_files, git
from tests.helpers.suite import ROOT, host_system

TEMPLATE = (ROOT / "tests" / "data" / "streaming-flake.nix").read_text()


def flake_repo(path: Path, *, quick: int, slow: int, hog: bool = False) -> Path:
    text = (TEMPLATE.replace("@SYSTEM@", host_system()).replace("@NONCE@", uuid.uuid4().hex)
            .replace("@QUICK@", str(quick)).replace("@SLOW@", str(slow))
            .replace("@HOG@", "true" if hog else "false"))
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    commit_files(path, {"flake.nix": text}, "jobs")
    return path


def one_worker(**more: str) -> dict[str, str]:
    return {"CIRCUS_EVALUATOR__WORKERS": "1", "CIRCUS_EVALUATOR__MAX_CONCURRENT_EVALS": "1",
            **more}


async def test_quick_jobs_build_while_a_slow_one_still_evaluates(
        tmp_path: Path, database_url: str) -> None:
    circus = Circus(tmp_path, database_url, "server,evaluator,runner", "all",
                    settings=one_worker()).start()
    try:
        repo = flake_repo(tmp_path / "repo", quick=3, slow=40000)
        _, jobset_id = create_flake_project(circus, repo)
        evaluation = trigger_and_wait_eval(circus, jobset_id, 0)
        assert evaluation["status"] == "succeeded", evaluation
        conn = await asyncpg.connect(database_url)
        try:
            rows = await conn.fetch(
                "SELECT b.job, b.state, b.buildstatus, b.started_at, b.finished_at, "
                "e.finished_at AS evaluated_at FROM builds b "
                "JOIN evaluation_builds eb ON eb.build_id = b.id "
                "JOIN evaluations e ON e.id = eb.evaluation_id WHERE e.id = $1",
                evaluation["id"])
        finally:
            await conn.close()
        quick = {r["job"]: r for r in rows if r["job"].startswith("quick")}
        assert sorted(quick) == ["quick1000", "quick1001", "quick1002"]
        assert "zslow" in {r["job"] for r in rows}
        for job, row in quick.items():
            assert row["buildstatus"] == 0, (job, dict(row))
            assert row["finished_at"] < row["evaluated_at"], (
                f"{job} finished at {row['finished_at']}, after the evaluation "
                f"({row['evaluated_at']})")
    finally:
        circus.stop()


async def test_a_worker_past_its_memory_limit_costs_one_job(
        tmp_path: Path, database_url: str) -> None:
    circus = Circus(tmp_path, database_url, "server,evaluator", "head",
                    settings=one_worker(CIRCUS_EVALUATOR__MAX_MEMORY_MB="400")).start()
    try:
        repo = flake_repo(tmp_path / "repo", quick=3, slow=1, hog=True)
        _, jobset_id = create_flake_project(circus, repo)
        evaluation = trigger_and_wait_eval(circus, jobset_id, 0)
        assert evaluation["status"] == "succeeded", evaluation
        assert (evaluation["nr_builds"], evaluation["nr_job_errors"]) == (4, 1), evaluation
        conn = await asyncpg.connect(database_url)
        try:
            jobs = {r["job"] for r in await conn.fetch(
                "SELECT b.job FROM builds b JOIN evaluation_builds eb ON eb.build_id = b.id "
                "WHERE eb.evaluation_id = $1", evaluation["id"])}
            errors = dict(await conn.fetch(
                "SELECT job, error_message FROM evaluation_errors WHERE evaluation_id = $1",
                evaluation["id"]))
        finally:
            await conn.close()
        # The jobs before and after the hog in the walk's order were all evaluated.
        assert jobs == {"quick1000", "quick1001", "quick1002", "zslow"}
        assert list(errors) == ["quick1000hog"]
        assert "evaluator.max_memory_mb (400 MiB)" in errors["quick1000hog"]
        log = circus.log_text()
        assert log.count("evaluation worker passed its memory limit") == 1, log[-3000:]
    finally:
        circus.stop()


async def test_an_evaluator_killed_halfway_is_taken_over(
        tmp_path: Path, database_url: str) -> None:
    settings = one_worker()
    first = Circus(tmp_path, database_url, "server,evaluator", "first",
                   settings=settings).start()
    repo = flake_repo(tmp_path / "repo", quick=40, slow=40000)
    _, jobset_id = create_flake_project(first, repo)
    conn = await asyncpg.connect(database_url)
    try:
        first.post("/api/v1/evaluations/trigger", {"jobset_id": jobset_id})
        running = wait_for(lambda: next((e for e in evaluations(first, jobset_id)
                                         if e["status"] == "running"), None),
                           60, "a running evaluation")

        async def linked() -> int:
            return await conn.fetchval(
                "SELECT count(*) FROM evaluation_builds WHERE evaluation_id = $1",
                running["id"])

        for _ in range(300):  # the quick jobs are in, the slow one is still evaluating
            if await linked() >= 40:
                break
            await asyncio.sleep(0.1)
        assert await linked() >= 40
        first.signal(signal.SIGKILL)
        first.wait()
        second = Circus(tmp_path, database_url, "server,evaluator", "second",
                        port=first.port, settings=settings).start()
        try:
            done = wait_for(lambda: next((e for e in evaluations(second, jobset_id)
                                          if e["status"] != "running"), None),
                            120, "the evaluation to end")
            rows = evaluations(second, jobset_id)
            builds = await conn.fetch("SELECT job, count(*) AS n FROM builds "
                                      "WHERE jobset_id = $1 GROUP BY job", jobset_id)
        finally:
            second.stop()
    finally:
        await conn.close()
    assert [(e["id"], e["status"]) for e in rows] == [(running["id"], "succeeded")]
    assert (done["nr_builds"], done["nr_new_builds"], done["nr_job_errors"]) == (41, 41, 0)
    assert len(builds) == 41 and all(r["n"] == 1 for r in builds)
    assert "taken over" in second.log_text()

