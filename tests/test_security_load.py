"""Issue 10, hole 9: the load an anonymous visitor can cause is bounded, and each bound
answers with a clear 4xx/503. Hydra's /search and /prometheus are counted in statements
the real PostgreSQL runs; statement_timeout and request_timeout against a real
`circus run`; SSE and NAR streams capped per server and per client address."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from circus.app.config import Config
from circus.app.context import Context
from circus.db import pool as db_pool
from circus.db.bus import Bus
from circus.db.queries import Q
from circus.server.api import search
from circus.server.http.app import init_app
from tests.helpers.api import insert_build, insert_keys, seed_jobset, seed_project
from tests.helpers.e2e import Circus

SSE = {"Accept": "text/event-stream"}


class Statements:
    """Every statement the server's pool sends to PostgreSQL (asyncpg's query logger)."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    async def init(self, conn: asyncpg.Connection) -> None:
        conn.add_query_logger(lambda logged: self.texts.append(logged.query))

    def since(self, mark: int) -> list[str]:
        """Circus's named queries sent, not asyncpg's own look-ups of column types."""
        named = set(Q.values())
        return [t for t in self.texts[mark:] if t in named]


@pytest.fixture
async def counted(make_config: Callable[..., Config], database_url: str
                  ) -> AsyncIterator[tuple[Context, Statements]]:
    statements = Statements()
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=10,
                                     init=statements.init)
    bus = Bus(database_url)
    await bus.start()
    await insert_keys(pool)
    yield Context(config=make_config({"server": {"max_streams": 3,
                                                 "max_streams_per_client": 2}}),
                  pool=pool, bus=bus, database_url=database_url), statements
    await bus.close()
    await pool.close()


@pytest.fixture
async def app_client(aiohttp_client: Any, counted: tuple[Context, Statements]) -> TestClient:
    return await aiohttp_client(await init_app(counted[0]))


async def _many_matches(client: TestClient, pool: asyncpg.Pool, n: int) -> None:
    """n projects, each with a jobset and a successful build, all matching `load`."""
    for i in range(n):
        project = await seed_project(client, f"load{i:03d}")
        jobset = await seed_jobset(client, project["id"], f"loadset{i:03d}")
        await insert_build(pool, jobset["id"], f"loadjob{i:03d}", state="finished",
                           buildstatus=0)


async def test_hydra_search_is_a_fixed_number_of_bounded_statements(
        app_client: TestClient, counted: tuple[Context, Statements]) -> None:
    ctx, statements = counted
    await _many_matches(app_client, ctx.pool, 60)
    mark = len(statements.texts)
    resp = await app_client.get("/search?query=load", headers={"Accept": "application/json"})
    assert resp.status == 200, await resp.text()
    found = await resp.json()
    sent = statements.since(mark)
    # Before: one statement per project and two per jobset (60 + 120 + ...).
    assert len(sent) <= 12, f"{len(sent)} statements for one search"
    assert len(found["projects"]) == len(found["jobsets"]) == search.HYDRA_LIMIT
    assert len(found["builds"]) == search.HYDRA_LIMIT
    assert found["projects"][0]["name"] == "load000"
    assert found["jobsets"][0]["name"] == "loadset000"


async def test_hydra_and_api_search_refuse_short_queries(app_client: TestClient) -> None:
    resp = await app_client.get("/search?query=lo", headers={"Accept": "application/json"})
    assert resp.status == 400
    assert (await resp.json())["error"] == "Query must be 3 to 200 characters long."
    resp = await app_client.get("/api/v1/search?q=lo")
    assert resp.status == 400
    assert (await resp.json())["error"].startswith("q: must be 3 to 200 characters")


async def test_prometheus_scrapes_share_one_aggregation(
        app_client: TestClient, counted: tuple[Context, Statements]) -> None:
    ctx, statements = counted
    project = await seed_project(app_client, "prom")
    jobset = await seed_jobset(app_client, project["id"])
    await insert_build(ctx.pool, jobset["id"], "ok", state="finished", buildstatus=0)
    mark = len(statements.texts)
    burst = await asyncio.gather(*(app_client.get("/prometheus") for _ in range(10)))
    later = [await app_client.get("/prometheus") for _ in range(10)]
    bodies = {await r.text() for r in [*burst, *later]}
    assert {r.status for r in [*burst, *later]} == {200}
    assert len(bodies) == 1 and 'circus_builds_total{status="all"} 1' in bodies.pop()
    full_scans = [t for t in statements.since(mark) if t == Q.builds_counted]
    # Before: one aggregation of the whole builds table per scrape (20).
    assert len(full_scans) == 1


async def test_offset_is_bounded_with_a_400_naming_it(app_client: TestClient) -> None:
    for path in ("/api/v1/builds", "/api/v1/projects", "/api/v1/evaluations"):
        resp = await app_client.get(f"{path}?offset={2**63 - 1}")
        assert resp.status == 400, (path, await resp.text())
        assert (await resp.json())["error"] == (
            f"offset: must be between 0 and 10000000, got {2**63 - 1}")
    resp = await app_client.get(f"/builds?offset={2**63 - 1}")
    assert resp.status == 400
    assert "offset" in await resp.text()


async def _open_stream(client: TestClient) -> Any:
    resp = await client.get("/dashboard/events", headers=SSE)
    assert resp.status == 200, await resp.text()
    line = await asyncio.wait_for(resp.content.readline(), 30)
    assert line.startswith(b"event: ready"), line
    return resp


async def test_streams_are_capped_per_client_with_429(app_client: TestClient) -> None:
    held = [await _open_stream(app_client) for _ in range(2)]
    resp = await app_client.get("/dashboard/events", headers=SSE)
    assert resp.status == 429
    assert resp.headers["Retry-After"].isdigit()
    assert "server.max_streams_per_client" in (await resp.json())["error"]
    held.pop().close()
    # The slot is given back when the stream ends.
    for _ in range(50):
        resp = await app_client.get("/dashboard/events", headers=SSE)
        if resp.status == 200:
            break
        await asyncio.sleep(0.05)
    assert resp.status == 200
    resp.close()
    for r in held:
        r.close()


async def test_streams_are_capped_per_server_with_503_nars_too(
        aiohttp_client: Any, counted: tuple[Context, Statements], tmp_path: Path) -> None:
    ctx, _ = counted
    ctx.config.server.max_streams_per_client = 10
    client = await aiohttp_client(await init_app(ctx))
    nar = await _catalogued_path(ctx.pool, tmp_path)
    assert (await client.get(nar)).status == 200
    held = [await _open_stream(client) for _ in range(3)]
    for path in ("/dashboard/events", nar):
        resp = await client.get(path, headers=SSE)
        assert resp.status == 503, path
        assert resp.headers["Retry-After"].isdigit()
        assert "server.max_streams" in (await resp.json())["error"]
    for r in held:
        r.close()


def _add_to_store(tmp_path: Path) -> tuple[str, str, int]:
    """A real store path: (path, nar hash, nar size)."""
    source = tmp_path / "payload.txt"
    source.write_text("served as a NAR\n")
    path = subprocess.run(["nix-store", "--add", str(source)], check=True,
                          capture_output=True, text=True).stdout.strip()
    info = [subprocess.run(["nix-store", "--query", flag, path], check=True,
                           capture_output=True, text=True).stdout.strip()
            for flag in ("--hash", "--size")]
    return path, info[0], int(info[1])


async def _catalogued_path(pool: asyncpg.Pool, tmp_path: Path) -> str:
    """A store path in the cache's catalogue; its NAR URL."""
    path, nar_hash, nar_size = _add_to_store(tmp_path)
    hash_part = Path(path).name.split("-", 1)[0]
    await pool.execute("INSERT INTO cache_paths (hash_part, store_path, nar_hash, nar_size) "
                       "VALUES ($1, $2, $3, $4)", hash_part, path, nar_hash, nar_size)
    return f"/nix-cache/nar/{hash_part}.nar"


async def test_an_sse_stream_outlives_the_request_timeout(
        aiohttp_client: Any, counted: tuple[Context, Statements]) -> None:
    ctx, _ = counted
    ctx.config.server.request_timeout = 1
    client = await aiohttp_client(await init_app(ctx))
    stream = await _open_stream(client)
    await asyncio.sleep(1.5)  # past the request timeout: the stream is exempt
    await ctx.pool.execute("SELECT pg_notify('circus_build_changed', '42')")
    seen = b""
    while b'"builds": [42]' not in seen:
        seen += await asyncio.wait_for(stream.content.readline(), 30)
    assert b"event: change" in seen
    stream.close()


async def _blocked_projects(database_url: str) -> asyncpg.Connection:
    """Another session holding the projects table: reads of it wait."""
    conn = await asyncpg.connect(database_url)
    await conn.execute("BEGIN; LOCK TABLE projects IN ACCESS EXCLUSIVE MODE")
    return conn


async def test_statement_timeout_cancels_a_slow_statement_with_503(
        tmp_path: Path, database_url: str) -> None:
    api = Circus(tmp_path, database_url, "server", "st-timeout",
                 settings={"CIRCUS_DATABASE__STATEMENT_TIMEOUT": "1"}).start()
    lock = await _blocked_projects(database_url)
    try:
        status, body = await asyncio.to_thread(api.request, "GET", "/api/v1/projects")
        assert status == 503, body
        assert "statement timeout" in body["error"]
        assert "database.statement_timeout" in body["error"]
    finally:
        await lock.close()
        api.stop()


async def test_request_timeout_answers_503(tmp_path: Path, database_url: str) -> None:
    api = Circus(tmp_path, database_url, "server", "rq-timeout",
                 settings={"CIRCUS_DATABASE__STATEMENT_TIMEOUT": "0",
                           "CIRCUS_SERVER__REQUEST_TIMEOUT": "1"}).start()
    lock = await _blocked_projects(database_url)
    try:
        status, body = await asyncio.to_thread(api.request, "GET", "/api/v1/projects")
        assert status == 503, body
        assert body == {"error": "the request took longer than 1 s (server.request_timeout)"}
        assert '"request timed out"' in api.log_text()
    finally:
        await lock.close()
        api.stop()


async def test_maintenance_paths_lift_the_statement_timeout(make_config: Callable[..., Config],
                                                            database_url: str) -> None:
    config = make_config({"database": {"statement_timeout": 7}})
    pool = await db_pool.create_pool(database_url, config)
    maintenance = await db_pool.create_pool(database_url, config, maintenance=True)
    try:
        assert await pool.fetchval("SHOW statement_timeout") == "7s"
        assert await maintenance.fetchval("SHOW statement_timeout") == "0"
        async with pool.acquire() as conn, conn.transaction():
            # Evaluation ingest: its transaction only.
            await conn.execute(Q.ingest_tune)
            assert await conn.fetchval("SHOW statement_timeout") == "0"
        assert await pool.fetchval("SHOW statement_timeout") == "7s"
    finally:
        await pool.close()
        await maintenance.close()
