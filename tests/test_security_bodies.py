"""Issue 10, hole 10: a malformed body, content type, encoding or charset is a 400 that
names the problem on every write route — the REST API (from its OpenAPI document), the
Hydra API and the dashboard forms (from the router) — and never a 500."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient

from circus.app.context import Context
from circus.server.http.app import init_app
from tests.helpers.api import ADMIN, seed_jobset, seed_project

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")

# (what is wrong, headers, body, a word the 400's message must contain)
MALFORMED: list[tuple[str, dict[str, str], bytes, str]] = [
    ("multipart without boundary", {"Content-Type": "multipart/form-data"},
     b"--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--x--\r\n", "boundary"),
    ("multipart without boundary, empty", {"Content-Type": "multipart/form-data"}, b"",
     "boundary"),
    ("multipart garbage", {"Content-Type": "multipart/form-data; boundary=zz"},
     b"this is not multipart at all", "multipart"),
    ("multipart truncated", {"Content-Type": "multipart/form-data; boundary=zz"},
     b"--zz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1", "multipart"),
    ("form with unknown charset",
     {"Content-Type": "application/x-www-form-urlencoded; charset=no-such-charset"},
     b"username=a&password=b", "charset"),
    ("form not in its charset",
     {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
     b"username=\xff\xfe%ff&password=b", "utf-8"),
    ("json with unknown charset", {"Content-Type": "application/json; charset=klingon"},
     b"{}", "charset"),
    ("json not in its charset", {"Content-Type": "application/json; charset=utf-8"},
     b'{"name": "\xff\xfe"}', "utf-8"),
    ("json declared ascii, sent latin-1", {"Content-Type": "application/json; charset=ascii"},
     b'{"name": "caf\xe9"}', "ascii"),
    ("gzip that is not gzip", {"Content-Type": "application/json", "Content-Encoding": "gzip"},
     b"definitely not gzip", "encoding"),
    ("unknown content encoding",
     {"Content-Type": "application/json", "Content-Encoding": "rot13"}, b"{}", "encoding"),
    ("broken content type header", {"Content-Type": "application/json; charset=\"utf-8"},
     b"{}", "content-type"),
    ("content type without subtype", {"Content-Type": "multipart"}, b"{}", "content-type"),
]


def _fill(path: str, ids: dict[str, str]) -> str:
    """`/api/v1/projects/{id}/jobsets/{jobset_id}` with real ids (else a 404 stops us
    before the body is read)."""
    return re.sub(r"\{([^}:]+)(:[^}]*)?\}", lambda m: ids.get(m.group(1), "1"), path)


async def _openapi_writes(client: TestClient) -> set[tuple[str, str]]:
    resp = await client.get("/api/v1/openapi.json")
    document = await resp.json()
    return {(method.upper(), path) for path, item in document["paths"].items()
            for method in item if method.upper() in WRITE_METHODS}


def _router_writes(app: web.Application) -> set[tuple[str, str]]:
    """Hydra's URLs and the dashboard's forms are not in the OpenAPI document."""
    found = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if route.method in WRITE_METHODS and path:
            found.add((route.method, path))
    return found


async def _ids(client: TestClient) -> dict[str, str]:
    project = await seed_project(client, "bodies")
    jobset = await seed_jobset(client, project["id"])
    return {"id": str(project["id"]), "project_id": str(project["id"]),
            "jobset_id": str(jobset["id"]), "project": "bodies", "jobset": "main",
            "name": "bodies"}


# The configured key: DELETE /api/v1/api-keys/{id} cannot take it away mid-test.
CONFIG_KEY = "circus_bodies_config_key"


async def test_every_write_route_answers_400_to_malformed_bodies(aiohttp_client: Any,
                                                                 context: Context) -> None:
    context.config.server.api_key = CONFIG_KEY
    client = await aiohttp_client(await init_app(context))
    ids = await _ids(client)
    routes = await _openapi_writes(client) | _router_writes(client.server.app)
    # The attack of the issue: these ten answered 500.
    assert ("POST", "/api/v1/auth/login") in routes and ("POST", "/login") in routes
    assert len(routes) > 40, routes
    failures: list[str] = []
    for method, template in sorted(routes):
        path = _fill(template, ids)
        for what, headers, body, word in MALFORMED:
            try:
                resp = await client.request(method, path, data=body, headers={
                    "Authorization": f"Bearer {CONFIG_KEY}", **headers})
                status, text = resp.status, await resp.text()
            except aiohttp.ClientError as exc:  # the server dropped the connection
                status, text = 0, repr(exc)
            if status != 400 or word not in text.lower():
                failures.append(f"{method} {path} [{what}] → {status} {text[:120]}")
    assert not failures, "\n".join(failures[:60]) + f"\n({len(failures)} in all)"


async def test_the_400_is_json_on_the_api_and_names_the_problem(client: TestClient) -> None:
    resp = await client.post("/api/v1/auth/login", data=b"x",
                             headers={"Content-Type": "multipart/form-data"})
    assert resp.status == 400
    assert "boundary" in (await resp.json())["error"]
    # A well-formed form still reaches the view (which refuses it for its own reasons).
    resp = await client.post("/api/v1/auth/login", data={"username": "no", "password": "no"})
    assert resp.status in (401, 403), await resp.text()
    assert "body" not in (await resp.json())["error"]


async def test_well_formed_multipart_and_charsets_still_pass(client: TestClient) -> None:
    body = "username=caf\u00e9&password=x".encode("latin-1")
    resp = await client.post("/api/v1/auth/login", data=body, headers={
        "Content-Type": "application/x-www-form-urlencoded; charset=latin-1"})
    assert resp.status in (401, 403), await resp.text()
    assert "charset" not in (await resp.json())["error"]
    resp = await client.post("/api/v1/projects", headers={
        **ADMIN, "Content-Type": "application/json; charset=utf-8"},
        data=b'{"name": "ok", "repository_url": "https://example.com/r"}')
    assert resp.status == 201, await resp.text()

