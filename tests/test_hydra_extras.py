"""Hydra's queue and statistics endpoints and its build and evaluation actions, on rows
a test writes (the scripted session in test_hydra.py covers the rest)."""

from __future__ import annotations

import asyncpg
from aiohttp.test_utils import TestClient

from tests.helpers.api import ADMIN, insert_build, seed_jobset, seed_project

JSON = {"Accept": "application/json"}


async def _jobset(client: TestClient) -> int:
    project = await seed_project(client, "hx")
    return (await seed_jobset(client, project["id"]))["id"]


async def test_latest_builds_queue_and_counts(client: TestClient, pool: asyncpg.Pool) -> None:
    js = await _jobset(client)
    done = await insert_build(pool, js, "done", state="finished", buildstatus=0,
                              finished_at=None)
    await pool.execute("UPDATE builds SET finished_at = now(), started_at = now() "
                       "WHERE id = $1", done)
    waiting = await insert_build(pool, js, "waiting")
    latest = await (await client.get("/api/latestbuilds?nr=5", headers=JSON)).json()
    assert [(b["id"], b["finished"], b["buildstatus"]) for b in latest] == [(done, 1, 0)]
    queue = await (await client.get("/api/queue", headers=JSON)).json()
    assert [(b["id"], b["finished"]) for b in queue] == [(waiting, 0)]
    counts = await (await client.get("/api/nrbuilds?period=hour&nr=3", headers=JSON)).json()
    assert len(counts) == 3 and sum(counts) == 1
    resp = await client.get("/api/nrbuilds?period=year", headers=JSON)
    assert resp.status == 400 and "period" in (await resp.json())["error"]


async def test_bump_and_evaluation_actions(client: TestClient, pool: asyncpg.Pool) -> None:
    js = await _jobset(client)
    queued = await insert_build(pool, js, "queued")
    failed = await insert_build(pool, js, "failed", state="finished", buildstatus=1)
    aborted = await insert_build(pool, js, "aborted", state="finished", buildstatus=3)
    resp = await client.post(f"/build/{queued}/bump", headers={**JSON, **ADMIN},
                             allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"].endswith(f"/build/{queued}")
    assert await pool.fetchval("SELECT global_priority FROM builds WHERE id = $1", queued) > 0

    ev = await pool.fetchval("INSERT INTO evaluations (jobset_id, commit_hash, inputs_hash, "
                             "status) VALUES ($1, 'c', 'h', 'succeeded') RETURNING id", js)
    await pool.execute("INSERT INTO evaluation_builds (evaluation_id, build_id) "
                       "SELECT $1, unnest($2::bigint[])", ev, [queued, failed, aborted])
    for action, build, state in (("restart-failed", failed, "queued"),
                                 ("restart-aborted", aborted, "queued"),
                                 ("cancel", queued, "finished")):
        resp = await client.post(f"/eval/{ev}/{action}", headers={**JSON, **ADMIN},
                                 allow_redirects=False)
        assert resp.status == 302 and resp.headers["Location"].endswith(f"/eval/{ev}")
        assert await pool.fetchval("SELECT state FROM builds WHERE id = $1", build) == state
    # Cancel finished every queued build of the evaluation, the restarted ones too.
    assert {r[0] for r in await pool.fetch(
        "SELECT buildstatus FROM builds WHERE id = ANY($1::bigint[])",
        [queued, failed, aborted])} == {4}
