"""HTTP safety: 413, 429, CORS, security headers, repository URL schemes."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from circus.server.http.app import init_app
from circus.server.http.safety import SECURITY_HEADERS, RateLimiter
from tests.helpers.api import ADMIN


async def _client(aiohttp_client: Any, context: Any, **server: Any) -> TestClient:
    for key, value in server.items():
        setattr(context.config.server, key, value)
    return await aiohttp_client(await init_app(context))


async def test_body_too_large_is_413(aiohttp_client: Any, context: Any) -> None:
    client = await _client(aiohttp_client, context, max_body_size=256)
    resp = await client.post("/api/v1/auth/login",
                             json={"username": "dev", "password": "x" * 1000})
    assert resp.status == 413
    assert "too large" in (await resp.json())["error"]
    resp = await client.post("/api/v1/projects", headers=ADMIN,
                             json={"name": "p", "repository_url": "https://x.org/" + "a" * 500})
    assert resp.status == 413


async def test_rate_limit_is_429_per_client(aiohttp_client: Any, context: Any) -> None:
    client = await _client(aiohttp_client, context, rate_limit_rps=1, rate_limit_burst=3)
    answers = [await client.get("/api/v1/projects") for _ in range(10)]
    statuses = [r.status for r in answers]
    # The burst goes through; then the bucket is empty (it refills at 1/s).
    assert statuses[:3] == [200, 200, 200]
    assert 429 in statuses[3:]
    resp = answers[statuses.index(429)]
    assert "rate limit" in (await resp.json())["error"]
    assert int(resp.headers["Retry-After"]) >= 1
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_token_bucket_per_address() -> None:
    limiter = RateLimiter(rate=2.0, burst=2.0)
    assert [limiter.take("a", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.5]
    # Another address has its own bucket.
    assert limiter.take("b", now=0.0) == 0.0
    # Half a second later, one token is back for `a`.
    assert limiter.take("a", now=0.5) == 0.0
    assert limiter.take("a", now=0.5) > 0


async def test_security_headers_on_every_response(client: TestClient) -> None:
    for method, path, headers in [("GET", "/health", {}),
                                  ("GET", "/api/v1/projects", {}),
                                  ("GET", "/api/v1/nothing-here", {}),
                                  ("POST", "/api/v1/projects", {}),
                                  ("GET", "/api/v1/users", {"Authorization": "Bearer bad"})]:
        resp = await client.request(method, path, headers=headers)
        for name, value in SECURITY_HEADERS.items():
            assert resp.headers.get(name) == value, (path, resp.status, name)
    resp = await client.get("/api/v1/projects")
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Frame-Options"] == "DENY"


async def test_cors_for_allowed_origins(aiohttp_client: Any, context: Any) -> None:
    client = await _client(aiohttp_client, context,
                           allowed_origins=["https://ui.example.com"])
    resp = await client.options("/api/v1/projects", headers={
        "Origin": "https://ui.example.com", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Authorization, Content-Type"})
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == "https://ui.example.com"
    assert resp.headers["Access-Control-Allow-Credentials"] == "true"
    assert "POST" in resp.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]

    resp = await client.get("/api/v1/projects", headers={"Origin": "https://ui.example.com"})
    assert resp.status == 200
    assert resp.headers["Access-Control-Allow-Origin"] == "https://ui.example.com"
    assert "Origin" in resp.headers.getall("Vary")

    resp = await client.options("/api/v1/projects", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert resp.status == 403 and "not allowed" in (await resp.json())["error"]
    resp = await client.get("/api/v1/projects", headers={"Origin": "https://evil.example"})
    assert resp.status == 200 and "Access-Control-Allow-Origin" not in resp.headers


async def test_cors_permissive_and_off(aiohttp_client: Any, context: Any,
                                       client: TestClient) -> None:
    # Off by default: no CORS headers, a preflight is just an unknown method.
    resp = await client.get("/api/v1/projects", headers={"Origin": "https://any.example"})
    assert "Access-Control-Allow-Origin" not in resp.headers
    permissive = await _client(aiohttp_client, context, cors_permissive=True)
    resp = await permissive.options("/api/v1/builds", headers={
        "Origin": "https://any.example", "Access-Control-Request-Method": "GET"})
    assert resp.status == 204 and resp.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in resp.headers


@pytest.mark.parametrize(("url", "status"), [
    ("https://example.com/repo.git", 201),
    ("ssh://git@example.com/repo.git", 201),
    ("git+ssh://git@example.com/repo.git", 201),
    ("git://example.com/repo.git", 201),
    ("file:///etc", 400),
    ("/srv/git/repo", 400),
    ("ext::sh -c touch% /tmp/pwned", 400),
    ("ext::ssh", 400),
    ("fd::17", 400),
])
async def test_repository_url_schemes_by_default(client: TestClient, url: str,
                                                 status: int) -> None:
    resp = await client.post("/api/v1/projects", headers=ADMIN,
                             json={"name": "p", "repository_url": url})
    assert resp.status == status, await resp.text()
    if status == 400:
        assert (await resp.json())["error"].startswith("repository_url")


async def test_file_urls_when_allowed_but_never_ext(client: TestClient, context: Any) -> None:
    context.config.server.allowed_url_schemes = ["file", "https"]
    resp = await client.post("/api/v1/projects", headers=ADMIN,
                             json={"name": "local", "repository_url": "file:///srv/repo"})
    assert resp.status == 201
    resp = await client.post("/api/v1/projects", headers=ADMIN,
                             json={"name": "ext", "repository_url": "ext::ssh"})
    assert resp.status == 400 and "'ext'" in (await resp.json())["error"]
    # Also on update.
    project = (await (await client.get("/api/v1/projects/local")).json())["id"]
    resp = await client.put(f"/api/v1/projects/{project}", headers=ADMIN,
                            json={"repository_url": "ssh://example.com/r"})
    assert resp.status == 400


@pytest.mark.parametrize("raw", ["%C2%B2", "%D9%A1%D9%A2", "1" * 5000])
async def test_an_id_in_other_digits_or_too_long_is_a_404_on_every_front_end(
        client: TestClient, raw: str) -> None:
    # '²' and a 5 000-digit id pass str.isdigit() but not int(): they were 500s; '١٢'
    # was read as 12.
    asks = [("GET", f"/api/v1/builds/{raw}"), ("GET", f"/api/v1/projects/{raw}"),
            ("DELETE", f"/api/v1/api-keys/{raw}"), ("GET", f"/api/v1/users/{raw}"),
            ("GET", f"/build/{raw}"), ("GET", f"/eval/{raw}"), ("GET", f"/evaluation/{raw}"),
            ("GET", f"/project/{raw}")]
    for method, url in asks:
        for accept in ("application/json", "text/html"):
            resp = await client.request(method, url, headers={**ADMIN, "Accept": accept})
            assert resp.status == 404, (method, url, accept, resp.status, await resp.text())
