"""Project and jobset changes are one set of operations (circus/services/projects.py):
where the front ends used to decide on their own, /api/v1, Hydra's PUT/DELETE and the
dashboard's forms now answer alike — a taken name is a 409, changing or deleting what
exists needs `administer`, a bad homepage is a 400, and a stored repository URL is
checked when it changes, not again on every edit. Real PostgreSQL, in-process server."""

from __future__ import annotations

import asyncpg
from aiohttp.test_utils import TestClient

from tests.helpers.api import ADMIN, READONLY_KEY, ROLE_KEYS, bearer, seed_project
from tests.helpers.dashboard import login

CREATOR_KEY = ROLE_KEYS["create-projects"]
CREATOR = bearer(CREATOR_KEY)
NOT_ADMIN = "API key 'create-projects key' (role create-projects) may not administer"


async def _error(resp: object, status: int) -> str:
    text = await resp.text()  # type: ignore[attr-defined]
    assert resp.status == status, text  # type: ignore[attr-defined]
    return text


async def test_a_taken_project_name_is_a_409_on_every_front_end(client: TestClient) -> None:
    await seed_project(client, "demo")
    other = await seed_project(client, "other")
    resp = await client.post("/api/v1/projects", headers=ADMIN,
                             json={"name": "demo", "repository_url": "https://example.com/x"})
    assert "a project named 'demo' already exists" in await _error(resp, 409)
    resp = await client.put(f"/api/v1/projects/{other['id']}", headers=ADMIN,
                            json={"name": "demo"})
    assert "a project named 'demo' already exists" in await _error(resp, 409)
    resp = await client.put("/project/other", headers=ADMIN, json={"name": "demo"})
    assert "A project named \u2018demo\u2019 already exists." in await _error(resp, 409)
    token = await login(client, ROLE_KEYS["admin"])
    resp = await client.post("/dashboard/projects", data={
        "csrf_token": token, "name": "demo", "repository_url": "https://example.com/y"})
    assert "a project named &#39;demo&#39; already exists" in await _error(resp, 409)


async def test_a_taken_jobset_name_is_a_409_on_every_front_end(client: TestClient) -> None:
    project = await seed_project(client, "demo")
    url = f"/api/v1/projects/{project['id']}/jobsets"
    assert (await client.post(url, headers=ADMIN, json={"name": "main"})).status == 201
    resp = await client.post(url, headers=ADMIN, json={"name": "main"})
    assert "a jobset named 'main' already exists" in await _error(resp, 409)
    token = await login(client, ROLE_KEYS["admin"])
    resp = await client.post("/dashboard/project/demo/jobsets", data={
        "csrf_token": token, "name": "main", "nix_expression": "hydraJobs"})
    assert "a jobset named &#39;main&#39; already exists" in await _error(resp, 409)


async def test_changing_or_deleting_a_project_needs_administer_everywhere(
        client: TestClient, pool: asyncpg.Pool) -> None:
    resp = await client.post("/api/v1/projects", headers=CREATOR,
                             json={"name": "mine", "repository_url": "https://example.com/m"})
    assert resp.status == 201, await resp.text()
    project_id = (await resp.json())["id"]
    resp = await client.put("/project/hydra-made", headers=CREATOR, json={"displayname": "h"})
    assert resp.status == 201, await resp.text()
    for resp in (
        await client.put(f"/api/v1/projects/{project_id}", headers=CREATOR,
                         json={"description": "x"}),
        await client.put("/project/mine", headers=CREATOR, json={"description": "x"}),
        await client.delete(f"/api/v1/projects/{project_id}", headers=CREATOR),
        await client.delete("/project/hydra-made", headers=CREATOR),
    ):
        assert NOT_ADMIN in await _error(resp, 403)
    assert await pool.fetchval("SELECT count(*) FROM projects WHERE description = ''") == 2
    assert (await client.delete(f"/api/v1/projects/{project_id}", headers=ADMIN)).status == 200
    assert (await client.delete("/project/hydra-made", headers=ADMIN)).status == 200
    assert await pool.fetchval("SELECT count(*) FROM projects") == 0


async def test_changing_or_deleting_a_jobset_needs_administer_everywhere(
        client: TestClient, pool: asyncpg.Pool) -> None:
    project = await seed_project(client, "demo")
    url = f"/api/v1/projects/{project['id']}/jobsets"
    resp = await client.post(url, headers=CREATOR, json={"name": "main"})
    assert resp.status == 201, await resp.text()
    one = f"{url}/{(await resp.json())['id']}"
    flake = {"type": 1, "flake": "git+https://example.com/r", "checkinterval": 0}
    for resp in (
        await client.put(one, headers=CREATOR, json={"description": "x"}),
        await client.put("/jobset/demo/main", headers=CREATOR, json=flake),
        await client.delete(one, headers=CREATOR),
        await client.delete("/jobset/demo/main", headers=CREATOR),
    ):
        assert NOT_ADMIN in await _error(resp, 403)
    assert await pool.fetchval("SELECT count(*) FROM jobsets") == 1
    assert (await client.delete("/jobset/demo/main", headers=ADMIN)).status == 200
    assert await pool.fetchval("SELECT count(*) FROM jobsets") == 0


async def test_read_only_creates_nothing_on_any_front_end(client: TestClient,
                                                          pool: asyncpg.Pool) -> None:
    readonly = bearer(READONLY_KEY)
    resp = await client.post("/api/v1/projects", headers=readonly,
                             json={"name": "p", "repository_url": "https://example.com/p"})
    assert "may not create project" in await _error(resp, 403)
    resp = await client.put("/project/p", headers=readonly, json={"displayname": "p"})
    assert "may not create project" in await _error(resp, 403)
    token = await login(client, READONLY_KEY)
    resp = await client.post("/dashboard/projects", data={
        "csrf_token": token, "name": "p", "repository_url": "https://example.com/p"})
    assert "may not create project" in await _error(resp, 403)
    assert await pool.fetchval("SELECT count(*) FROM projects") == 0


async def test_a_bad_homepage_is_a_400_on_every_front_end(client: TestClient,
                                                          pool: asyncpg.Pool) -> None:
    bad = "javascript:alert(1)"
    resp = await client.post("/api/v1/projects", headers=ADMIN, json={
        "name": "p", "repository_url": "https://example.com/p", "homepage": bad})
    assert "homepage: must be an http:// or https:// URL" in await _error(resp, 400)
    resp = await client.put("/project/p", headers=ADMIN, json={"homepage": bad})
    assert "homepage: must be an http:// or https:// URL" in await _error(resp, 400)
    token = await login(client, ROLE_KEYS["admin"])
    resp = await client.post("/dashboard/projects", data={
        "csrf_token": token, "name": "p", "repository_url": "https://example.com/p",
        "homepage": bad})
    assert "homepage: must be an http:// or https:// URL" in await _error(resp, 400)
    assert await pool.fetchval("SELECT count(*) FROM projects") == 0


async def test_a_stored_repository_url_is_checked_when_it_changes(
        client: TestClient, pool: asyncpg.Pool) -> None:
    # Written before the rule (or by declarative apply): file:// is not allowed by default.
    project_id = await pool.fetchval(
        "INSERT INTO projects (name, repository_url) VALUES ('old', 'file:///srv/r')"
        " RETURNING id")
    resp = await client.put(f"/api/v1/projects/{project_id}", headers=ADMIN,
                            json={"description": "edited"})
    assert resp.status == 200, await resp.text()
    resp = await client.put("/project/old", headers=ADMIN, json={"displayname": "Old"})
    assert resp.status == 200, await resp.text()
    resp = await client.put(f"/api/v1/projects/{project_id}", headers=ADMIN,
                            json={"repository_url": "file:///srv/other"})
    assert "repository_url: scheme 'file' is not allowed" in await _error(resp, 400)
    row = await pool.fetchrow("SELECT * FROM projects WHERE id = $1", project_id)
    assert (row["repository_url"], row["description"], row["display_name"]) == (
        "file:///srv/r", "edited", "Old")


async def test_asking_for_an_evaluation_is_the_same_on_every_front_end(
        client: TestClient, pool: asyncpg.Pool) -> None:
    """/api/v1's trigger, Hydra's push and the dashboard's button each make the jobset
    due now (circus/services/evaluations.py); a jobset that does not exist is a 404, or
    absent from Hydra's list."""
    project = await seed_project(client, "demo")
    resp = await client.post(f"/api/v1/projects/{project['id']}/jobsets", headers=ADMIN,
                             json={"name": "main"})
    jobset_id = (await resp.json())["id"]
    token = await login(client, ROLE_KEYS["admin"])
    asks = [("POST", "/api/v1/evaluations/trigger", {"json": {"jobset_id": jobset_id}}, 202),
            ("POST", "/api/push?jobsets=demo:main,demo:nope", {}, 200),
            ("POST", f"/dashboard/jobset/{jobset_id}/trigger",
             {"data": {"csrf_token": token}, "allow_redirects": False}, 303)]
    for method, url, options, answer in asks:
        await pool.execute("UPDATE jobsets SET trigger_time = NULL")
        resp = await client.request(method, url, headers=ADMIN, **options)
        assert resp.status == answer, (url, await resp.text())
        assert await pool.fetchval("SELECT trigger_time IS NOT NULL FROM jobsets") is True, url
    assert (await client.post("/api/push?jobsets=demo:nope", headers=ADMIN)).status == 200
    resp = await client.post("/api/push?jobsets=demo:main,demo:nope", headers=ADMIN)
    assert (await resp.json()) == {"jobsetsTriggered": ["demo:main"]}
    resp = await client.post("/api/v1/evaluations/trigger", headers=ADMIN,
                             json={"jobset_id": 999})
    assert "jobset 999 not found" in await _error(resp, 404)
    resp = await client.post("/dashboard/jobset/999/trigger", data={"csrf_token": token})
    assert "jobset 999 not found" in await _error(resp, 404)
