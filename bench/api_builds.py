"""GET /api/v1/builds against 1 000 000 builds: requests/s and latency percentiles at 16
concurrent clients, for the first page, a project filter, deep offsets and a keyset
cursor. The server is a real `circus run --roles=server` process on an embedded
PostgreSQL (fresh database); the load comes from this process.

    .venv/bin/python bench/api_builds.py [--builds 1000000] [--clients 16] [--seconds 10]

Target (issue 3): p99 under 50 ms for the first page, under 200 ms at any offset.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import asyncpg

from circus.db import embedded, migrations

PROJECTS = 10
# Bench fixtures only; the server's own SQL lives in sql/queries.
SEED = """
INSERT INTO projects (name, repository_url)
SELECT 'p' || g, 'https://example.com/p' || g FROM generate_series(1, $1::int) g;
INSERT INTO jobsets (project_id, name) SELECT id, 'main' FROM projects;
"""
FILL = """
INSERT INTO builds (project_id, jobset_id, job, drv_path, system, state, buildstatus,
                    created_at, started_at, finished_at)
SELECT j.project_id, j.id, 'job' || (g % 5000), '/nix/store/bench-' || g || '.drv',
       'x86_64-linux', 'finished', CASE WHEN g % 10 = 0 THEN 1 ELSE 0 END,
       now() - (($2::int - g) || ' seconds')::interval,
       now() - (($2::int - g) || ' seconds')::interval,
       now() - (($2::int - g - 30) || ' seconds')::interval
  FROM generate_series($1::int, $2::int) g
  JOIN jobsets j ON j.project_id = 1 + g % $3::int
"""


@contextlib.contextmanager
def postgres(tmp: Path) -> Iterator[embedded.EmbeddedPostgres]:
    server = embedded.EmbeddedPostgres(tmp / "postgres")
    server.start()
    try:
        yield server
    finally:
        server.stop("immediate")


async def prepare(server: embedded.EmbeddedPostgres, builds: int) -> str:
    admin = await asyncpg.connect(server.admin_url())
    await admin.execute("DROP DATABASE IF EXISTS bench_api")
    await admin.execute("CREATE DATABASE bench_api")
    await admin.close()
    url = server.admin_url("bench_api")
    conn = await asyncpg.connect(url)
    await migrations.up(conn)
    await conn.execute(SEED.replace("$1::int", str(PROJECTS)))
    started = time.monotonic()
    step = 200_000
    for low in range(1, builds + 1, step):
        await conn.execute(FILL, low, min(low + step - 1, builds), PROJECTS)
    # As autovacuum would on a live system: statistics, and the visibility map that lets
    # index-only scans skip the heap.
    await conn.execute("VACUUM (ANALYZE) builds")
    print(f"inserted {builds:,} builds in {time.monotonic() - started:.1f} s", flush=True)
    await conn.close()
    return url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "circus.cli", "run", "--roles=server"],
                            env=env, cwd=cwd, start_new_session=True)


@contextlib.asynccontextmanager
async def server_process(url: str, tmp: Path) -> AsyncIterator[str]:
    port = free_port()
    env = {**os.environ, "CIRCUS_DATABASE__URL": url, "CIRCUS_SERVER__PORT": str(port),
           "CIRCUS_STATE_DIR": str(tmp / "state"), "CIRCUS_TRACING__LEVEL": "warn",
           "CIRCUS_DATABASE__MAX_CONNECTIONS": "20", "CIRCUS_DATABASE__MIN_CONNECTIONS": "16"}
    proc = start_server(env, tmp)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(base + "/health") as resp:
                        if resp.status == 200:
                            break
                await asyncio.sleep(0.1)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk_load(base: str, path: str, clients: int, seconds: float) -> dict[str, float]:
    """wrk (C; apt-get install wrk): a Python client on the same 2 cores would take CPU
    from the server it measures."""
    out = subprocess.run(["wrk", "-t2", f"-c{clients}", f"-d{seconds:g}s", "--latency",
                          base + path], check=True, capture_output=True, text=True).stdout
    percentile = dict(re.findall(r"^\s+(\d+)%\s+(\S+)$", out, re.MULTILINE))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),  # type: ignore[index]
            "p50": _ms(percentile["50"]), "p99": _ms(percentile["99"]),
            "errors": int(errors[1]) if errors else 0}


async def load(base: str, path: str, clients: int, seconds: float) -> dict[str, float]:
    if shutil.which("wrk"):
        return await asyncio.to_thread(wrk_load, base, path, clients, seconds)
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as http:
        async def client() -> None:
            nonlocal errors
            while time.monotonic() < deadline:
                started = time.perf_counter()
                async with http.get(base + path) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - started)

        for _ in range(3):  # warm the pool's connections and plans
            async with http.get(base + path) as resp:
                await resp.read()
        began = time.monotonic()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.monotonic() - began
    latencies.sort()
    return {"rps": len(latencies) / elapsed, "p50": statistics.median(latencies) * 1000,
            "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000, "n": len(latencies),
            "errors": errors}


async def main(builds: int, clients: int, seconds: float) -> None:
    scenarios = [
        ("first page", "/api/v1/builds?limit=50", 50),
        ("project filter", "/api/v1/builds?limit=50&project_id=3", 50),
        ("project, status filter", "/api/v1/builds?limit=50&project_id=3&status=failed", 200),
        ("offset 10 000", "/api/v1/builds?limit=50&offset=10000", 200),
        ("offset 500 000", "/api/v1/builds?limit=50&offset=500000", 200),
        (f"offset {builds - 100_000:,}", f"/api/v1/builds?limit=50&offset={builds - 100_000}",
         200),
        ("project, offset 90 000", "/api/v1/builds?limit=50&project_id=3&offset=90000", 200),
        ("keyset before_id=100 000", "/api/v1/builds?limit=50&before_id=100000", 200),
    ]
    with tempfile.TemporaryDirectory(prefix="circus-bench-api-") as tmp_name:
        tmp = Path(tmp_name)
        with postgres(tmp) as server:
            url = await prepare(server, builds)
            async with server_process(url, tmp) as base:
                client = "wrk" if shutil.which("wrk") else "aiohttp"
                print(f"{clients} concurrent clients ({client}), {seconds:g} s per scenario")
                print(f"{'scenario':32} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
                      f"{'target':>7} {'errors':>6}")
                for name, path, target in scenarios:
                    r = await load(base, path, clients, seconds)
                    verdict = "ok" if r["p99"] < target else "MISSED"
                    print(f"{name:32} {r['rps']:8.0f} {r['p50']:8.1f} {r['p99']:8.1f} "
                          f"{'<' + str(target):>7} {r['errors']:6d} {verdict}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builds", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    asyncio.run(main(args.builds, args.clients, args.seconds))
