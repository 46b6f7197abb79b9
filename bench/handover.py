"""Handover latency: a build queued (INSERT + NOTIFY) → a runner process claiming it.
Median and p99 over 200 builds, one at a time, each waited on until finished.

    .venv/bin/python bench/handover.py [--builds 200]

Latency is `started_at - created_at` of each build: both are the database's clock.
"""

from __future__ import annotations

import sys

# Run as a script, this directory would shadow the standard library's `queue` module.
sys.path[:] = [p for p in sys.path if not p.endswith("/bench")]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import importlib.util  # noqa: E402
import statistics  # noqa: E402
from pathlib import Path  # noqa: E402

import asyncpg  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_queue", Path(__file__).with_name("queue.py"))
bench_queue = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(bench_queue)  # type: ignore[union-attr]

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


async def main(builds: int) -> None:
    with bench_queue.embedded_postgres() as server:
        url = await bench_queue.fresh_database(server, "bench_handover")
        async with bench_queue.runner_processes(url, 1, 4):
            latencies = await one_by_one(url, builds)
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * len(ordered)) - 1)]
    print(f"handover: {len(ordered)} builds, queued → claimed: median "
          f"{statistics.median(ordered):.1f} ms, p99 {p99:.1f} ms, max {ordered[-1]:.1f} ms",
          flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builds", type=int, default=200)
    asyncio.run(main(parser.parse_args().builds))
