"""Migrations, named queries, declarative configuration and the bus, on real PostgreSQL."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest

from circus.app import config as configuration
from circus.app.paths import MIGRATIONS_DIR, QUERIES_DIR
from circus.db import bus as busmod
from circus.db import embedded, migrations, queries
from circus.services import declarative


@pytest.fixture
async def empty_db(pg_server: embedded.EmbeddedPostgres):
    name = f"e_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(pg_server.admin_url())
    await admin.execute(f"CREATE DATABASE {name}")
    conn = await asyncpg.connect(pg_server.admin_url(name))
    yield conn
    await conn.close()
    await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    await admin.close()


async def test_migrations_apply_once_and_report_status(empty_db: asyncpg.Connection,
                                                       tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, folder)
    applied = await migrations.up(empty_db, folder)
    assert [m.version for m in applied] == [m.version for m in migrations.discover(folder)]
    assert await migrations.up(empty_db, folder) == []
    assert await empty_db.fetchval("SELECT count(*) FROM projects") == 0
    states = await migrations.status(empty_db, folder)
    assert all(s.applied and s.checksum_ok for s in states)
    assert await migrations.validate(empty_db, folder) == []


async def test_validate_reports_an_edited_migration(empty_db: asyncpg.Connection,
                                                    tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, folder)
    await migrations.up(empty_db, folder)
    first = sorted(folder.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    problems = await migrations.validate(empty_db, folder)
    assert problems == [f"{first.name}: edited after it was applied (checksum differs)"]
    with pytest.raises(migrations.MigrationError):
        await migrations.up(empty_db, folder)


async def test_new_migration_is_pending_then_applied(empty_db: asyncpg.Connection,
                                                     tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, folder)
    await migrations.up(empty_db, folder)
    path = migrations.create("add_widgets", folder)
    path.write_text("CREATE TABLE widgets (id int);\n")
    assert [s.applied for s in await migrations.status(empty_db, folder)][-1] is False
    assert [m.name for m in await migrations.up(empty_db, folder)] == ["add_widgets"]
    assert await empty_db.fetchval("SELECT count(*) FROM widgets") == 0


async def test_concurrent_migrators_apply_each_migration_once(pg_server, tmp_path: Path) -> None:
    name = f"c_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(pg_server.admin_url())
    await admin.execute(f"CREATE DATABASE {name}")
    conns = [await asyncpg.connect(pg_server.admin_url(name)) for _ in range(3)]
    results = await asyncio.gather(*(migrations.up(c) for c in conns))
    assert sorted(len(r) for r in results) == [0, 0, len(migrations.discover())]
    for c in conns:
        await c.close()
    await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    await admin.close()


def test_migrate_cli_status_and_validate(database_url: str, tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "CIRCUS_DATABASE__URL": database_url}
    status = subprocess.run([sys.executable, "-m", "circus.cli", "migrate", "status"],
                            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    assert "0001_initial.sql\tapplied" in status.stdout
    valid = subprocess.run([sys.executable, "-m", "circus.cli", "migrate", "validate"],
                           env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert valid.returncode == 0 and "match" in valid.stdout


def test_every_named_query_is_unique_and_nonempty() -> None:
    loaded = queries.load(QUERIES_DIR)
    assert loaded and all(sql.strip() for sql in loaded.values())
    with pytest.raises(ValueError, match="defined twice"):
        bad = QUERIES_DIR
        text = (bad / "declarative.sql").read_text()
        queries.parse(text, "x")  # parses fine alone
        folder = Path(__file__).parent / "_dup_queries"
        folder.mkdir(exist_ok=True)
        try:
            (folder / "a.sql").write_text("-- name: same\nSELECT 1;\n")
            (folder / "b.sql").write_text("-- name: same\nSELECT 2;\n")
            queries.load(folder)
        finally:
            shutil.rmtree(folder)


DECLARED = """
[[declarative.api_keys]]
name = "admin"
key = "circus_test_admin"
role = "admin"

[[declarative.projects]]
name = "demo"
repository_url = "https://example.org/demo.git"
description = "a demo"

[[declarative.projects.jobsets]]
name = "main"
flake = false
nix_expression = "release.nix"
branch = "trunk"
check_interval = 300
inputs = [{ name = "greeting", type = "string", value = "hi" }]
"""


async def _snapshot(pool: asyncpg.Pool) -> list:
    async with pool.acquire() as conn:
        return [
            [tuple(r) for r in await conn.fetch(f"SELECT * FROM {table} ORDER BY 1")]
            for table in ("projects", "jobsets", "jobset_inputs", "api_keys")
        ]


async def test_declarative_is_applied_idempotently(pool: asyncpg.Pool) -> None:
    import tomllib

    declared = configuration.structure(tomllib.loads(DECLARED)).declarative
    await declarative.apply(pool, declared)
    first = await _snapshot(pool)
    await declarative.apply(pool, declared)
    assert await _snapshot(pool) == first
    projects, jobsets, inputs, keys = first
    assert len(projects) == len(jobsets) == len(inputs) == len(keys) == 1
    row = await pool.fetchrow("SELECT nix_expression, flake, branch, check_interval FROM jobsets")
    assert tuple(row) == ("release.nix", False, "trunk", 300)
    assert await pool.fetchval("SELECT role FROM api_keys WHERE key_hash = "
                               "encode(sha256('circus_test_admin'::bytea), 'hex')") == "admin"
    # A key removed from the file stops working; an input removed disappears.
    declared.api_keys.clear()
    declared.projects[0].jobsets[0].inputs.clear()
    await declarative.apply(pool, declared)
    assert await pool.fetchval("SELECT count(*) FROM api_keys") == 0
    assert await pool.fetchval("SELECT count(*) FROM jobset_inputs") == 0


async def test_notify_in_a_transaction_reaches_the_bus_only_on_commit(database_url: str) -> None:
    bus = busmod.Bus(database_url)
    await bus.start()
    conn = await asyncpg.connect(database_url)
    try:
        with bus.subscribe(busmod.BUILDS_QUEUED) as sub:
            tx = conn.transaction()
            await tx.start()
            await conn.execute("SELECT pg_notify($1, '7')", busmod.BUILDS_QUEUED)
            await tx.rollback()
            assert await sub.wait(timeout=0.5) == []
            async with conn.transaction():
                await conn.execute("SELECT pg_notify($1, '8')", busmod.BUILDS_QUEUED)
            assert await sub.wait(timeout=5) == [(busmod.BUILDS_QUEUED, "8")]
    finally:
        await conn.close()
        await bus.close()


async def test_bus_survives_a_postgresql_restart(tmp_path: Path) -> None:
    server = embedded.EmbeddedPostgres(tmp_path / "pg", port=5499)
    server.start()
    bus = busmod.Bus(server.url)
    await bus.start()
    try:
        with bus.subscribe(busmod.BUILD_CHANGED) as sub:
            await asyncio.to_thread(server.stop, "immediate")
            await asyncio.to_thread(server.start)
            events = await sub.wait(timeout=60)
            assert (busmod.RECONNECTED, "") in events
            await asyncio.wait_for(bus.connected.wait(), 30)
            conn = await asyncpg.connect(server.url)
            await conn.execute("SELECT pg_notify($1, '42')", busmod.BUILD_CHANGED)
            await conn.close()
            assert await sub.wait(timeout=10) == [(busmod.BUILD_CHANGED, "42")]
    finally:
        await bus.close()
        server.stop("immediate")


async def test_deleting_a_project_removes_its_build_links(pool: asyncpg.Pool) -> None:
    """Links have no per-row foreign keys (ingest speed); a trigger removes them instead."""
    async with pool.acquire() as conn:
        pid = await conn.fetchval(
            "INSERT INTO projects (name, repository_url) VALUES ('p', 'https://x') RETURNING id")
        jid = await conn.fetchval(
            "INSERT INTO jobsets (project_id, name) VALUES ($1, 'j') RETURNING id", pid)
        a, b = [await conn.fetchval(
            "INSERT INTO builds (jobset_id, project_id, job, drv_path, system) "
            "VALUES ($1, $2, $3, $4, 'x86_64-linux') RETURNING id", jid, pid, job, f"/d/{job}")
            for job in ("a", "b")]
        eid = await conn.fetchval(
            "INSERT INTO evaluations (jobset_id, commit_hash, inputs_hash) "
            "VALUES ($1, 'c', 'h') RETURNING id", jid)
        await conn.execute("INSERT INTO evaluation_builds VALUES ($1, $2), ($1, $3)", eid, a, b)
        await conn.execute("INSERT INTO build_dependencies VALUES ($1, $2)", b, a)
        await conn.execute("INSERT INTO aggregate_constituents VALUES ($1, $2)", b, a)
        await conn.execute("DELETE FROM projects WHERE id = $1", pid)
        for table in ("builds", "evaluation_builds", "build_dependencies",
                      "aggregate_constituents"):
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0, table
