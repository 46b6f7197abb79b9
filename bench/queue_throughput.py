"""Queue throughput: claim + complete 10 000 queued builds with a no-op builder, with one
and with four runner OS processes against one embedded PostgreSQL (fresh database).

    .venv/bin/python bench/queue_throughput.py [--builds 10000] [--workers 16] [--no-async-commit]

The headline figures use PostgreSQL's default `synchronous_commit = on` (what production
runs); then, labelled, the same with `synchronous_commit = off` (skip with
--no-async-commit).

`--worker URL` is the runner process this script (and bench/handover.py) starts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg

from circus.app import config as configuration
from circus.app import logsetup as circus_logging
from circus.app.context import Context
from circus.db import embedded, migrations
from circus.db.bus import Bus
from circus.db.pool import create_pool
from circus.runner.builders import NoopBuilder
from circus.runner.role import serve

SYSTEM = "bench-linux"
HERE = Path(__file__).resolve()

# Bench fixtures only; the runner's own SQL lives in sql/queries.
SEED = """
INSERT INTO projects (name, repository_url) VALUES ('bench', 'file:///bench');
INSERT INTO jobsets (project_id, name) SELECT id, 'main' FROM projects;
"""
ENQUEUE = """
WITH added AS (
  INSERT INTO builds (project_id, jobset_id, job, drv_path, system)
  SELECT j.project_id, j.id, 'job' || g, '/nix/store/bench-' || $2::text || '-' || g || '.drv', $3
    FROM jobsets j, generate_series(1, $1::int) g
  RETURNING id)
SELECT count(*), pg_notify('circus_builds_queued', count(*)::text) FROM added
"""
UNFINISHED = "SELECT count(*) FROM builds WHERE state <> 'finished'"


@contextlib.contextmanager
def embedded_postgres() -> Iterator[embedded.EmbeddedPostgres]:
    with tempfile.TemporaryDirectory(prefix="circus-bench-") as tmp:
        server = embedded.EmbeddedPostgres(Path(tmp) / "postgres")
        server.start()
        try:
            yield server
        finally:
            server.stop("immediate")


async def fresh_database(server: embedded.EmbeddedPostgres, name: str,
                         synchronous_commit: bool = True) -> str:
    admin = await asyncpg.connect(server.admin_url())
    await admin.execute(f"DROP DATABASE IF EXISTS {name}")
    await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    url = server.admin_url(name)
    conn = await asyncpg.connect(url)
    await migrations.up(conn)
    await conn.execute(SEED)
    if not synchronous_commit:
        await conn.execute(f"ALTER DATABASE {name} SET synchronous_commit = off")
    await conn.close()
    return url


@contextlib.asynccontextmanager
async def runner_processes(url: str, count: int, workers: int) -> AsyncIterator[None]:
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, str(HERE), "--worker", url, "--workers", str(workers),
        stdout=asyncio.subprocess.PIPE) for _ in range(count)]
    try:
        for proc in procs:
            await proc.stdout.readline()  # type: ignore[union-attr]
        await asyncio.sleep(0.5)  # the runner subscribes just after saying "ready"
        yield
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            await proc.wait()


async def enqueue(conn: asyncpg.Connection, builds: int, tag: str) -> None:
    await conn.execute(ENQUEUE, builds, tag, SYSTEM)
    # What autovacuum does soon after a bulk insert; without statistics the planner
    # sorts the whole queue for every claim instead of walking builds_queue_idx.
    await conn.execute("ANALYZE builds")


async def drained(conn: asyncpg.Connection) -> None:
    """Until every build is finished (checked every 20 ms)."""
    while True:
        if not await conn.fetchval(UNFINISHED):
            return
        await asyncio.sleep(0.02)


async def throughput(server: embedded.EmbeddedPostgres, processes: int, builds: int,
                     workers: int, synchronous_commit: bool) -> float:
    url = await fresh_database(server, f"bench_queue_{processes}", synchronous_commit)
    async with runner_processes(url, processes, workers):
        conn = await asyncpg.connect(url)
        started = time.perf_counter()
        await enqueue(conn, builds, "q")
        await drained(conn)
        elapsed = time.perf_counter() - started
        await conn.close()
    return builds / elapsed


async def worker_main(url: str, workers: int) -> None:
    circus_logging.setup(configuration.TracingConfig(level="warn"))
    config = configuration.structure({
        "database": {"url": url, "min_connections": 1, "max_connections": workers + 4},
        "queue_runner": {"workers": workers, "systems": [SYSTEM], "shutdown_grace": 5},
        "gc": {"enabled": False},
    })
    pool = await create_pool(url, config)
    bus = Bus(url)
    await bus.start()
    ctx = Context(config=config, pool=pool, bus=bus, database_url=url)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, ctx.stopping.set)
    print("ready", flush=True)
    try:
        await serve(ctx, NoopBuilder())
    finally:
        await bus.close()
        await pool.close()


async def main(builds: int, workers: int, async_commit: bool) -> None:
    modes = [True, False] if async_commit else [True]
    with embedded_postgres() as server:
        for synchronous_commit in modes:
            label = "" if synchronous_commit else " [synchronous_commit = off]"
            for processes in (1, 4):
                rate = await throughput(server, processes, builds, workers, synchronous_commit)
                print(f"queue{label}: {builds} no-op builds, {processes} runner process(es) x "
                      f"{workers} workers: {rate:,.0f} builds/s", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builds", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--no-async-commit", action="store_true",
                        help="only the headline figures (synchronous_commit = on)")
    parser.add_argument("--worker", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(worker_main(args.worker, args.workers))
    else:
        asyncio.run(main(args.builds, args.workers, not args.no_async_commit))
