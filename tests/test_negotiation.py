"""One table decides who answers a URL several front ends serve (http/routes.SHARED):
each of its rows, asked for JSON and asked by a browser, answers the way the table says
against a real app; and no method and path is registered twice."""

from __future__ import annotations

import collections
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from circus.server import dashboard
from circus.server.http import routes
from circus.server.http.negotiation import JSON
from tests.helpers.api import insert_build, seed_jobset, seed_project

HTML = "text/html"
SVG = "image/svg+xml"
AS_JSON = {"Accept": JSON}
# What a browser sends for a page.
AS_BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
JOB = "/job/{project}/{jobset}/{job}"
# (method, path) → (content type asked for JSON, content type asked by a browser).
# None: no body (a redirect, a 204); `latest` is told apart by its Location.
EXPECTED: dict[tuple[str, str], tuple[str | None, str | None]] = {
    ("GET", "/"): (JSON, HTML),
    ("GET", "/project/{id}"): (JSON, HTML),
    ("PUT", "/project/{id}"): (JSON, JSON),
    ("DELETE", "/project/{id}"): (JSON, JSON),
    ("GET", "/jobset/{project}/{jobset}"): (JSON, HTML),
    ("PUT", "/jobset/{project}/{jobset}"): (JSON, JSON),
    ("DELETE", "/jobset/{project}/{jobset}"): (JSON, JSON),
    ("GET", "/eval/{id}"): (JSON, HTML),
    ("GET", "/build/{id}"): (JSON, HTML),
    ("GET", "/queue"): (JSON, HTML),
    ("GET", "/login"): (HTML, HTML),
    ("POST", "/login"): (JSON, JSON),  # a refused login: Hydra's 403 either way
    ("GET", "/logout"): (HTML, HTML),
    ("POST", "/logout"): (None, None),
    ("GET", JOB + "/shield"): (JSON, SVG),
    ("GET", JOB + "/latest"): (None, None),
}
ROWS = [(row.method, row.path) for row in routes.SHARED]


@pytest.fixture
async def seeded(client: TestClient, pool: asyncpg.Pool) -> dict[str, Any]:
    """A project, jobset, evaluation and successful build for every URL to find."""
    project = await seed_project(client, "demo")
    jobset = await seed_jobset(client, project["id"], "main")
    evaluation = await pool.fetchval(
        "INSERT INTO evaluations (jobset_id, status, commit_hash, inputs_hash, nr_jobs,"
        " nr_builds, finished_at) VALUES ($1, 'succeeded', 'abc123', 'x', 1, 1, now())"
        " RETURNING id", jobset["id"])
    build = await insert_build(pool, jobset["id"], "hello", state="finished", buildstatus=0)
    await pool.execute("UPDATE builds SET finished_at = now() WHERE id = $1", build)
    await pool.execute("INSERT INTO evaluation_builds (evaluation_id, build_id)"
                       " VALUES ($1, $2)", evaluation, build)
    return {"project": "demo", "jobset": "main", "job": "hello", "build": build,
            "eval": evaluation}


def _url(path: str, seeded: dict[str, Any]) -> str:
    if path.startswith(("/build/", "/eval/")):
        return path.format(id=seeded["build" if path.startswith("/build/") else "eval"])
    return path.format(id=seeded["project"], **seeded)


def _type(resp: Any) -> str | None:
    return resp.content_type if resp.status not in (204, 302) else None


def test_every_shared_row_is_checked_here() -> None:
    assert sorted(ROWS) == sorted(EXPECTED)


@pytest.mark.parametrize(("method", "path"), ROWS)
async def test_a_shared_url_answers_json_or_html_as_the_table_says(
        client: TestClient, seeded: dict[str, Any], method: str, path: str) -> None:
    url = _url(path, seeded)
    for headers, expected in zip((AS_JSON, AS_BROWSER), EXPECTED[method, path], strict=True):
        resp = await client.request(method, url, headers=headers, allow_redirects=False)
        assert resp.status < 500 and _type(resp) == expected, (method, url, headers,
                                                               resp.status)
        if method == "GET":  # HEAD answers as GET does
            head = await client.head(url, headers=headers, allow_redirects=False)
            assert (head.status, _type(head)) == (resp.status, expected)


async def test_latest_redirects_a_hydra_client_to_hydra_and_a_browser_to_the_api(
        client: TestClient, seeded: dict[str, Any]) -> None:
    url = _url(JOB + "/latest", seeded)
    hydra = await client.get(url, headers=AS_JSON, allow_redirects=False)
    browser = await client.get(url, headers=AS_BROWSER, allow_redirects=False)
    assert hydra.headers["Location"].endswith(f"/build/{seeded['build']}")
    assert browser.headers["Location"] == f"/api/v1/builds/{seeded['build']}"


async def test_a_shared_path_answers_an_unknown_method_with_all_of_its_own(
        client: TestClient, seeded: dict[str, Any]) -> None:
    resp = await client.post("/project/demo", headers=AS_JSON)
    assert resp.status == 405
    assert set(resp.headers["Allow"].split(",")) == {"GET", "HEAD", "PUT", "DELETE"}


@pytest.mark.parametrize(("headers", "query", "expected"), [
    ({"Accept": JSON}, "", JSON),
    ({"Accept": "application/json, text/plain, */*"}, "", JSON),  # axios, fetch wrappers
    ({}, "?output=json", JSON),
    ({"Accept": "*/*"}, "", HTML),  # curl
    ({}, "", HTML),  # no Accept at all
    (AS_BROWSER, "", HTML),
])
async def test_the_accept_rule(client: TestClient, seeded: dict[str, Any],
                               headers: dict[str, str], query: str, expected: str) -> None:
    resp = await client.get(f"/build/{seeded['build']}{query}", headers=headers,
                            skip_auto_headers=("Accept",))
    assert resp.status == 200
    assert resp.content_type == expected


def _shape(path: str) -> str:
    """A path with its parameters blanked: `/build/{id}` and `/build/{build_id}` clash."""
    out, depth = [], 0
    for ch in path:
        depth += ch == "{"
        if depth == 0:
            out.append(ch)
        elif ch == "{" and depth == 1:
            out.append("{}")
        depth -= ch == "}"
    return "".join(out)


def twice(app: web.Application) -> list[str]:
    """Each method and path more than one route answers (the later ones never run)."""
    seen: collections.Counter[str] = collections.Counter()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = str(info.get("formatter") or info.get("path") or info.get("prefix"))
        seen[f"{route.method} {_shape(path)}"] += 1
    return sorted(key for key, count in seen.items() if count > 1)


def _app() -> web.Application:
    app = web.Application()
    routes.setup_routes(app)
    dashboard.setup(app)
    return app


def test_no_method_and_path_is_registered_twice() -> None:
    assert twice(_app()) == []


def test_a_route_registered_twice_is_caught() -> None:
    app = _app()

    async def again(request: web.Request) -> web.Response:
        return web.Response()

    app.router.add_get("/build/{build_id}", again)
    assert twice(app) == ["GET /build/{}", "HEAD /build/{}"]


def test_the_table_names_each_method_and_path_once() -> None:
    counted = collections.Counter(ROWS)
    assert [row for row, count in counted.items() if count > 1] == []
