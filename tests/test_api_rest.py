"""The rest of /api/v1: probe and setup, update semantics, compare, bump and keep, build
sub-lists, stats and recent, search, metrics, admin, news, badges and latest, /prometheus."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from circus.app.config import Config
from circus.app.context import Context
from circus.server.http.app import init_app
from tests.helpers.api import (
    ADMIN,
    READONLY_KEY,
    bearer,
    insert_build,
    seed_jobset,
    seed_project,
)


async def _json(resp: Any, status: int = 200) -> Any:
    assert resp.status == status, (resp.status, await resp.text())
    return await resp.json()


async def _local_client(aiohttp_client: Any, context: Context,
                        make_config: Callable[..., Config]) -> TestClient:
    """A client whose server allows file:// repositories (probe tests use local repos)."""
    context.config = make_config({"server": {"allowed_url_schemes": ["file", "https"]}})
    return await aiohttp_client(await init_app(context))


async def test_probe_local_repositories(aiohttp_client, context, make_config, make_repo,
                                        tmp_path: Path) -> None:
    http = await _local_client(aiohttp_client, context, make_config)
    flake = make_repo({"flake.nix": "{ outputs = _: {}; }"}, name="flaky")
    plain = make_repo({"release.nix": "{}"}, name="plain")
    found = await _json(await http.post("/api/v1/projects/probe", headers=ADMIN,
                                        json={"repository_url": f"file://{flake}"}))
    assert found["reachable"] and found["default_branch"] == "main"
    assert found["has_flake"] and found["suggested_template"] == "flake"
    assert len(found["head"]) == 40
    found = await _json(await http.post("/api/v1/projects/probe", headers=ADMIN,
                                        json={"repository_url": f"file://{plain}"}))
    assert found["reachable"] and not found["has_flake"]
    assert found["suggested_template"] == "legacy"
    found = await _json(await http.post("/api/v1/projects/probe", headers=ADMIN,
                                        json={"repository_url": f"file://{tmp_path}/none"}))
    assert not found["reachable"] and found["error"]
    # Schemes not allowed are refused before git runs; ext:: would run a command.
    resp = await http.post("/api/v1/projects/probe", headers=ADMIN,
                           json={"repository_url": "ext::sh -c touch% /tmp/pwned"})
    assert resp.status == 400 and (await resp.json())["error"].startswith("repository_url")
    resp = await http.post("/api/v1/projects/probe", headers=bearer(READONLY_KEY),
                           json={"repository_url": f"file://{flake}"})
    assert resp.status == 403


async def test_setup_from_template_is_one_transaction(client: TestClient,
                                                      pool: asyncpg.Pool) -> None:
    made = await _json(await client.post("/api/v1/projects/setup", headers=ADMIN, json={
        "name": "tmpl", "repository_url": "https://example.com/t.git", "template": "flake",
        "branch": "develop"}), 201)
    assert made["project"]["name"] == "tmpl"
    assert [(j["name"], j["flake"], j["nix_expression"], j["branch"])
            for j in made["jobsets"]] == [("main", True, "hydraJobs", "develop")]
    made = await _json(await client.post("/api/v1/projects/setup", headers=ADMIN, json={
        "name": "multi", "repository_url": "https://example.com/m.git",
        "jobsets": [{"name": "a", "flake": False, "nix_expression": "release.nix"},
                    {"name": "b"}]}), 201)
    assert [j["name"] for j in made["jobsets"]] == ["a", "b"]
    # A bad jobset refuses the whole setup: no project is left behind.
    resp = await client.post("/api/v1/projects/setup", headers=ADMIN, json={
        "name": "broken", "repository_url": "https://example.com/b.git",
        "jobsets": [{"name": "ok"}, {"name": "ok", "check_interval": "soon"}]})
    assert resp.status == 400 and "jobsets[1].check_interval" in (await resp.json())["error"]
    resp = await client.post("/api/v1/projects/setup", headers=ADMIN, json={
        "name": "dup", "repository_url": "https://example.com/d.git",
        "jobsets": [{"name": "x"}, {"name": "x"}]})
    assert resp.status == 400
    assert await pool.fetchval("SELECT count(*) FROM projects WHERE name IN "
                               "('broken', 'dup')") == 0
    resp = await client.post("/api/v1/projects/setup", headers=ADMIN, json={
        "name": "tmpl", "repository_url": "https://example.com/t.git"})
    assert resp.status == 409
    resp = await client.post("/api/v1/projects/setup", headers=ADMIN, json={
        "name": "t2", "repository_url": "https://example.com/t.git", "template": "nope"})
    assert resp.status == 400 and (await resp.json())["error"].startswith("template")


async def test_put_is_a_partial_update_and_rename_conflicts(client: TestClient) -> None:
    project = await seed_project(client, "one")
    await seed_project(client, "two")
    updated = await _json(await client.put(f"/api/v1/projects/{project['id']}", headers=ADMIN,
                                           json={"description": "new words"}))
    assert (updated["name"], updated["repository_url"], updated["description"]) == (
        "one", "https://example.com/r", "new words")
    resp = await client.put("/api/v1/projects/one", headers=ADMIN, json={"name": "two"})
    assert resp.status == 409 and (await resp.json())["error"].startswith("name")
    main = await seed_jobset(client, project["id"], "main")
    await seed_jobset(client, project["id"], "other")
    url = f"/api/v1/projects/{project['id']}/jobsets/{main['id']}"
    await _json(await client.put(url, headers=ADMIN, json={"check_interval": 300,
                                                           "branch": "dev"}))
    after = await _json(await client.put(url, headers=ADMIN, json={"description": "d"}))
    assert (after["check_interval"], after["branch"], after["nix_expression"],
            after["description"]) == (300, "dev", "hydraJobs", "d")
    resp = await client.put(url, headers=ADMIN, json={"name": "other"})
    assert resp.status == 409


async def _evaluation(pool: asyncpg.Pool, jobset_id: int, builds: list[int]) -> int:
    eval_id = await pool.fetchval(
        "INSERT INTO evaluations (jobset_id, status, commit_hash, inputs_hash) "
        "VALUES ($1, 'succeeded', 'c', 'i') RETURNING id", jobset_id)
    await pool.executemany("INSERT INTO evaluation_builds (evaluation_id, build_id) "
                           "VALUES ($1, $2)", [(eval_id, b) for b in builds])
    return eval_id


async def test_compare_with_previous_evaluation(client: TestClient,
                                                pool: asyncpg.Pool) -> None:
    project = await seed_project(client)
    js = (await seed_jobset(client, project["id"]))["id"]
    same = await insert_build(pool, js, "same", state="finished", buildstatus=0)
    gone = await insert_build(pool, js, "gone", state="finished", buildstatus=0)
    old_drv = await insert_build(pool, js, "drv", state="finished", buildstatus=0)
    first = await _evaluation(pool, js, [same, gone, old_drv])
    new_drv = await insert_build(pool, js, "drv", drv_path="/nix/store/drv-2.drv")
    added = await insert_build(pool, js, "added")
    second = await _evaluation(pool, js, [same, new_drv, added])
    body = await _json(await client.get(f"/api/v1/evaluations/{second}/compare"))
    assert body["previous_id"] == first
    assert [j["job"] for j in body["new"]] == ["added"]
    assert [j["job"] for j in body["removed"]] == ["gone"]
    assert [(c["job"], c["changed"]) for c in body["changed"]] == [
        ("drv", ["drv_path", "status"])]
    assert body["unchanged"] == 1
    # Same job, same drv, another status is a change too (`with`: another jobset's
    # evaluation, where that derivation failed).
    other_js = (await seed_jobset(client, project["id"], "other"))["id"]
    failed_same = await insert_build(pool, other_js, "same", state="finished", buildstatus=1)
    other = await _evaluation(pool, other_js, [failed_same])
    body = await _json(await client.get(f"/api/v1/evaluations/{second}/compare?with={other}"))
    assert body["previous_id"] == other
    assert [(c["job"], c["changed"]) for c in body["changed"]] == [("same", ["status"])]
    body = await _json(await client.get(f"/api/v1/evaluations/{first}/compare"))
    assert body["previous_id"] is None and len(body["new"]) == 3
    assert (await client.get("/api/v1/evaluations/999999/compare")).status == 404


async def test_bump_keep_and_build_lists(client: TestClient, pool: asyncpg.Pool) -> None:
    project = await seed_project(client)
    js = (await seed_jobset(client, project["id"]))["id"]
    first = await insert_build(pool, js, "first", global_priority=5)
    second = await insert_build(pool, js, "second")
    done = await insert_build(pool, js, "done", state="finished", buildstatus=0)
    bumped = await _json(await client.post(f"/api/v1/builds/{second}/bump",
                                           headers=bearer("key_bump")))
    assert bumped["global_priority"] == 6
    # The queue's own claim order puts it first.
    order = await pool.fetch("SELECT id FROM builds WHERE state = 'queued' "
                             "ORDER BY global_priority DESC, priority DESC, id")
    assert [r["id"] for r in order] == [second, first]
    resp = await client.post(f"/api/v1/builds/{done}/bump", headers=ADMIN)
    assert resp.status == 409
    assert (await client.post("/api/v1/builds/999999/bump", headers=ADMIN)).status == 404
    assert (await client.post(f"/api/v1/builds/{first}/bump",
                              headers=bearer(READONLY_KEY))).status == 403

    kept = await _json(await client.put(f"/api/v1/builds/{done}/keep/true", headers=ADMIN))
    assert kept["keep"] is True
    assert await pool.fetchval("SELECT keep FROM builds WHERE id = $1", done)
    kept = await _json(await client.put(f"/api/v1/builds/{done}/keep/false", headers=ADMIN))
    assert kept["keep"] is False
    assert (await client.put(f"/api/v1/builds/{done}/keep/maybe",
                             headers=ADMIN)).status == 400

    await pool.execute("INSERT INTO build_dependencies (build_id, dependency_id) "
                       "VALUES ($1, $2)", second, first)
    await pool.execute("INSERT INTO aggregate_constituents (aggregate_id, constituent_id) "
                       "VALUES ($1, $2)", done, first)
    await pool.execute("INSERT INTO build_steps (build_id, step_nr, drv_path) "
                       "VALUES ($1, 1, '/nix/store/x.drv')", done)
    deps = await _json(await client.get(f"/api/v1/builds/{second}/dependencies"))
    assert [d["id"] for d in deps["items"]] == [first] and deps["total"] == 1
    dependents = await _json(await client.get(f"/api/v1/builds/{first}/dependents"))
    assert [d["id"] for d in dependents["items"]] == [second]
    constituents = await _json(await client.get(f"/api/v1/builds/{done}/constituents"))
    assert [(c["id"], c["status"]) for c in constituents["items"]] == [(first, "queued")]
    steps = await _json(await client.get(f"/api/v1/builds/{done}/steps"))
    assert [s["drv_path"] for s in steps["items"]] == ["/nix/store/x.drv"]
    assert (await client.get("/api/v1/builds/999999/steps")).status == 404


async def test_stats_and_recent(client: TestClient, pool: asyncpg.Pool) -> None:
    project = await seed_project(client)
    js = (await seed_jobset(client, project["id"]))["id"]
    for job, status in (("a", 0), ("b", 0), ("c", 1), ("d", 4)):
        await insert_build(pool, js, job, state="finished", buildstatus=status,
                           started_at=None)
    await insert_build(pool, js, "q")
    await pool.execute("UPDATE builds SET started_at = now() - interval '10 seconds', "
                       "finished_at = now() WHERE state = 'finished'")
    await pool.execute("UPDATE builds SET finished_at = now() + interval '1 minute' "
                       "WHERE job = 'c'")
    stats = await _json(await client.get("/api/v1/builds/stats"))
    assert {k: stats[k] for k in ("total", "queued", "succeeded", "failed", "cancelled")} == {
        "total": 5, "queued": 1, "succeeded": 2, "failed": 1, "cancelled": 1}
    assert 9 <= stats["avg_duration_seconds"] <= 11
    stats = await _json(await client.get(f"/api/v1/builds/stats?project_id={project['id']}"))
    assert stats["total"] == 5
    recent = await _json(await client.get("/api/v1/builds/recent?limit=2"))
    assert [b["job"] for b in recent["items"]][:1] == ["c"] and len(recent["items"]) == 2


async def test_search_and_quick_search(client: TestClient, pool: asyncpg.Pool) -> None:
    project = await seed_project(client, "hello-world")
    js = (await seed_jobset(client, project["id"], "stable"))["id"]
    build = await insert_build(pool, js, "hello.x86_64", drv_path="/nix/store/abc123-hi.drv")
    await pool.execute("INSERT INTO build_outputs (build_id, name, path) "
                       "VALUES ($1, 'out', '/nix/store/zzz999-hi')", build)
    found = await _json(await client.get("/api/v1/search?q=hello"))
    assert [p["name"] for p in found["projects"]] == ["hello-world"]
    assert [(j["job"], j["jobset"]) for j in found["jobs"]] == [("hello.x86_64", "stable")]
    found = await _json(await client.get("/api/v1/search?q=stab"))
    assert [j["name"] for j in found["jobsets"]] == ["stable"]
    for q in ("/nix/store/abc123-hi.drv", "abc123", "/nix/store/zzz999-hi", "zzz9"):
        found = await _json(await client.get(f"/api/v1/search?q={q}"))
        assert [b["id"] for b in found["builds"]] == [build], q
    found = await _json(await client.get("/api/v1/search?q=100%25_"))
    assert found["projects"] == [] and found["builds"] == []
    quick = await _json(await client.get("/api/v1/search/quick?q=hello"))
    assert {i["type"] for i in quick["items"]} == {"project", "job"}
    assert (await client.get("/api/v1/search")).status == 400
    assert (await client.get("/api/v1/search?q=" + "x" * 300)).status == 400


async def test_metrics_series_and_systems(client: TestClient, pool: asyncpg.Pool) -> None:
    project = await seed_project(client)
    js = (await seed_jobset(client, project["id"]))["id"]
    await insert_build(pool, js, "a", state="finished", buildstatus=0)
    await insert_build(pool, js, "b", state="finished", buildstatus=1, system="aarch64-linux")
    await pool.execute("UPDATE builds SET started_at = now() - interval '4 seconds', "
                       "finished_at = now()")
    series = await _json(await client.get("/api/v1/metrics/timeseries/builds?hours=2"
                                           "&bucket=minute"))
    assert sum(p["total"] for p in series["points"]) == 2
    assert sum(p["failed"] for p in series["points"]) == 1
    durations = await _json(await client.get("/api/v1/metrics/timeseries/duration"))
    assert durations["bucket"] == "hour" and durations["hours"] == 24
    assert [round(p["avg_seconds"]) for p in durations["points"]] == [4]
    for bad in ("hours=0", "hours=abc", "hours=99999", "bucket=year"):
        resp = await client.get(f"/api/v1/metrics/timeseries/builds?{bad}")
        assert resp.status == 400, bad
        assert (await resp.json())["error"].split(":")[0] in ("hours", "bucket")
    # Minutes over most of a year: the last 10 000 of them, and the answer says so.
    series = await _json(await client.get("/api/v1/metrics/timeseries/builds?hours=8000"
                                          "&bucket=minute"))
    assert series["hours"] == 166 and sum(p["total"] for p in series["points"]) == 2
    systems = await _json(await client.get("/api/v1/metrics/systems"))
    assert [s["system"] for s in systems["items"]] == ["aarch64-linux", "x86_64-linux"]


def _read(path: Path) -> str:
    return path.read_text()


async def test_admin_system_and_config(client: TestClient, context: Context) -> None:
    status = await _json(await client.get("/api/v1/admin/system", headers=ADMIN))
    assert status["postgres_version"] and status["builds_queued"] == 0
    assert (await client.get("/api/v1/admin/system")).status == 401
    assert (await client.get("/api/v1/admin/system",
                             headers=bearer(READONLY_KEY))).status == 403
    config = await _json(await client.get("/api/v1/admin/config", headers=ADMIN))
    assert config["declarative"] is None
    assert config["effective"]["server"]["port"] == context.config.server.port
    path = Path(config["declarative_path"])
    assert path == Path(context.config.state_dir) / "declarative.toml"

    declared = {"projects": [{"name": "decl", "repository_url": "https://example.com/d",
                              "jobsets": [{"name": "main", "check_interval": 30}]}]}
    saved = await _json(await client.put("/api/v1/admin/config", headers=ADMIN,
                                         json={"declarative": declared}))
    assert saved["saved"]
    assert tomllib.loads(_read(path))["declarative"]["projects"][0]["name"] == "decl"
    config = await _json(await client.get("/api/v1/admin/config", headers=ADMIN))
    assert config["declarative"]["projects"][0]["jobsets"][0]["check_interval"] == 30

    before = _read(path)
    for body, key in (
        ({"declarative": {"projects": [{"repository_url": "x"}]}}, "declarative.projects[0]"),
        ({"declarative": {"projectz": []}}, "declarative.projectz"),
        ({"declarative": {"projects": [{"name": "p", "repository_url": "u",
                                        "jobsets": [{"name": "j", "check_interval": -1}]}]}},
         "declarative.projects[0].jobsets[0].check_interval"),
        ({"toml": "[declarative]\nprojects = 3\n"}, "declarative.projects"),
        ({"toml": "[server]\nport = 1\n"}, "server"),
    ):
        resp = await client.put("/api/v1/admin/config", headers=ADMIN, json=body)
        assert resp.status == 400, body
        assert (await resp.json())["error"].startswith(key), await resp.text()
    assert _read(path) == before
    saved = await _json(await client.put("/api/v1/admin/config", headers=ADMIN, json={
        "toml": '[declarative]\n[[declarative.api_keys]]\nname = "k"\nkey = "s"\n'
                'role = "read-only"\n'}))
    assert saved["declarative"]["api_keys"][0]["name"] == "k"


async def test_news(client: TestClient) -> None:
    item = await _json(await client.post("/api/v1/news", headers=ADMIN,
                                         json={"title": "Maintenance", "content": "Sunday"}),
                       201)
    assert item["author"] == "admin key"
    listed = await _json(await client.get("/api/v1/news"))
    assert [n["title"] for n in listed["items"]] == ["Maintenance"] and listed["total"] == 1
    assert (await client.post("/api/v1/news", headers=ADMIN, json={"title": ""})).status == 400
    assert (await client.post("/api/v1/news", headers=bearer(READONLY_KEY),
                              json={"title": "x"})).status == 403
    await _json(await client.delete(f"/api/v1/news/{item['id']}", headers=ADMIN))
    assert (await client.delete(f"/api/v1/news/{item['id']}", headers=ADMIN)).status == 404


async def test_badges_and_latest(client: TestClient, pool: asyncpg.Pool) -> None:
    project = await seed_project(client, "proj")
    js = (await seed_jobset(client, project["id"], "main"))["id"]
    good = await insert_build(pool, js, "hello", state="finished", buildstatus=0)
    base = "/job/proj/main/hello"
    resp = await client.get(base + "/shield")
    assert resp.status == 200 and resp.content_type == "image/svg+xml"
    assert "passing" in await resp.text()
    await insert_build(pool, js, "hello", drv_path="/nix/store/h2.drv", state="finished",
                       buildstatus=1)
    badge = await (await client.get(base + "/badge")).text()
    assert badge.startswith("<svg") and "failing" in badge and ">hello<" in badge
    resp = await client.get(base + "/latest", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == f"/api/v1/builds/{good}"
    await insert_build(pool, js, "pending")
    assert "queued" in await (await client.get("/job/proj/main/pending/shield")).text()
    assert (await client.get("/job/proj/main/pending/latest",
                             allow_redirects=False)).status == 404
    assert (await client.get("/job/proj/main/nothing/badge")).status == 404
    assert (await client.get("/job/nope/main/hello/latest")).status == 404


async def test_prometheus_has_every_seed_metric(client: TestClient, pool: asyncpg.Pool
                                                ) -> None:
    project = await seed_project(client, "proj")
    js = (await seed_jobset(client, project["id"]))["id"]
    await insert_build(pool, js, "ok", state="finished", buildstatus=0)
    await insert_build(pool, js, "bad", state="finished", buildstatus=1)
    await insert_build(pool, js, "wait")
    await pool.execute("UPDATE builds SET started_at = now() - interval '8 seconds', "
                       "finished_at = now() WHERE state = 'finished'")
    resp = await client.get("/prometheus")
    assert resp.status == 200 and resp.content_type == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(await resp.text()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    expected = {
        ("circus_builds_total", (("status", "succeeded"),)): 1,
        ("circus_builds_total", (("status", "failed"),)): 1,
        ("circus_builds_total", (("status", "running"),)): 0,
        ("circus_builds_total", (("status", "pending"),)): 1,
        ("circus_builds_total", (("status", "all"),)): 3,
        ("circus_builds_avg_duration_seconds", ()): 8,
        ("circus_builds_duration_seconds", (("quantile", "0.5"),)): 8,
        ("circus_builds_duration_seconds", (("quantile", "0.95"),)): 8,
        ("circus_builds_duration_seconds", (("quantile", "0.99"),)): 8,
        ("circus_evaluations_total", ()): 0,
        ("circus_evaluations_by_status", (("status", "running"),)): 0,
        ("circus_queue_depth", ()): 1,
        ("circus_projects_total", ()): 1,
        ("circus_channels_total", ()): 0,
        ("circus_remote_builders_active", ()): 0,
        ("circus_project_builds_completed", (("project", "proj"),)): 2,
        ("circus_project_builds_failed", (("project", "proj"),)): 1,
    }
    for key, value in expected.items():
        assert key in samples, key
        assert round(samples[key]) == value, (key, samples[key])
