"""The suite's fixtures, all of them: a real PostgreSQL (the embedded wheel) started once
per run, a template database with the migrations applied, and a fresh database per test
made from it; a configuration and a server context on it; git repositories in tmp dirs.
Nix and git are configured for an offline machine. Plain helpers are in tests/helpers/.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from circus.app import config as configuration
from circus.app.context import Context
from circus.db import embedded, migrations
from circus.db.bus import Bus
from circus.db.pool import init_connection
from circus.server.http.app import init_app
from tests.helpers.api import insert_keys
from tests.helpers.hosts import Network
from tests.helpers.repos import commit_files, git
from tests.helpers.suite import NIX_CONF_DIR, NIX_CONFIG, TEMPLATE, free_port

# Nix as the suite needs it, whatever the machine has (see tests/helpers/suite.py); its
# configuration directory is the suite's own, so /etc/nix is never read.
os.environ["NIX_CONFIG"] = NIX_CONFIG
os.environ["NIX_CONF_DIR"] = str(NIX_CONF_DIR)
os.environ["NIX_USER_CONF_FILES"] = str(NIX_CONF_DIR / "nix.conf")
os.environ.setdefault("GIT_AUTHOR_NAME", "Circus Tests")
os.environ.setdefault("GIT_AUTHOR_EMAIL", "tests@circus.invalid")
os.environ.setdefault("GIT_COMMITTER_NAME", "Circus Tests")
os.environ.setdefault("GIT_COMMITTER_EMAIL", "tests@circus.invalid")


def pytest_configure(config: pytest.Config) -> None:
    # A test that needs a missing tool fails; it never skips.
    missing = [tool for tool in ("nix", "nix-store", "git") if shutil.which(tool) is None]
    if missing:
        raise pytest.UsageError(f"missing tools for the test suite: {', '.join(missing)}")


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[embedded.EmbeddedPostgres]:
    server = embedded.EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "postgres")
    server.start()
    asyncio.run(_make_template(server))
    yield server
    server.stop("immediate")


async def _make_template(server: embedded.EmbeddedPostgres) -> None:
    conn = await asyncpg.connect(server.admin_url())
    await conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
    await conn.execute(f"CREATE DATABASE {TEMPLATE}")
    await conn.close()
    conn = await asyncpg.connect(server.admin_url(TEMPLATE))
    await migrations.up(conn)
    await conn.close()


@pytest.fixture
async def database_url(pg_server: embedded.EmbeddedPostgres) -> AsyncIterator[str]:
    """A fresh database with the schema, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_server.admin_url())
    await admin.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    await admin.close()
    yield pg_server.admin_url(name)
    admin = await asyncpg.connect(pg_server.admin_url())
    await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await admin.close()


@pytest.fixture
async def context(make_config: Callable[..., configuration.Config], pool: asyncpg.Pool,
                  database_url: str) -> AsyncIterator[Context]:
    bus = Bus(database_url)
    await bus.start()
    await insert_keys(pool)
    yield Context(config=make_config(), pool=pool, bus=bus, database_url=database_url)
    await bus.close()


@pytest.fixture
async def client(aiohttp_client: Any, context: Context) -> TestClient:
    return await aiohttp_client(await init_app(context))


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    # The server's codecs (jsonb as dicts), so rows read here look as they do there.
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=10,
                                     init=init_connection)
    yield pool
    await pool.close()


@pytest.fixture
def make_config(tmp_path: Path, database_url: str) -> Callable[..., configuration.Config]:
    """A Config on the test database with work dirs in tmp_path; overrides as a dict."""

    def make(overrides: dict | None = None) -> configuration.Config:
        data = {
            "state_dir": str(tmp_path / "state"),
            "database": {"url": database_url, "min_connections": 1, "max_connections": 10},
            "server": {"port": free_port()},
            "evaluator": {"work_dir": str(tmp_path / "eval"), "poll_interval": 60},
            "queue_runner": {"work_dir": str(tmp_path / "runner"), "poll_interval": 5,
                             "lease_seconds": 5},
            "gc": {"gc_roots_dir": str(tmp_path / "gcroots")},
        }
        return configuration.structure(_merge(data, overrides or {}))

    return make


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(
            out.get(key), dict) else value
    return out


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[[dict[str, str]], Path]:
    """A git repository with the given files committed; returns its path."""

    def make(files: dict[str, str], name: str = "repo") -> Path:
        repo = tmp_path / name
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        commit_files(repo, files, "initial")
        return repo

    return make


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    """Hosts for one test: network namespaces with their own sshd and Nix store
    (tests/helpers/hosts.py), all removed afterwards."""
    with Network(tmp_path / "hosts") as net:
        yield net
