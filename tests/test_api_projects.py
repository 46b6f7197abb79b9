"""/health and /api/v1 projects, jobsets and inputs: CRUD, auth, validation, paging."""

from __future__ import annotations

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from tests.helpers.api import (
    ADMIN,
    READONLY_KEY,
    ROLE_KEYS,
    bearer,
    seed_jobset,
    seed_project,
)

# The `context` and `client` fixtures.


async def test_health_reports_database_ok(client: TestClient) -> None:
    resp = await client.get("/health")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ok" and body["database"] == "ok"


async def test_health_is_503_when_the_database_is_gone(client: TestClient, context) -> None:
    await context.pool.close()
    resp = await client.get("/health")
    assert resp.status == 503
    assert (await resp.json())["database"] == "error"


async def test_project_crud(client: TestClient, pool: asyncpg.Pool) -> None:
    resp = await client.post("/api/v1/projects", headers=ADMIN, json={
        "name": "hello", "repository_url": "https://example.com/hello.git",
        "description": "says hi", "display_name": "Hello"})
    assert resp.status == 201
    created = await resp.json()
    assert created["name"] == "hello" and created["enabled"] is True
    assert created["description"] == "says hi" and created["homepage"] == ""

    resp = await client.get(f"/api/v1/projects/{created['id']}")
    assert resp.status == 200 and (await resp.json())["display_name"] == "Hello"
    resp = await client.get("/api/v1/projects/hello")
    assert resp.status == 200 and (await resp.json())["id"] == created["id"]

    resp = await client.put(f"/api/v1/projects/{created['id']}", headers=ADMIN,
                            json={"description": "changed", "enabled": False})
    body = await resp.json()
    assert resp.status == 200
    assert (body["description"], body["enabled"], body["name"]) == ("changed", False, "hello")

    await seed_jobset(client, created["id"])
    resp = await client.delete(f"/api/v1/projects/{created['id']}", headers=ADMIN)
    assert resp.status == 200
    assert (await client.get(f"/api/v1/projects/{created['id']}")).status == 404
    assert await pool.fetchval("SELECT count(*) FROM jobsets") == 0


async def test_writes_need_a_key_with_the_right_role(client: TestClient,
                                                     pool: asyncpg.Pool) -> None:
    new = {"name": "p", "repository_url": "https://example.com"}
    resp = await client.post("/api/v1/projects", json=new)
    assert resp.status == 401 and "error" in await resp.json()
    resp = await client.post("/api/v1/projects", json=new, headers=bearer("nonsense"))
    assert resp.status == 401
    resp = await client.post("/api/v1/projects", json=new, headers=bearer(READONLY_KEY))
    assert resp.status == 403
    assert await pool.fetchval("SELECT last_used_at FROM api_keys WHERE role = 'read-only'")
    resp = await client.post("/api/v1/projects", json=new,
                             headers=bearer(ROLE_KEYS["create-projects"]))
    assert resp.status == 201
    project_id = (await resp.json())["id"]
    # create-projects may create, not delete.
    resp = await client.delete(f"/api/v1/projects/{project_id}",
                               headers=bearer(ROLE_KEYS["create-projects"]))
    assert resp.status == 403
    resp = await client.get("/api/v1/projects")
    assert resp.status == 200


async def test_legacy_server_api_key_is_admin(aiohttp_client, make_config, pool,
                                              database_url) -> None:
    from circus.app.context import Context
    from circus.db.bus import Bus
    from circus.server.http.app import init_app

    ctx = Context(config=make_config({"server": {"api_key": "legacy-secret"}}), pool=pool,
                  bus=Bus(database_url), database_url=database_url)
    http = await aiohttp_client(await init_app(ctx))
    resp = await http.post("/api/v1/projects", headers=bearer("legacy-secret"),
                           json={"name": "legacy", "repository_url": "https://example.com/legacy"})
    assert resp.status == 201


@pytest.mark.parametrize(("body", "field"), [
    ({"repository_url": "https://x.org"}, "name"),
    ({"name": "ok"}, "repository_url"),
    ({"name": "bad name", "repository_url": "https://x.org"}, "name"),
    ({"name": "-dash", "repository_url": "https://x.org"}, "name"),
    ({"name": "x" * 101, "repository_url": "https://x.org"}, "name"),
    ({"name": 7, "repository_url": "https://x.org"}, "name"),
    ({"name": "ok", "repository_url": ""}, "repository_url"),
    ({"name": "ok", "repository_url": "not a url"}, "repository_url"),
    ({"name": "ok", "repository_url": "relative/path"}, "repository_url"),
    ({"name": "ok", "repository_url": "https://x.org", "enabled": "yes"}, "enabled"),
    ({"name": "ok", "repository_url": "https://x.org", "description": None}, "description"),
])
async def test_bad_project_input_is_400_naming_the_field(client: TestClient, body: dict,
                                                         field: str) -> None:
    resp = await client.post("/api/v1/projects", headers=ADMIN, json=body)
    assert resp.status == 400
    assert (await resp.json())["error"].startswith(f"{field}:")


async def test_malformed_and_oversized_bodies(client: TestClient, aiohttp_client, context
                                              ) -> None:
    resp = await client.post("/api/v1/projects", headers=ADMIN, data=b"{not json")
    assert resp.status == 400 and "malformed JSON" in (await resp.json())["error"]
    resp = await client.post("/api/v1/projects", headers=ADMIN, json=[1, 2])
    assert resp.status == 400

    from circus.server.http.app import init_app

    context.config.server.max_body_size = 100
    small = await aiohttp_client(await init_app(context))
    resp = await small.post("/api/v1/projects", headers=ADMIN,
                            json={"name": "big", "repository_url": "https://x.org/" + "a" * 200})
    assert resp.status == 413
    assert "too large" in (await resp.json())["error"]


async def test_allowed_url_schemes(client: TestClient, context) -> None:
    context.config.server.allowed_url_schemes = ["https"]
    resp = await client.post("/api/v1/projects", headers=ADMIN,
                             json={"name": "a", "repository_url": "git://example.com/a"})
    assert resp.status == 400
    assert "'git'" in (await resp.json())["error"]
    resp = await client.post("/api/v1/projects", headers=ADMIN,
                             json={"name": "b", "repository_url": "/srv/repo"})
    assert resp.status == 400
    resp = await client.post("/api/v1/projects", headers=ADMIN,
                             json={"name": "c", "repository_url": "https://example.com/c"})
    assert resp.status == 201


async def test_duplicate_names_conflict(client: TestClient) -> None:
    project = await seed_project(client, "dup")
    resp = await client.post("/api/v1/projects", headers=ADMIN,
                             json={"name": "dup", "repository_url": "https://example.com/other"})
    assert resp.status == 409 and (await resp.json())["error"].startswith("name:")
    other = await seed_project(client, "other")
    resp = await client.put(f"/api/v1/projects/{other['id']}", headers=ADMIN,
                            json={"name": "dup"})
    assert resp.status == 409
    await seed_jobset(client, project["id"], "main")
    resp = await client.post(f"/api/v1/projects/{project['id']}/jobsets", headers=ADMIN,
                             json={"name": "main"})
    assert resp.status == 409


async def test_unknown_ids_are_404(client: TestClient) -> None:
    for path in ("/api/v1/projects/999", "/api/v1/projects/nope",
                 "/api/v1/projects/999/jobsets", "/api/v1/projects/99999999999999999999999",
                 "/api/v1/builds/5", "/api/v1/evaluations/5", "/api/v1/nothing-here"):
        resp = await client.get(path)
        assert resp.status == 404, path
        assert "error" in await resp.json()
    resp = await client.put("/api/v1/projects/999", headers=ADMIN, json={"name": "x"})
    assert resp.status == 404


async def test_pagination(client: TestClient) -> None:
    for i in range(7):
        await seed_project(client, f"p{i}")
    resp = await client.get("/api/v1/projects?limit=3&offset=2")
    body = await resp.json()
    assert (body["total"], body["limit"], body["offset"]) == (7, 3, 2)
    assert [p["name"] for p in body["items"]] == ["p4", "p3", "p2"]
    body = await (await client.get("/api/v1/projects")).json()
    assert (body["limit"], body["offset"], len(body["items"])) == (50, 0, 7)
    body = await (await client.get("/api/v1/projects?limit=100000")).json()
    assert body["limit"] == 500
    for bad in ("limit=0", "limit=x", "offset=-1"):
        resp = await client.get(f"/api/v1/projects?{bad}")
        assert resp.status == 400
        assert (await resp.json())["error"].startswith(bad.split("=")[0])


async def test_jobset_crud_and_defaults(client: TestClient) -> None:
    project = await seed_project(client)
    base = f"/api/v1/projects/{project['id']}/jobsets"
    resp = await client.post(base, headers=ADMIN, json={"name": "main", "branch": "dev"})
    assert resp.status == 201
    jobset = await resp.json()
    assert (jobset["nix_expression"], jobset["flake"], jobset["enabled"]) == ("hydraJobs", True,
                                                                               1)
    assert jobset["branch"] == "dev" and jobset["check_interval"] == 60
    listed = await (await client.get(base)).json()
    assert listed["total"] == 1 and listed["items"][0]["name"] == "main"

    one = f"{base}/{jobset['id']}"
    resp = await client.put(one, headers=ADMIN, json={"enabled": False, "check_interval": 300,
                                                      "flake": False, "nix_expression": "jobs"})
    body = await resp.json()
    assert resp.status == 200
    assert (body["enabled"], body["check_interval"], body["flake"]) == (0, 300, False)
    assert (await client.get("/api/v1/projects/demo/jobsets/main")).status == 200
    resp = await client.delete(one, headers=ADMIN)
    assert resp.status == 200
    assert (await client.get(one)).status == 404


@pytest.mark.parametrize(("body", "field"), [
    ({}, "name"),
    ({"name": "a b"}, "name"),
    ({"name": "ok", "check_interval": -1}, "check_interval"),
    ({"name": "ok", "check_interval": "60"}, "check_interval"),
    ({"name": "ok", "scheduling_shares": 0}, "scheduling_shares"),
    ({"name": "ok", "enabled": 9}, "enabled"),
    ({"name": "ok", "flake": 1}, "flake"),
    ({"name": "ok", "nix_expression": ""}, "nix_expression"),
    ({"name": "ok", "check_interval": 10**30}, "check_interval"),
])
async def test_bad_jobset_input_is_400(client: TestClient, body: dict, field: str) -> None:
    project = await seed_project(client)
    resp = await client.post(f"/api/v1/projects/{project['id']}/jobsets", headers=ADMIN,
                             json=body)
    assert resp.status == 400
    assert (await resp.json())["error"].startswith(f"{field}:")


async def test_jobset_inputs(client: TestClient) -> None:
    project = await seed_project(client)
    jobset = await seed_jobset(client, project["id"])
    base = f"/api/v1/projects/{project['id']}/jobsets/{jobset['id']}/inputs"
    resp = await client.post(base, headers=ADMIN,
                             json={"name": "nixpkgs", "type": "git", "value": "https://x/n"})
    assert resp.status == 201
    created = await resp.json()
    assert (created["name"], created["type"]) == ("nixpkgs", "git")
    resp = await client.post(base, headers=ADMIN,
                             json={"name": "nixpkgs", "type": "git", "value": "https://x/o"})
    assert resp.status == 409
    resp = await client.post(base, headers=ADMIN, json={"name": "x", "type": "svn", "value": ""})
    assert resp.status == 400 and (await resp.json())["error"].startswith("type:")
    resp = await client.post(base, headers=ADMIN, json={"name": "a.b", "type": "string",
                                                        "value": ""})
    assert resp.status == 400 and (await resp.json())["error"].startswith("name:")
    resp = await client.post(base, headers=bearer(ROLE_KEYS["create-projects"]),
                             json={"name": "y", "type": "string", "value": "v"})
    assert resp.status == 403
    listed = await (await client.get(base)).json()
    assert [i["name"] for i in listed["items"]] == ["nixpkgs"]
    resp = await client.delete(f"{base}/{created['id']}", headers=ADMIN)
    assert resp.status == 200
    assert (await (await client.get(base)).json())["items"] == []
    assert (await client.delete(f"{base}/{created['id']}", headers=ADMIN)).status == 404
