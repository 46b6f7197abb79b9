"""Remote dispatch: the same jobset built by the runner alone and by 3 builders x 4 slots
(network namespaces with their own sshd and Nix store, as in the tests), beside Nix's own
`nix build` of the same derivations, locally and with `--builders` for the same three
machines; then queued -> started latency of one remote build beside Nix's own.

    bash etc/dev.sh bench dispatch [--builds 48] [--seconds 1.0] [--singles 5]

Needs root (namespaces). Each run uses fresh derivations, so nothing is already built.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests/helpers/hosts.py: the namespaces the tests use

from queue_throughput import embedded_postgres, fresh_database  # noqa: E402

from circus.app import config as configuration  # noqa: E402
from circus.app import logsetup  # noqa: E402
from circus.app.context import Context  # noqa: E402
from circus.db.bus import Bus  # noqa: E402
from circus.db.pool import create_pool  # noqa: E402
from circus.runner import role  # noqa: E402
from circus.runner.remote import SSH_OPTIONS, Machine  # noqa: E402
from tests.helpers.hosts import Network  # noqa: E402

FEATURE = "bench-remote"
SLOTS = 4
ENV = {**os.environ, "NIX_CONFIG": "experimental-features = nix-command flakes\n"
       "substituters =\nsandbox = false\nbuild-users-group ="}


def derivations(tmp: Path, count: int, seconds: float, remote: bool) -> list[str]:
    """`count` fresh derivations sleeping `seconds`; `remote`: they require FEATURE,
    which only the builders have."""
    features = f'requiredSystemFeatures = [ "{FEATURE}" ];' if remote else ""
    expr = tmp / f"bench-{os.urandom(4).hex()}.nix"
    expr.write_text(f"""builtins.genList (n: builtins.derivation {{
  name = "bench-${{toString n}}"; system = builtins.currentSystem; nonce = "{os.urandom(8).hex()}";
  builder = "/bin/sh"; args = [ "-c" "echo building; /bin/sleep {seconds}; /bin/mkdir $out" ];
  {features}
}}) {count}""")
    return subprocess.run(["nix-instantiate", str(expr)], env=ENV, check=True,
                          capture_output=True, text=True).stdout.split()


def machines(network: Network) -> list[Machine]:
    return [Machine(i, h.name, h.store_uri, (system(),), SLOTS, 1.0, (FEATURE,), (),
                    str(network.client_key), h.host_key)
            for i, h in enumerate(network.hosts.values(), 1)]


def system() -> str:
    return subprocess.run(["nix", "eval", "--raw", "--impure", "--expr",
                           "builtins.currentSystem"], env=ENV, capture_output=True,
                          text=True, check=True).stdout


def nix_build(drvs: list[str], flags: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(["nix", "build", "--no-link", *flags, *drvs], env=env, check=True,
                   capture_output=True)
    return time.perf_counter() - started


async def circus_build(url: str, drvs: list[str], builders: list[Machine], tmp: Path,
                       workers: int) -> tuple[float, float]:
    """Wall time of the runner building these, and the mean builder slots in use (of all
    the builders' slots) while it did."""
    pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
    await _register(pool, builders)
    stop = await _runner(url, tmp / "state", workers)
    await _until(pool, "SELECT count(*) = $1 FROM builders WHERE health = 'up'",
                 len(builders))
    started = time.perf_counter()
    await pool.execute(
        "INSERT INTO builds (project_id, jobset_id, job, drv_path, system, required_features) "
        "SELECT 1, 1, 'job' || n, d, $2, $3 FROM unnest($1::text[]) WITH ORDINALITY u(d, n)",
        drvs, system(), [FEATURE] if builders else [])
    await pool.execute("NOTIFY circus_builds_queued")
    samples = []
    while await pool.fetchval("SELECT count(*) FROM builds WHERE state <> 'finished'"):
        samples.append(await pool.fetchval(
            "SELECT count(*) FROM builds WHERE state = 'running' AND builder_id IS NOT NULL"))
        await asyncio.sleep(0.1)
    elapsed = time.perf_counter() - started
    failed = await pool.fetchval("SELECT count(*) FROM builds WHERE buildstatus <> 0")
    assert failed == 0, f"{failed} builds failed"
    await stop()
    await pool.close()
    slots = len(builders) * SLOTS
    return elapsed, (statistics.mean(samples) / slots if samples and slots else 0.0)


async def _runner(url: str, state: Path, workers: int) -> Callable[[], Awaitable[None]]:
    """The runner role in this loop; returns what stops it."""
    config = configuration.structure({
        "state_dir": str(state), "database": {"url": url},
        "queue_runner": {"workers": workers, "builder_probe_interval": 3600},
        "gc": {"enabled": False}, "cache": {"enabled": False}})
    ctx = Context(config=config, pool=await create_pool(url, config), bus=Bus(url),
                  database_url=url)
    await ctx.bus.start()
    task = asyncio.create_task(role.run(ctx))

    async def stop() -> None:
        ctx.stopping.set()
        await task
        await ctx.bus.close()
        await ctx.pool.close()
    return stop


async def _register(pool: asyncpg.Pool, builders: list[Machine]) -> None:
    for m in builders:
        await pool.execute(
            "INSERT INTO builders (name, ssh_uri, systems, max_jobs, supported_features, "
            "ssh_key_file, public_host_key) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            m.name, m.uri, list(m.systems), m.max_jobs, list(m.supported_features),
            m.ssh_key_file, m.public_host_key)


async def _until(pool: asyncpg.Pool, query: str, *args: object) -> None:
    while not await pool.fetchval(query, *args):  # noqa: ASYNC110 (the rows are the clock)
        await asyncio.sleep(0.05)


async def latency(url: str, builder: Machine, tmp: Path, singles: int,
                  seconds: float) -> list[tuple[float, float, float]]:
    """(queued -> claimed, queued -> first log line, queued -> finished) per build."""
    pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
    await _register(pool, [builder])
    stop = await _runner(url, tmp / "state-l", 1)
    await _until(pool, "SELECT health = 'up' FROM builders")
    found = []
    for drv in derivations(tmp, singles, seconds, remote=True):
        queued = time.perf_counter()
        build_id = await pool.fetchval(
            "WITH b AS (INSERT INTO builds (project_id, jobset_id, job, drv_path, system, "
            "required_features) VALUES (1, 1, $1, $1, $2, $3) RETURNING id) "
            "SELECT id, pg_notify('circus_builds_queued', '1') FROM b", drv, system(),
            [FEATURE])
        marks = []
        for query in ("SELECT state <> 'queued' FROM builds WHERE id = $1",
                      "SELECT EXISTS (SELECT 1 FROM build_log_chunks WHERE build_id = $1) "
                      "OR (SELECT state = 'finished' FROM builds WHERE id = $1)",
                      "SELECT state = 'finished' FROM builds WHERE id = $1"):
            while not await pool.fetchval(query, build_id):  # noqa: ASYNC110 (measured)
                await asyncio.sleep(0.002)
            marks.append(time.perf_counter() - queued)
        found.append((marks[0], marks[1], marks[2]))
    await stop()
    await pool.close()
    return found


def nix_latency(drv: str, builder: Machine) -> tuple[float, float]:
    """Nix's own remote build of one derivation: start -> first log line, -> done."""
    started = time.perf_counter()
    proc = subprocess.Popen(["nix", "build", "--no-link", "-L", *builder.build_flags(), drv],
                            env={**ENV, "NIX_SSHOPTS": SSH_OPTIONS}, stderr=subprocess.PIPE,
                            text=True)
    first = None
    assert proc.stderr is not None
    for line in proc.stderr:
        if "building" in line and first is None and "on '" not in line:
            first = time.perf_counter() - started
    proc.wait()
    return first or 0.0, time.perf_counter() - started


async def main(builds: int, seconds: float, singles: int) -> None:
    logsetup.setup(configuration.TracingConfig(level="warn"))
    with embedded_postgres() as server, Network() as network:
        for name in ("b1", "b2", "b3"):
            network.add_host(name, nix_conf=f"system-features = {FEATURE}\n"
                             f"max-jobs = {SLOTS}")
        fleet = machines(network)
        tmp = network.dir
        local = await circus_build(await fresh_database(server, "d_local"),
                                   derivations(tmp, builds, seconds, False), [], tmp, SLOTS)
        remote, use = await circus_build(await fresh_database(server, "d_remote"),
                                         derivations(tmp, builds, seconds, True), fleet,
                                         tmp, 1)
        nix_local = nix_build(derivations(tmp, builds, seconds, False),
                              ["--max-jobs", str(SLOTS)], ENV)
        line = " ; ".join(m.builders_line() for m in fleet)
        nix_remote = nix_build(derivations(tmp, builds, seconds, True),
                               ["--builders", line, "--max-jobs", "0"],
                               {**ENV, "NIX_SSHOPTS": SSH_OPTIONS})
        print(f"{builds} builds of {seconds} s each:")
        print(f"  circus, runner alone ({SLOTS} workers): {local[0]:.2f} s "
              f"({builds / local[0]:.1f} builds/s)")
        print(f"  circus, 3 builders x {SLOTS} slots:     {remote:.2f} s "
              f"({builds / remote:.1f} builds/s), builder slots in use {use:.0%}")
        print(f"  nix build -j{SLOTS} (local):            {nix_local:.2f} s")
        print(f"  nix build --builders (same 3 x {SLOTS}):  {nix_remote:.2f} s")
        marks = await latency(await fresh_database(server, "d_latency"), fleet[0], tmp,
                              singles, seconds)
        nix_marks = [nix_latency(drv, fleet[1])
                     for drv in derivations(tmp, singles, seconds, True)]
        print(f"one remote build of {seconds} s, median of {singles}:")
        print(f"  circus: queued -> claimed {statistics.median(m[0] for m in marks):.3f} s, "
              f"-> first log line {statistics.median(m[1] for m in marks):.3f} s, "
              f"-> finished {statistics.median(m[2] for m in marks):.3f} s")
        print(f"  nix build --builders: start -> first log line "
              f"{statistics.median(m[0] for m in nix_marks):.3f} s, -> done "
              f"{statistics.median(m[1] for m in nix_marks):.3f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builds", type=int, default=48)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--singles", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.builds, args.seconds, args.singles))
