"""Ingest benchmark: a synthetic evaluation of 100 000 jobs written through the evaluator's
own ingest code into a fresh embedded PostgreSQL. No Nix needed: the store paths are fake
but well-formed. Prints the seconds taken and jobs/s, for a first (all new) and a second
(all reused) evaluation, written in batches as the evaluator writes them.

    .venv/bin/python bench/ingest.py [--jobs N]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from circus.db import embedded, migrations, queries
from circus.db.queries import Q
from circus.evaluator.ingest import Counts, Evaluation, Ingest
from circus.evaluator.inputs import EvalInput
from circus.evaluator.jobs import JobMeta, JobRecord
from circus.nix.drv import Closures
from circus.store import ingest as ingest_rows

BENCH = queries.load(Path(__file__).parent / "sql")

NIX32 = "0123456789abcdfghijklmnpqrsvwxyz"


def store_hash(seed: str) -> str:
    digest = hashlib.sha256(seed.encode()).digest()
    return "".join(NIX32[b % 32] for b in digest[:32])


def synthetic_jobs(count: int, rng: random.Random) -> tuple[list[JobRecord], dict[str, list[str]]]:
    jobs: list[JobRecord] = []
    deps: dict[str, list[str]] = {}
    for n in range(count):
        name = f"pkg{n}-1.{n % 10}"
        drv = f"/nix/store/{store_hash(f'drv{n}')}-{name}.drv"
        if n % 1000 == 999:
            jobs.append(JobRecord(attr=f"broken.pkg{n}", error=f"error: pkg{n} is broken"))
            continue
        aggregate = n % 10000 == 0 and n > 0
        jobs.append(JobRecord(
            attr=f"pkgs.pkg{n}.x86_64-linux", name=name, system="x86_64-linux", drv_path=drv,
            outputs={"out": f"/nix/store/{store_hash(f'out{n}')}-{name}"},
            meta=JobMeta(description=f"package {n}", license="MIT", homepage="https://x.invalid",
                         maintainers="alice, bob", timeout=3600, max_silent=600),
            is_aggregate=aggregate,
            constituents=[j.attr for j in jobs[-50:] if j.error is None] if aggregate else [],
        ))
        # Like a package set: each job has a few earlier jobs in its closure.
        earlier = [jobs[rng.randrange(n)] for _ in range(min(n, rng.randrange(6)))]
        deps[drv] = sorted({j.drv_path for j in earlier if j.error is None})
    return jobs, deps


class SyntheticClosures(Closures):
    """The fake derivations' inputs, from the generator instead of .drv files."""

    def __init__(self, deps: dict[str, list[str]]) -> None:
        super().__init__()
        self._deps = deps

    def inputs(self, drv_path: str) -> list[str]:
        return self._deps.get(drv_path, [])


async def _ingest(pool: asyncpg.Pool, ev: Evaluation, jobs: list[JobRecord],
                  deps: dict[str, list[str]], batch: int) -> Counts:
    """As the evaluator writes a running evaluation: its row, batches, the end."""
    async with pool.acquire() as conn:
        ev = await ingest_rows.start(conn, ev)
    sink = Ingest(pool, ev, closures=SyntheticClosures(deps))
    for start in range(0, len(jobs), batch):
        await sink.add(jobs[start:start + batch])
    return await sink.finish(sink.failed)


async def run(count: int, url: str, batch: int) -> None:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
    conn = await asyncpg.connect(url)
    await migrations.up(conn)
    row = await conn.fetchrow(BENCH.bench_jobset, "bench", "file:///bench", "main")
    jobs, deps = synthetic_jobs(count, random.Random(42))
    print(f"{count} synthetic jobs, {sum(map(len, deps.values()))} dependencies; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    backend = await pool.fetchval(BENCH.bench_backend_pid)
    inputs = [EvalInput("src", "git", uri="file:///bench", revision="0" * 40)]
    for attempt, label in ((1, "first evaluation (all builds new)"),
                           (2, "second evaluation (all builds reused)")):
        eval_id = (await conn.fetchrow(Q.evaluation_reserve_id))["id"]
        ev = Evaluation(id=eval_id, jobset_id=row["id"], project_id=row["project_id"],
                        commit_hash=f"{attempt:040d}", inputs_hash=f"h{attempt}",
                        flake_uri="", started_at=datetime.now(UTC), inputs=inputs)
        start, pg, py = time.perf_counter(), _backend_cpu(backend), time.process_time()
        counts = await _ingest(pool, ev, jobs, deps, batch)
        seconds = time.perf_counter() - start
        pg, py = _backend_cpu(backend) - pg, time.process_time() - py
        print(f"{label}: {len(jobs)} jobs in {seconds:.2f} s "
              f"({len(jobs) / seconds:,.0f} jobs/s); builds={counts.nr_builds} "
              f"new={counts.nr_new_builds} errors={counts.nr_job_errors}; "
              f"CPU: PostgreSQL {pg:.2f} s, Python {py:.2f} s")
    print(f"dependency rows: {await conn.fetchval(BENCH.bench_dependency_count)}")
    await conn.close()
    await pool.close()


def _backend_cpu(backend_pid: int) -> float:
    """CPU seconds of the PostgreSQL backend serving us: on a busy shared machine, what
    the ingest costs apart from waiting for a core."""
    fields = Path(f"/proc/{backend_pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5000,
                        help="jobs per transaction (the evaluator's largest batch)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="circus-bench-") as tmp:
        server = embedded.EmbeddedPostgres(Path(tmp) / "postgres")
        server.start()
        try:
            asyncio.run(run(args.jobs, server.url, args.batch))
        finally:
            server.stop("immediate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
