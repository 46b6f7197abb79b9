"""Handover latency, median and p99:
- a build queued (INSERT + NOTIFY) → a runner process claiming it, over 200 builds one
  at a time (`started_at - created_at` of each build);
- an evaluation triggered (the API's trigger statement) → an evaluator process starting
  it, over 30 triggers each with a new commit (`evaluations.started_at - trigger_time`).
Both differences are read on the database's clock.

    .venv/bin/python bench/handover.py [--builds 200] [--evals 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import asyncpg
import queue_throughput as bench_queue  # beside this script: its database and runners

LATENCY = """
SELECT extract(epoch FROM started_at - created_at) * 1000 FROM builds
 WHERE state = 'finished' ORDER BY id
"""


async def one_by_one(url: str, builds: int) -> list[float]:
    conn = await asyncpg.connect(url)
    finished: asyncio.Queue[str] = asyncio.Queue()
    await conn.add_listener("circus_build_changed", lambda *a: finished.put_nowait(a[3]))
    for n in range(builds):
        await bench_queue.enqueue(conn, 1, f"h{n}")
        while await conn.fetchval(bench_queue.UNFINISHED):
            await asyncio.wait_for(finished.get(), 10)
    latencies = [row[0] for row in await conn.fetch(LATENCY)]
    await conn.close()
    return [float(x) for x in latencies]


FLAKE = """{ outputs = { self }: { hydraJobs.hello = builtins.derivation {
  name = "hello-REV"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "x" ]; };
}; }"""
EVAL_LATENCY = """
SELECT extract(epoch FROM e.started_at - $2::timestamptz) * 1000
  FROM evaluations e
 WHERE e.jobset_id = $1 AND e.id > $3 AND e.started_at >= $2 ORDER BY e.id LIMIT 1
"""


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=bench", "-c",
                    "user.email=bench@circus.invalid", *args], check=True, capture_output=True)


def _commit(repo: Path, rev: int) -> None:
    (repo / "flake.nix").write_text(FLAKE.replace("REV", str(rev)))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", f"rev {rev}")


async def trigger_to_evaluation(url: str, evals: int, tmp: Path) -> list[float]:
    from circus.db.queries import Q

    repo = tmp / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    conn = await asyncpg.connect(url)
    jobset = await conn.fetchval(
        "INSERT INTO jobsets (project_id, name, check_interval) "
        "SELECT id, 'evals', 0 FROM projects RETURNING id")
    await conn.execute("UPDATE projects SET repository_url = $1", f"file://{repo}")
    await conn.execute("UPDATE jobsets SET enabled = 0 WHERE id <> $1", jobset)
    changed: asyncio.Queue[str] = asyncio.Queue()
    await conn.add_listener("circus_eval_changed", lambda *a: changed.put_nowait(a[3]))
    env = {**os.environ, "CIRCUS_DATABASE__URL": url, "CIRCUS_TRACING__LEVEL": "warn",
           "CIRCUS_EVALUATOR__WORK_DIR": str(tmp / "work"),
           # The bench's repository is a local one: file:// is refused unless listed.
           "CIRCUS_SERVER__ALLOWED_URL_SCHEMES": '["file"]',
           "NIX_CONFIG": "experimental-features = nix-command flakes\nsubstituters =\n"
                         "sandbox = false\nbuild-users-group ="}
    argv = [sys.executable, "-m", "circus.cli", "run", "--roles=evaluator"]
    proc = subprocess.Popen(argv, env=env, cwd=tmp)  # noqa: ASYNC220 (lives for the whole run)
    latencies = []
    try:
        last = 0
        # The first round waits for the process to start; it is not a handover.
        for rev in range(-1, evals):
            _commit(repo, rev)
            row = await conn.fetchrow(Q.jobset_request_evaluation, jobset)
            latency = None
            while latency is None:
                await asyncio.wait_for(changed.get(), 60)
                latency = await conn.fetchval(EVAL_LATENCY, jobset, row["trigger_time"], last)
            last = await conn.fetchval("SELECT max(id) FROM evaluations")
            if rev >= 0:
                latencies.append(float(latency))
    finally:
        proc.terminate()
        proc.wait(30)
        await conn.close()
    return latencies


def _report(what: str, latencies: list[float]) -> None:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * len(ordered)) - 1)]
    print(f"handover: {what} ({len(ordered)}): median {statistics.median(ordered):.1f} ms, "
          f"p99 {p99:.1f} ms, max {ordered[-1]:.1f} ms", flush=True)


async def main(builds: int, evals: int) -> None:
    with bench_queue.embedded_postgres() as server, \
            tempfile.TemporaryDirectory(prefix="circus-handover-") as tmp:
        url = await bench_queue.fresh_database(server, "bench_handover")
        async with bench_queue.runner_processes(url, 1, 4):
            _report("build queued → claimed by a runner", await one_by_one(url, builds))
        _report("evaluation triggered → started by the evaluator",
                await trigger_to_evaluation(url, evals, Path(tmp)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builds", type=int, default=200)
    parser.add_argument("--evals", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(main(args.builds, args.evals))
