"""Pagination: keyset pages (`before_id`) stay stable while builds are being added; offset
pages of large lists carry a total."""

from __future__ import annotations

import asyncio

import asyncpg
from aiohttp.test_utils import TestClient

from tests.helpers.api import seed_jobset, seed_project

INSERT_MANY = """
INSERT INTO builds (project_id, jobset_id, job, drv_path, system)
SELECT j.project_id, j.id, 'job' || g, '/nix/store/' || $2 || '-' || g || '.drv', 'x86_64-linux'
  FROM jobsets j, generate_series(1, $3::int) g WHERE j.id = $1
"""


async def test_keyset_pages_are_stable_under_concurrent_inserts(
        client: TestClient, pool: asyncpg.Pool) -> None:
    project = await seed_project(client)
    js = (await seed_jobset(client, project["id"]))["id"]
    await pool.execute(INSERT_MANY, js, "initial", 400)
    present = {r["id"] for r in await pool.fetch("SELECT id FROM builds")}
    stop = asyncio.Event()

    async def writer() -> int:
        rounds = 0
        while not stop.is_set():
            rounds += 1
            await pool.execute(INSERT_MANY, js, f"new{rounds}", 7)
            await asyncio.sleep(0)
        return rounds

    writing = asyncio.create_task(writer())
    seen: list[int] = []
    for query in ("", f"&project_id={project['id']}", f"&jobset_id={js}", "&status=queued"):
        seen.clear()
        cursor = ""
        while True:
            resp = await client.get(f"/api/v1/builds?limit=37{query}{cursor}")
            assert resp.status == 200, await resp.text()
            body = await resp.json()
            seen += [b["id"] for b in body["items"]]
            if body["next_before_id"] is None:
                break
            cursor = f"&before_id={body['next_before_id']}"
            # Give the writer a turn between pages, every page.
            await asyncio.sleep(0.01)
        assert len(seen) == len(set(seen)), f"an item came twice ({query})"
        assert present <= set(seen), f"{len(present - set(seen))} missing ({query})"
        assert seen == sorted(seen, reverse=True)
    stop.set()
    assert await writing > 0


async def test_offset_pages_and_totals(client: TestClient, pool: asyncpg.Pool) -> None:
    project = await seed_project(client)
    js = (await seed_jobset(client, project["id"]))["id"]
    await pool.execute(INSERT_MANY, js, "p", 120)
    body = await (await client.get("/api/v1/builds?limit=50&offset=100")).json()
    assert (len(body["items"]), body["total"], body["total_exact"]) == (20, 120, True)
    assert body["next_before_id"] is None
    first = await (await client.get("/api/v1/builds?limit=50")).json()
    assert first["next_before_id"] == first["items"][-1]["id"]
    for bad in ("limit=0", "offset=-1", "before_id=0", "before_id=x"):
        resp = await client.get(f"/api/v1/builds?{bad}")
        assert resp.status == 400 and (await resp.json())["error"].startswith(
            bad.split("=")[0])


async def test_a_big_projects_total_is_estimated_a_small_ones_counted(
        client: TestClient, pool: asyncpg.Pool) -> None:
    big = await seed_project(client, "big")
    small = await seed_project(client, "small")
    await pool.execute(INSERT_MANY, (await seed_jobset(client, big["id"]))["id"], "big", 12_000)
    await pool.execute(INSERT_MANY, (await seed_jobset(client, small["id"]))["id"], "s", 30)
    await pool.execute("ANALYZE builds")
    body = await (await client.get(f"/api/v1/builds?project_id={big['id']}&limit=5")).json()
    assert body["total_exact"] is False and 9_000 < body["total"] < 15_000
    assert len(body["items"]) == 5
    body = await (await client.get(f"/api/v1/builds?project_id={small['id']}")).json()
    assert (body["total"], body["total_exact"], len(body["items"])) == (30, True, 30)
