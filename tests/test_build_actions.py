"""A build action means the same on every front end (circus/services/build_actions): the
cancel of a build with a queued dependent, asked through /api/v1, Hydra's
`/build/{id}/cancel` and the dashboard's form, leaves the same rows behind; and a refusal
keeps its wording per front end (the API's 409 text, Hydra's own sentence)."""

from __future__ import annotations

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from tests.helpers.api import ADMIN, ADMIN_KEY, insert_build, seed_jobset, seed_project
from tests.helpers.dashboard import login

JSON = {"Accept": "application/json"}


async def _api(client: TestClient, build: int) -> int:
    return (await client.post(f"/api/v1/builds/{build}/cancel", headers=ADMIN)).status


async def _hydra(client: TestClient, build: int) -> int:
    resp = await client.post(f"/build/{build}/cancel", headers={**JSON, **ADMIN},
                             allow_redirects=False)
    return resp.status


async def _dashboard(client: TestClient, build: int) -> int:
    token = await login(client, ADMIN_KEY)
    resp = await client.post(f"/dashboard/build/{build}/cancel", data={"csrf_token": token},
                             allow_redirects=False)
    return resp.status


@pytest.mark.parametrize(("front_end", "answer"), [(_api, 200), (_hydra, 302),
                                                   (_dashboard, 303)])
async def test_cancel_fails_the_dependents_alike(client: TestClient, pool: asyncpg.Pool,
                                                 front_end, answer: int) -> None:
    project = await seed_project(client, "acts")
    jobset = (await seed_jobset(client, project["id"]))["id"]
    build = await insert_build(pool, jobset, "lib")
    direct = await insert_build(pool, jobset, "app")
    indirect = await insert_build(pool, jobset, "bundle")
    await pool.execute("INSERT INTO build_dependencies VALUES ($1, $2), ($3, $1)",
                       direct, build, indirect)

    assert await front_end(client, build) == answer

    rows = await pool.fetch("SELECT id, state, buildstatus, error_message FROM builds"
                            " WHERE id = ANY($1::bigint[]) ORDER BY id",
                            [build, direct, indirect])
    message = f"dependency failed: build {build} (lib) was cancelled"
    assert [tuple(r) for r in rows] == [
        (build, "finished", 4, "cancelled"),
        (direct, "finished", 2, message),
        (indirect, "finished", 2, message)]


async def test_a_refused_action_keeps_each_front_ends_words(client: TestClient,
                                                            pool: asyncpg.Pool) -> None:
    project = await seed_project(client, "acts")
    jobset = (await seed_jobset(client, project["id"]))["id"]
    done = await insert_build(pool, jobset, "done", state="finished", buildstatus=0)
    for action, why in (("cancel", "only a queued or running build can be cancelled"),
                        ("bump", "only a queued build can be bumped")):
        resp = await client.post(f"/api/v1/builds/{done}/{action}", headers=ADMIN)
        assert (resp.status, (await resp.json())["error"]) == (
            409, f"build {done} is succeeded: {why}")
    resp = await client.post(f"/build/{done}/cancel", headers={**JSON, **ADMIN})
    assert (resp.status, (await resp.json())["error"]) == (400, "Build has already finished.")
    resp = await client.post(f"/build/{done}/bump", headers={**JSON, **ADMIN})
    assert (resp.status, (await resp.json())["error"]) == (400, "This build is not queued.")
    resp = await client.post("/api/v1/builds/98765/restart", headers=ADMIN)
    assert (resp.status, (await resp.json())["error"]) == (404, "build 98765 not found")
    resp = await client.put("/api/v1/builds/98765/keep/true", headers=ADMIN)
    assert (resp.status, (await resp.json())["error"]) == (404, "build 98765 not found")
    assert await pool.fetchval("SELECT buildstatus FROM builds WHERE id = $1", done) == 0
