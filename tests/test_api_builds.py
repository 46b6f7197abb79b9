"""/api/v1 builds and evaluations: filters, detail, cancel, restart, trigger."""

from __future__ import annotations

import asyncio

import asyncpg
from aiohttp.test_utils import TestClient

from tests.helpers.api import (
    ADMIN,
    ROLE_KEYS,
    bearer,
    insert_build,
    seed_jobset,
    seed_project,
)

# The `context` and `client` fixtures.


async def _two_jobsets(client: TestClient, pool: asyncpg.Pool) -> dict[str, int]:
    alpha = await seed_project(client, "alpha")
    beta = await seed_project(client, "beta")
    a_main = await seed_jobset(client, alpha["id"], "main")
    b_main = await seed_jobset(client, beta["id"], "main")
    ids = {
        "a_ok": await insert_build(pool, a_main["id"], "hello", state="finished",
                                   buildstatus=0),
        "a_fail": await insert_build(pool, a_main["id"], "broken", state="finished",
                                     buildstatus=1),
        "a_queued": await insert_build(pool, a_main["id"], "later"),
        "b_running": await insert_build(pool, b_main["id"], "hello", state="running",
                                        system="aarch64-linux"),
    }
    return ids | {"alpha": alpha["id"], "beta": beta["id"], "a_main": a_main["id"],
                  "b_main": b_main["id"]}


async def _ids(client: TestClient, query: str) -> list[int]:
    resp = await client.get(f"/api/v1/builds?{query}")
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["total"] == len(body["items"])
    return [b["id"] for b in body["items"]]


async def test_build_filters(client: TestClient, pool: asyncpg.Pool) -> None:
    ids = await _two_jobsets(client, pool)
    everything = await _ids(client, "")
    assert everything == sorted(everything, reverse=True) and len(everything) == 4
    assert set(await _ids(client, f"project_id={ids['alpha']}")) == {
        ids["a_ok"], ids["a_fail"], ids["a_queued"]}
    assert await _ids(client, f"jobset_id={ids['b_main']}") == [ids["b_running"]]
    assert await _ids(client, "status=succeeded") == [ids["a_ok"]]
    assert await _ids(client, "status=0") == [ids["a_ok"]]
    assert await _ids(client, "status=failed") == [ids["a_fail"]]
    assert await _ids(client, "status=queued") == [ids["a_queued"]]
    assert await _ids(client, "status=running") == [ids["b_running"]]
    assert set(await _ids(client, "status=finished")) == {ids["a_ok"], ids["a_fail"]}
    assert set(await _ids(client, "job=hello")) == {ids["a_ok"], ids["b_running"]}
    assert await _ids(client, "system=aarch64-linux") == [ids["b_running"]]
    assert await _ids(client, f"project_id={ids['alpha']}&job=hello&status=succeeded") == [
        ids["a_ok"]]
    assert await _ids(client, f"project_id={ids['alpha']}&status=failed") == [ids["a_fail"]]
    assert await _ids(client, f"jobset_id={ids['a_main']}&status=running") == []
    resp = await client.get("/api/v1/projects/beta/builds")
    assert [b["id"] for b in (await resp.json())["items"]] == [ids["b_running"]]
    body = await (await client.get("/api/v1/builds?limit=2&offset=1")).json()
    assert (body["total"], len(body["items"]), body["limit"], body["offset"]) == (4, 2, 2, 1)
    item = body["items"][0]
    assert {"project", "jobset", "job", "system", "status", "drv_path"} <= set(item)
    for bad in ("status=bogus", "status=99", "project_id=abc", "jobset_id=-3"):
        resp = await client.get(f"/api/v1/builds?{bad}")
        assert resp.status == 400
        assert (await resp.json())["error"].startswith(bad.split("=")[0])


async def test_evaluation_filter_and_detail(client: TestClient, pool: asyncpg.Pool) -> None:
    ids = await _two_jobsets(client, pool)
    eval_id = await pool.fetchval(
        "INSERT INTO evaluations (jobset_id, status, commit_hash, inputs_hash) "
        "VALUES ($1, 'succeeded', 'abc123', 'h') RETURNING id", ids["a_main"])
    await pool.executemany("INSERT INTO evaluation_builds (evaluation_id, build_id) "
                           "VALUES ($1, $2)", [(eval_id, ids["a_ok"]), (eval_id, ids["a_fail"])])
    await pool.execute("INSERT INTO evaluation_errors VALUES ($1, 'bad', 'attribute missing')",
                       eval_id)
    await pool.execute("INSERT INTO evaluation_inputs (evaluation_id, name, type, revision) "
                       "VALUES ($1, 'src', 'git', 'abc123')", eval_id)
    assert set(await _ids(client, f"evaluation_id={eval_id}")) == {ids["a_ok"], ids["a_fail"]}
    assert await _ids(client, f"evaluation_id={eval_id}&status=failed") == [ids["a_fail"]]

    body = await (await client.get(f"/api/v1/evaluations/{eval_id}")).json()
    assert body["commit_hash"] == "abc123" and body["project"] == "alpha"
    assert body["errors"] == [{"job": "bad", "error_message": "attribute missing"}]
    assert body["inputs"][0]["revision"] == "abc123"
    assert (body["builds"]["total"], body["builds"]["succeeded"], body["builds"]["failed"]) == (
        2, 1, 1)
    listed = await (await client.get(f"/api/v1/evaluations?project_id={ids['alpha']}")).json()
    assert [e["id"] for e in listed["items"]] == [eval_id] and listed["total"] == 1
    listed = await (await client.get(f"/api/v1/evaluations?project_id={ids['beta']}")).json()
    assert listed["items"] == [] and listed["total"] == 0
    resp = await client.get("/api/v1/evaluations?status=done")
    assert resp.status == 400 and (await resp.json())["error"].startswith("status:")


async def test_build_detail(client: TestClient, pool: asyncpg.Pool) -> None:
    ids = await _two_jobsets(client, pool)
    await pool.execute("INSERT INTO build_outputs VALUES ($1, 'out', '/nix/store/x-hello')",
                       ids["a_ok"])
    await pool.execute("INSERT INTO build_dependencies VALUES ($1, $2)", ids["a_queued"],
                       ids["a_ok"])
    body = await (await client.get(f"/api/v1/builds/{ids['a_ok']}")).json()
    assert body["status"] == "succeeded" and body["project"] == "alpha"
    assert body["outputs"] == [{"name": "out", "path": "/nix/store/x-hello"}]
    assert {"products", "metrics", "steps", "dependencies"} <= set(body)
    body = await (await client.get(f"/api/v1/builds/{ids['a_queued']}")).json()
    assert [d["id"] for d in body["dependencies"]] == [ids["a_ok"]]


async def test_cancel(client: TestClient, pool: asyncpg.Pool, context) -> None:
    ids = await _two_jobsets(client, pool)
    dependent = await insert_build(pool, ids["a_main"], "needs-later")
    await pool.execute("INSERT INTO build_dependencies VALUES ($1, $2)", dependent,
                       ids["a_queued"])
    with context.bus.subscribe("circus_build_changed") as sub:
        resp = await client.post(f"/api/v1/builds/{ids['a_queued']}/cancel",
                                 headers=bearer(ROLE_KEYS["cancel-build"]))
        assert resp.status == 200
        body = await resp.json()
        assert (body["state"], body["buildstatus"], body["status"]) == ("finished", 4,
                                                                        "cancelled")
        assert ("circus_build_changed", str(ids["a_queued"])) in await _drain(sub, 2)
    row = await pool.fetchrow("SELECT state, buildstatus, error_message FROM builds "
                              "WHERE id = $1", dependent)
    assert (row["state"], row["buildstatus"]) == ("finished", 2)
    assert str(ids["a_queued"]) in row["error_message"]

    resp = await client.post(f"/api/v1/builds/{ids['b_running']}/cancel", headers=ADMIN)
    assert resp.status == 200
    resp = await client.post(f"/api/v1/builds/{ids['a_ok']}/cancel", headers=ADMIN)
    assert resp.status == 409 and "succeeded" in (await resp.json())["error"]
    assert await pool.fetchval("SELECT buildstatus FROM builds WHERE id = $1", ids["a_ok"]) == 0
    resp = await client.post(f"/api/v1/builds/{ids['a_fail']}/cancel",
                             headers=bearer(ROLE_KEYS["restart-jobs"]))
    assert resp.status == 403
    assert (await client.post("/api/v1/builds/999/cancel", headers=ADMIN)).status == 404


async def _drain(sub, at_least: int) -> list[tuple[str, str]]:
    got: list[tuple[str, str]] = []
    while len(got) < at_least:
        more = await sub.wait(timeout=10)
        assert more, f"only {got} arrived"
        got.extend(more)
    return got


async def test_restart(client: TestClient, pool: asyncpg.Pool, context) -> None:
    ids = await _two_jobsets(client, pool)
    build = ids["a_fail"]
    await pool.execute("UPDATE builds SET error_message = 'boom', runner_id = 'r1', "
                       "attempts = 2 WHERE id = $1", build)
    await pool.execute("INSERT INTO build_outputs VALUES ($1, 'out', '/nix/store/y')", build)
    await pool.execute("INSERT INTO build_steps (build_id, step_nr, drv_path) "
                       "VALUES ($1, 1, '/nix/store/y.drv')", build)
    await pool.execute("INSERT INTO build_metrics VALUES ($1, 'size', 3, 'B')", build)
    await pool.execute("INSERT INTO build_log_chunks VALUES ($1, 0, 'old\n')", build)
    with context.bus.subscribe("circus_builds_queued", "circus_build_changed") as sub:
        resp = await client.post(f"/api/v1/builds/{build}/restart",
                                 headers=bearer(ROLE_KEYS["restart-jobs"]))
        assert resp.status == 200
        got = await _drain(sub, 2)
    assert {c for c, _ in got} == {"circus_builds_queued", "circus_build_changed"}
    row = await pool.fetchrow("SELECT * FROM builds WHERE id = $1", build)
    assert (row["state"], row["buildstatus"], row["runner_id"], row["error_message"]) == (
        "queued", None, None, None)
    for table in ("build_outputs", "build_steps", "build_metrics", "build_log_chunks"):
        assert await pool.fetchval(f"SELECT count(*) FROM {table} WHERE build_id = $1",
                                   build) == 0, table
    assert (await client.get(f"/api/v1/builds/{build}/log")).status == 200
    assert await (await client.get(f"/api/v1/builds/{build}/log")).text() == ""
    resp = await client.post(f"/api/v1/builds/{build}/restart", headers=ADMIN)
    assert resp.status == 409
    resp = await client.post(f"/api/v1/builds/{ids['b_running']}/restart", headers=ADMIN)
    assert resp.status == 409


async def test_trigger_notifies_the_evaluator(client: TestClient, pool: asyncpg.Pool,
                                              database_url: str) -> None:
    project = await seed_project(client)
    jobset = await seed_jobset(client, project["id"])
    listener = await asyncpg.connect(database_url)
    heard: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("circus_eval_requested", lambda *a: heard.put_nowait(a[3]))
    try:
        resp = await client.post("/api/v1/evaluations/trigger",
                                 headers=bearer(ROLE_KEYS["eval-jobset"]),
                                 json={"jobset_id": jobset["id"]})
        assert resp.status == 202
        body = await resp.json()
        assert body["jobset_id"] == jobset["id"] and body["trigger_time"]
        assert await asyncio.wait_for(heard.get(), 10) == str(jobset["id"])
        assert await pool.fetchval("SELECT trigger_time FROM jobsets WHERE id = $1",
                                   jobset["id"]) is not None
        resp = await client.post("/api/v1/evaluations/trigger", headers=ADMIN,
                                 json={"project": "demo", "jobset": "main"})
        assert resp.status == 202
        assert await asyncio.wait_for(heard.get(), 10) == str(jobset["id"])
    finally:
        await listener.close()
    resp = await client.post("/api/v1/evaluations/trigger", headers=ADMIN,
                             json={"jobset_id": 4242})
    assert resp.status == 404
    resp = await client.post("/api/v1/evaluations/trigger", headers=ADMIN,
                             json={"jobset_id": "one"})
    assert resp.status == 400 and (await resp.json())["error"].startswith("jobset_id:")
    resp = await client.post("/api/v1/evaluations/trigger", headers=ADMIN, json={})
    assert resp.status == 400
    resp = await client.post("/api/v1/evaluations/trigger",
                             headers=bearer(ROLE_KEYS["cancel-build"]),
                             json={"jobset_id": jobset["id"]})
    assert resp.status == 403
