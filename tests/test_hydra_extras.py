"""Hydra's queue and statistics endpoints and its build and evaluation actions, on rows
a test writes (the scripted session in test_hydra.py covers the rest)."""

from __future__ import annotations

import asyncpg
from aiohttp.test_utils import TestClient

from tests.helpers.api import ADMIN, READONLY_KEY, bearer, insert_build, seed_jobset, seed_project

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


async def test_latest_builds_report_timeouts_and_limits_with_hydras_numbers(
        client: TestClient, pool: asyncpg.Pool) -> None:
    js = await _jobset(client)
    ids = {}
    for job, code in (("timed-out", 7), ("log-limit", 10), ("output-limit", 11)):
        ids[job] = await insert_build(pool, js, job, state="finished", buildstatus=code)
    await pool.execute("UPDATE builds SET finished_at = now(), started_at = now()")
    latest = await (await client.get("/api/latestbuilds?nr=10", headers=JSON)).json()
    assert {b["job"]: b["buildstatus"] for b in latest} == {
        "timed-out": 7, "log-limit": 10, "output-limit": 11}
    assert {tuple(sorted(b)) for b in latest} == {tuple(sorted(
        ("id", "project", "jobset", "job", "system", "nixname", "finished", "timestamp",
         "buildstatus")))}


async def test_every_action_answers_get_post_and_put(client: TestClient,
                                                     pool: asyncpg.Pool) -> None:
    js = await _jobset(client)
    build = await insert_build(pool, js, "queued")
    ev = await pool.fetchval("INSERT INTO evaluations (jobset_id, commit_hash, inputs_hash, "
                             "status) VALUES ($1, 'c', 'h', 'succeeded') RETURNING id", js)
    await pool.execute("INSERT INTO evaluation_builds (evaluation_id, build_id) "
                       "VALUES ($1, $2)", ev, build)
    for method in ("GET", "POST", "PUT"):
        for path, back in ((f"/eval/{ev}/bump", f"/eval/{ev}"),
                           (f"/build/{build}/bump", f"/build/{build}"),
                           (f"/build/{build}/keep/1", f"/build/{build}")):
            resp = await client.request(method, path, headers={**JSON, **ADMIN},
                                        allow_redirects=False)
            assert resp.status == 302, (method, path, await resp.text())
            assert resp.headers["Location"].endswith(back)
    assert await pool.fetchval("SELECT keep FROM builds WHERE id = $1", build) is True
    resp = await client.put(f"/build/{build}/keep/2", headers={**JSON, **ADMIN})
    assert resp.status == 400 and "0 or 1" in (await resp.json())["error"]
    # The permission is the same as POST's: a read-only key may not.
    resp = await client.put(f"/build/{build}/cancel",
                            headers={**JSON, **bearer(READONLY_KEY)},
                            allow_redirects=False)
    assert resp.status == 403
    assert await pool.fetchval("SELECT state FROM builds WHERE id = $1", build) == "queued"


async def test_a_custom_channel_redirects_to_its_product(client: TestClient,
                                                         pool: asyncpg.Pool) -> None:
    js = await _jobset(client)
    build = await insert_build(pool, js, "nixpkgs", state="finished", buildstatus=0)
    await pool.execute("INSERT INTO build_products (build_id, product_nr, type, name, path) "
                       "VALUES ($1, 1, 'channel', 'nixexprs.tar.xz', '/nix/store/x-ch')", build)
    base = "/channel/custom/hx/main/nixpkgs"
    resp = await client.get(f"{base}/nixexprs.tar.xz", allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"].endswith(f"/build/{build}/download/1/nixexprs.tar.xz")
    resp = await client.get(f"{base}/binary-cache-url")
    assert resp.status == 200 and await resp.text() == str(client.make_url("/"))
    resp = await client.get(f"{base}/other.tar.xz", headers=JSON)
    assert resp.status == 404
    resp = await client.get("/channel/custom/hx/main/nothing/nixexprs.tar.xz", headers=JSON)
    assert resp.status == 404 and (await resp.json())["error"] == (
        "Channel nothing either doesn't exist or was never built successfully.")
