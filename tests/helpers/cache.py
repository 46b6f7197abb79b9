"""Helpers for the binary cache, channel and gc tests (no tests here): a signing key made
by Nix, real builds run by the real runner role, the server on a real port, and the
real `nix` client run against it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import attrs

from circus.app.config import Config
from circus.app.context import Context
from circus.db.bus import Bus
from circus.server.http.app import init_app
from tests.helpers.api import insert_keys
from tests.helpers.runner import (
    PRELUDE,
    add_build,
    make_jobset,
    running_runner,
    wait_finished,
)

# dep and top: top's output refers to dep's, so dep is in top's closure.
PAIR = """
let dep = mk { name = "dep-1.0"; script = "/bin/mkdir $out; echo dep-@TAG@ > $out/data"; };
in {
  dep = dep;
  top = mk { name = "top-1.0"; script = "/bin/mkdir $out; echo ${dep} > $out/uses"; };
}
"""


def make_key(tmp: Path, name: str = "circus-test-1") -> tuple[Path, str]:
    """A key pair by `nix-store --generate-binary-cache-key`: (secret file, public key)."""
    secret, public = tmp / f"{name}.sec", tmp / f"{name}.pub"
    subprocess.run(["nix-store", "--generate-binary-cache-key", name, str(secret),
                    str(public)], check=True)
    return secret, public.read_text().strip()


def instantiate_attrs(tmp: Path, body: str, attrs_: list[str]) -> dict[str, str]:
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / f"jobs-{uuid.uuid4().hex[:8]}.nix"
    path.write_text(PRELUDE.format(nonce=uuid.uuid4().hex) + body)
    argv = ["nix-instantiate", str(path)]
    for a in attrs_:
        argv += ["-A", a]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout.split()
    return dict(zip(attrs_, out, strict=True))


@attrs.frozen
class Built:
    jobset: tuple[int, int]
    build_ids: dict[str, int]
    outputs: dict[str, str]  # job → out path
    drvs: dict[str, str]


async def build_jobs(config: Config, database_url: str, pool: asyncpg.Pool, tmp: Path,
                     body: str = PAIR, jobs: tuple[str, ...] = ("dep", "top"),
                     jobset: tuple[int, int] | None = None,
                     extra_rows: Callable[[dict[str, int]], Any] | None = None) -> Built:
    """Instantiate `jobs`, queue one build each (later jobs wait on earlier ones), run the
    real runner role until all finished."""
    jobset = jobset or await make_jobset(pool)
    drvs = instantiate_attrs(tmp, body.replace("@TAG@", uuid.uuid4().hex[:6]), list(jobs))
    ids: dict[str, int] = {}
    for job in jobs:
        ids[job] = await add_build(pool, jobset, job, drvs[job],
                                   depends_on=tuple(ids.values()))
    if extra_rows is not None:
        await extra_rows(ids)
    async with running_runner(config, database_url):
        for build_id in ids.values():
            await wait_finished(pool, build_id)
    outputs = {}
    for job, build_id in ids.items():
        path = await pool.fetchval("SELECT path FROM build_outputs WHERE build_id = $1 "
                                   "AND name = 'out'", build_id)
        if path:
            outputs[job] = path
    return Built(jobset, ids, outputs, drvs)


class Server:
    """The server app on a real port, for clients in other processes."""

    def __init__(self, aiohttp_server: Any, config: Config, pool: asyncpg.Pool,
                 database_url: str) -> None:
        self.factory = aiohttp_server
        self.config = config
        self.pool = pool
        self.database_url = database_url
        self.bus: Bus | None = None
        self.server: Any = None

    async def start(self) -> Server:
        self.bus = Bus(self.database_url)
        await self.bus.start()
        await insert_keys(self.pool)
        ctx = Context(config=self.config, pool=self.pool, bus=self.bus,
                      database_url=self.database_url)
        self.server = await self.factory(await init_app(ctx))
        return self

    async def close(self) -> None:
        if self.bus is not None:
            await self.bus.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def cache(self) -> str:
        return f"{self.url}/nix-cache"


async def run(argv: list[str], tmp: Path, **options: str) -> tuple[int, str, str]:
    """A Nix client command (without blocking the server in this event loop); `options`
    become `--option name value`. A private XDG cache: Nix must not answer from a
    narinfo it remembers from another test."""
    full = [argv[0], "--extra-experimental-features", "nix-command", *argv[1:]]
    for name, value in options.items():
        full += ["--option", name.replace("_", "-"), value]
    cache = tmp / f"xdg-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    proc = await asyncio.create_subprocess_exec(
        *full, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


__all__ = ["Built", "Server", "build_jobs", "make_jobset", "make_key", "run",
           "wait_finished"]
