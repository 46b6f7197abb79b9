"""Schemathesis against a live `circus run --roles=server` over every operation of
/api/v1/openapi.json, with every check (no 5xx, responses as documented, bad input
refused, valid input accepted, ...), in positive and negative mode (which sends wrong
types, missing fields and malformed bodies), as the admin, as the read-only key and
anonymously. Bounded: a few examples per operation, fixed seed, one server for all."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from circus.db import embedded
from tests.helpers.e2e import ADMIN_KEY, READONLY_KEY, Circus
from tests.helpers.suite import TEMPLATE

# Examples per operation: each caller's run is ~15 s over ~90 operations.
MAX_EXAMPLES = 4
# Extra CLI arguments (e.g. `--include-path-regex ^/api/v1/` while debugging one area).
EXTRA = os.environ.get("CIRCUS_SCHEMATHESIS_ARGS", "").split()
CONFIG = Path(__file__).parent / "data" / "schemathesis.toml"
CALLERS = {"admin": ADMIN_KEY, "read-only": READONLY_KEY, "anonymous": None}


def _seed(api: Circus) -> None:
    """Something to find, so that reads answer 200 with bodies, not only 404s."""
    project = api.post("/api/v1/projects", {"name": "st", "repository_url":
                                            "https://example.com/st.git"})
    api.post(f"/api/v1/projects/{project['id']}/jobsets", {"name": "main"})
    api.post("/api/v1/news", {"title": "hello", "content": "world"})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory,
           pg_server: embedded.EmbeddedPostgres) -> Iterator[Circus]:
    """One server and database for the three callers (the per-test fixture is too short)."""

    async def database() -> str:
        name = f"st_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(pg_server.admin_url())
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        await admin.close()
        return pg_server.admin_url(name)

    api = Circus(tmp_path_factory.mktemp("st"), asyncio.run(database()), "server",
                 "st").start()
    try:
        _seed(api)
        yield api
    finally:
        api.stop()


@pytest.mark.parametrize("caller", list(CALLERS))
def test_schemathesis_finds_no_failure(server: Circus, caller: str, tmp_path: Path) -> None:
    key = CALLERS[caller]
    auth = ["-H", f"Authorization: Bearer {key}"] if key else []
    done = subprocess.run(
        [str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(CONFIG), "run",
         f"{server.url}/api/v1/openapi.json", *auth,
         "--checks", "all", "--mode", "all", "--phases", "examples,coverage,fuzzing",
         "--max-examples", str(MAX_EXAMPLES), "--seed", "3",
         # One worker: hypothesis's lambda-source cache is not thread-safe on 3.11
         # ("AST constructor recursion depth mismatch"), and one is faster here anyway.
         "--workers", "1",
         "--request-timeout", "20", "--generation-allow-x00", "false",
         "--suppress-health-check", "all", "--no-color", "--no-shrink",
         "--report-dir", str(tmp_path / "report"), *EXTRA],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-30000:]
