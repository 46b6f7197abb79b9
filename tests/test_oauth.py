"""GitHub OAuth login against a local HTTP server that speaks GitHub's OAuth endpoints."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from circus.server.accounts.oauth import STATE_COOKIE
from circus.server.accounts.sessions import COOKIE
from circus.server.http.app import init_app
from tests.helpers.api import ADMIN

CLIENT_ID = "Iv1.circus-test"
CLIENT_SECRET = "shh-client-secret"


@attrs.define
class FakeGitHub:
    """GitHub's authorize page (it approves at once), token exchange and /user."""

    user: dict[str, Any] = attrs.Factory(lambda: {"id": 4242, "login": "octocat",
                                                  "name": "The Octocat",
                                                  "email": "octo@example.com"})
    codes: dict[str, str] = attrs.Factory(dict)
    tokens: set[str] = attrs.Factory(set)
    redirect_uris: list[str] = attrs.Factory(list)

    async def authorize(self, request: web.Request) -> web.Response:
        query = request.query
        assert query["client_id"] == CLIENT_ID and "read:user" in query["scope"]
        self.redirect_uris.append(query["redirect_uri"])
        code = secrets.token_hex(8)
        self.codes[code] = query["redirect_uri"]
        target = f"{query['redirect_uri']}?code={code}&state={query['state']}"
        return web.Response(status=302, headers={"Location": target})

    async def access_token(self, request: web.Request) -> web.Response:
        form = await request.post()
        assert request.headers["Accept"] == "application/json"
        if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
            return web.json_response({"error": "incorrect_client_credentials"})
        if self.codes.pop(str(form.get("code")), None) is None:
            # What GitHub answers for a used or made-up code: 200 with an error.
            return web.json_response({"error": "bad_verification_code"})
        token = "gho_" + secrets.token_hex(10)
        self.tokens.add(token)
        return web.json_response({"access_token": token, "token_type": "bearer",
                                  "scope": "read:user,user:email"})

    async def user_endpoint(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.tokens:
            return web.json_response({"message": "Bad credentials"}, status=401)
        return web.json_response(self.user)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/login/oauth/authorize", self.authorize)
        app.router.add_post("/login/oauth/access_token", self.access_token)
        app.router.add_get("/user", self.user_endpoint)
        return app


@pytest.fixture
async def github() -> AsyncIterator[tuple[FakeGitHub, str]]:
    fake = FakeGitHub()
    server = TestServer(fake.app())
    await server.start_server()
    yield fake, str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
async def oauth_client(aiohttp_client: Any, context: Any,
                       github: tuple[FakeGitHub, str]) -> TestClient:
    _fake, base = github
    settings = context.config.oauth.github
    settings.client_id = CLIENT_ID
    settings.client_secret = CLIENT_SECRET
    settings.authorize_url = f"{base}/login/oauth/authorize"
    settings.token_url = f"{base}/login/oauth/access_token"
    settings.api_url = base
    return await aiohttp_client(await init_app(context))


async def _to_github(client: TestClient) -> str:
    """Start the login; the URL GitHub sends the browser back to."""
    resp = await client.get("/api/v1/auth/github", allow_redirects=False)
    assert resp.status == 302
    assert resp.cookies[STATE_COOKIE]["httponly"] is True
    location = resp.headers["Location"]
    async with client.session.get(location, allow_redirects=False) as github_resp:
        assert github_resp.status == 302
        return github_resp.headers["Location"]


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def test_github_login_creates_a_read_only_user(oauth_client: TestClient,
                                                     github: tuple[FakeGitHub, str],
                                                     pool: Any) -> None:
    back = await _to_github(oauth_client)
    state = parse_qs(urlsplit(back).query)["state"][0]
    assert await pool.fetchval("SELECT count(*) FROM oauth_states") == 1
    # Only the state's hash is kept.
    assert await pool.fetchval("SELECT state_hash FROM oauth_states") != state
    resp = await oauth_client.get(_path(back), allow_redirects=False)
    assert resp.status == 302, await resp.text()
    assert resp.headers["Location"] == "/"
    assert resp.cookies[COOKIE]["httponly"] is True
    me = await (await oauth_client.get("/api/v1/me")).json()
    assert (me["username"], me["role"], me["auth_source"]) == ("octocat", "read-only",
                                                                "github")
    assert me["email"] == "octo@example.com" and me["full_name"] == "The Octocat"
    # The redirect_uri defaults to our own callback.
    assert github[0].redirect_uris[0].endswith("/api/v1/auth/github/callback")

    # A second login links to the same user, even after a rename on GitHub.
    github[0].user["login"] = "octocat-renamed"
    oauth_client.session.cookie_jar.clear()
    resp = await oauth_client.get(_path(await _to_github(oauth_client)),
                                  allow_redirects=False)
    assert resp.status == 302
    me2 = await (await oauth_client.get("/api/v1/me")).json()
    assert me2["id"] == me["id"]
    assert await pool.fetchval("SELECT count(*) FROM users") == 1


async def test_state_is_checked(oauth_client: TestClient) -> None:
    back = await _to_github(oauth_client)
    query = parse_qs(urlsplit(back).query)
    code, state = query["code"][0], query["state"][0]
    # A state this browser did not start.
    resp = await oauth_client.get(f"/api/v1/auth/github/callback?code={code}&state=forged",
                                  allow_redirects=False)
    assert resp.status == 400 and "state" in (await resp.json())["error"]
    # Without the browser's state cookie (a login started elsewhere, replayed here).
    resp = await oauth_client.get(f"/api/v1/auth/github/callback?code={code}&state={state}",
                                  allow_redirects=False, cookies={STATE_COOKIE: "other"})
    assert resp.status == 400
    resp = await oauth_client.get("/api/v1/auth/github/callback", allow_redirects=False)
    assert resp.status == 400
    # The real one works once; a replay of the same state is refused.
    resp = await oauth_client.get(_path(back), allow_redirects=False)
    assert resp.status == 302
    resp = await oauth_client.get(_path(back), allow_redirects=False,
                                  cookies={STATE_COOKIE: state})
    assert resp.status == 400 and "already used" in (await resp.json())["error"]


async def test_bad_code_and_denied_login(oauth_client: TestClient) -> None:
    back = await _to_github(oauth_client)
    state = parse_qs(urlsplit(back).query)["state"][0]
    resp = await oauth_client.get(f"/api/v1/auth/github/callback?code=made-up&state={state}",
                                  allow_redirects=False)
    assert resp.status == 400 and "bad_verification_code" in (await resp.json())["error"]
    resp = await oauth_client.get("/api/v1/auth/github/callback?error=access_denied",
                                  allow_redirects=False)
    assert resp.status == 400 and "access_denied" in (await resp.json())["error"]
    assert COOKIE not in resp.cookies


async def test_local_account_of_the_same_name_is_not_taken(oauth_client: TestClient) -> None:
    resp = await oauth_client.post("/api/v1/users", headers=ADMIN,
                                   json={"username": "octocat", "password": "local password",
                                         "role": "admin"})
    assert resp.status == 201
    resp = await oauth_client.get(_path(await _to_github(oauth_client)),
                                  allow_redirects=False)
    assert resp.status == 302
    me = await (await oauth_client.get("/api/v1/me")).json()
    assert (me["username"], me["role"]) == ("octocat@github", "read-only")


async def test_github_not_configured(client: TestClient) -> None:
    resp = await client.get("/api/v1/auth/github", allow_redirects=False)
    assert resp.status == 404 and "not configured" in (await resp.json())["error"]
