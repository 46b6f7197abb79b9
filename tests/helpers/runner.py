"""Helpers for the runner tests: rows made directly, derivations made by nix-instantiate,
and the real runner role started and stopped around a test. No tests here."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg

from circus.app.context import Context
from circus.db.bus import Bus
from circus.db.pool import init_connection
from circus.runner import role
from circus.runner.builders import Builder
from tests.helpers.suite import host_system

PRELUDE = """
let
  nonce = "{nonce}";
  mk = {{ name, script, extra ? {{}} }}: builtins.derivation ({{
    inherit name nonce;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" script ];
  }} // extra);
in
"""


def instantiate(tmp_path: Path, body: str, attr: str | None = None) -> str:
    """The .drv of a Nix expression written with `mk`; unique per call, so never cached."""
    path = tmp_path / f"job-{uuid.uuid4().hex[:8]}.nix"
    path.write_text(PRELUDE.format(nonce=uuid.uuid4().hex) + body)
    argv = ["nix-instantiate", str(path), *(["-A", attr] if attr else [])]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return out.strip().splitlines()[-1]


@functools.cache
async def make_jobset(pool: asyncpg.Pool) -> tuple[int, int]:
    project = await pool.fetchval(
        "INSERT INTO projects (name, repository_url) VALUES ('proj', 'file:///x') RETURNING id")
    jobset = await pool.fetchval(
        "INSERT INTO jobsets (project_id, name) VALUES ($1, 'main') RETURNING id", project)
    return project, jobset


async def add_build(pool: asyncpg.Pool, jobset: tuple[int, int], job: str, drv: str,
                    system: str | None = None, depends_on: tuple[int, ...] = (),
                    **columns: object) -> int:
    names = ["project_id", "jobset_id", "job", "drv_path", "system", *columns]
    values = [jobset[0], jobset[1], job, drv, system or host_system(), *columns.values()]
    marks = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    build_id = await pool.fetchval(
        f"INSERT INTO builds ({', '.join(names)}) VALUES ({marks}) RETURNING id", *values)
    for dep in depends_on:
        await pool.execute("INSERT INTO build_dependencies (build_id, dependency_id) "
                           "VALUES ($1, $2)", build_id, dep)
    return build_id


async def build_row(pool: asyncpg.Pool, build_id: int) -> asyncpg.Record:
    return await pool.fetchrow("SELECT * FROM builds WHERE id = $1", build_id)


async def wait_for(check: Callable[[], object], within: float = 60) -> object:
    """Poll a condition (plain or awaitable) until it holds; fails the test after
    `within` s."""
    async with asyncio.timeout(within):
        while True:
            value = check()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
            await asyncio.sleep(0.05)


async def wait_finished(pool: asyncpg.Pool, build_id: int, within: float = 60) -> asyncpg.Record:
    async def finished() -> asyncpg.Record | None:
        row = await build_row(pool, build_id)
        return row if row["state"] == "finished" else None

    return await wait_for(finished, within)  # type: ignore[return-value]


@contextlib.asynccontextmanager
async def running_runner(config: object, database_url: str,
                         builder: Builder | None = None) -> AsyncIterator[Context]:
    """The real runner role in this event loop (building with Nix unless given another
    builder); stopped (as on SIGTERM) on exit."""
    # The server's codecs (jsonb as dicts), as circus run's pool has them.
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=10,
                                     init=init_connection)
    bus = Bus(database_url)
    await bus.start()
    ctx = Context(config=config, pool=pool, bus=bus, database_url=database_url)  # type: ignore[arg-type]
    task = asyncio.create_task(role.run(ctx) if builder is None else role.serve(ctx, builder))
    try:
        yield ctx
    finally:
        ctx.stopping.set()
        try:
            async with asyncio.timeout(60):
                await task
        finally:
            await bus.close()
            await pool.close()
