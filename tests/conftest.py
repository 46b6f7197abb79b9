"""Shared fixtures: a real PostgreSQL (the embedded wheel) started once per run, a
template database with the migrations applied, and a fresh database per test made from
it; Nix settings for an offline machine; git repositories in tmp dirs.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from circus.app import config as configuration
from circus.db import embedded, migrations

# Nix as the suite needs it, whatever the machine has: single-user as root with no build
# users (Debian's nix-bin creates no nixbld group), no sandbox (it has no /bin/sh), no
# default substituter (offline: every call would retry cache.nixos.org for seconds).
# Its configuration directory is the suite's own, so /etc/nix is never read.
NIX_CONFIG = ("experimental-features = nix-command flakes\nsubstituters =\nsandbox = false\n"
              "build-users-group =\n")
os.environ["NIX_CONFIG"] = NIX_CONFIG
_NIX_CONF_DIR = Path(__file__).resolve().parent / "data" / "nix-conf"
os.environ["NIX_CONF_DIR"] = str(_NIX_CONF_DIR)
os.environ["NIX_USER_CONF_FILES"] = str(_NIX_CONF_DIR / "nix.conf")
os.environ.setdefault("GIT_AUTHOR_NAME", "Circus Tests")
os.environ.setdefault("GIT_AUTHOR_EMAIL", "tests@circus.invalid")
os.environ.setdefault("GIT_COMMITTER_NAME", "Circus Tests")
os.environ.setdefault("GIT_COMMITTER_EMAIL", "tests@circus.invalid")

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
TEMPLATE = "circus_template"
OUTPUT_DIR = Path(os.environ.get("CIRCUS_TEST_OUTPUT", ROOT / "test-output"))


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
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=10)
    yield pool
    await pool.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


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


def commit_files(repo: Path, files: dict[str, str], message: str) -> str:
    for rel, text in files.items():
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def circus_command() -> list[str]:
    return [sys.executable, "-m", "circus.cli"]
