"""Issue 10, hole 8: the login attacks, performed against the real server and database.

(a) open redirects through `next`; (b) login CSRF on every login front end; (c) sessions
that survive a password reset, a role change or a disable; (d) password guessing that
burns argon2 CPU or locks a user out for good.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from circus.server.accounts.sessions import COOKIE
from circus.server.http.app import init_app
from circus.services import passwords
from tests.helpers.api import ADMIN

PASSWORD = "correct horse battery"
EVIL = "https://evil.example"
TOKEN = re.compile(r'name="login_token" value="([^"]+)"')
NEXT = re.compile(r'name="next" value="([^"]*)"')


def origin(client: TestClient) -> dict[str, str]:
    """The header a browser sends with a form posted from one of this server's pages."""
    return {"Origin": str(client.make_url("")).rstrip("/")}


async def make_user(client: TestClient, username: str = "alice", role: str = "read-only",
                    password: str = PASSWORD) -> int:
    resp = await client.post("/api/v1/users", headers=ADMIN, json={
        "username": username, "password": password, "role": role})
    assert resp.status == 201, await resp.text()
    return (await resp.json())["id"]


async def rest_login(client: TestClient, username: str = "alice",
                     password: str = PASSWORD) -> str:
    """Log in over /api/v1 and return the raw session token, leaving the jar empty."""
    resp = await client.post("/api/v1/auth/login",
                             json={"username": username, "password": password})
    assert resp.status == 200, await resp.text()
    token = resp.cookies[COOKIE].value
    client.session.cookie_jar.clear()
    return token


async def me(client: TestClient, token: str) -> int:
    client.session.cookie_jar.clear()
    resp = await client.get("/api/v1/me", headers={"Cookie": f"{COOKIE}={token}"})
    return resp.status


async def sessions(pool: asyncpg.Pool) -> int:
    return await pool.fetchval("SELECT count(*) FROM sessions")


# (a) open redirect ------------------------------------------------------------------

# What a browser reads as another site once it strips tabs and newlines and turns
# backslashes into slashes, in the raw query string of GET /login?next=...
RAW_NEXTS = ["/%09/evil.example", "//evil.example", "/%5Cevil.example", "%2F%2Fevil.example",
             "https%3A%2F%2Fevil.example", "/%0D%0A/evil.example", "%09//evil.example",
             "/%5C/evil.example", "https:evil.example", "/%0A/evil.example"]
# The same as the login form's field (already decoded).
FORM_NEXTS = ["/\t/evil.example", "//evil.example", "/\\evil.example", EVIL + "/",
              "/\r\n/evil.example", "\t//evil.example", " //evil.example", "/\x0b/evil",
              "https:evil.example", "/\u3000/evil.example", "javascript:alert(1)"]


@pytest.mark.parametrize("raw", RAW_NEXTS)
async def test_login_page_keeps_only_a_local_next(client: TestClient, raw: str) -> None:
    resp = await client.get(f"/login?next={raw}")
    assert resp.status == 200
    assert NEXT.findall(await resp.text()) == ["/", "/"]


@pytest.mark.parametrize("target", FORM_NEXTS)
async def test_login_redirects_only_to_a_local_path(client: TestClient, target: str) -> None:
    await make_user(client)
    resp = await client.post("/dashboard/login", headers=origin(client), allow_redirects=False,
                             data={"username": "alice", "password": PASSWORD, "next": target})
    assert resp.status == 302, await resp.text()
    assert resp.headers["Location"] == "/"


async def test_a_local_next_is_followed(client: TestClient) -> None:
    await make_user(client)
    resp = await client.post("/dashboard/login", headers=origin(client), allow_redirects=False,
                             data={"username": "alice", "password": PASSWORD,
                                   "next": "/project/demo?tab=jobsets"})
    assert resp.status == 302
    assert resp.headers["Location"] == "/project/demo?tab=jobsets"


# (b) login CSRF ---------------------------------------------------------------------

async def test_cross_site_dashboard_login_is_refused(client: TestClient,
                                                     pool: asyncpg.Pool) -> None:
    """Another site posts the attacker's credentials into the victim's browser."""
    await make_user(client, "attacker")
    for headers in ({"Origin": EVIL}, {"Referer": EVIL + "/page"}, {"Origin": "null"}, {}):
        resp = await client.post("/dashboard/login", headers=headers, allow_redirects=False,
                                 data={"username": "attacker", "password": PASSWORD})
        assert resp.status == 403, (headers, await resp.text())
        assert "login" in await resp.text() and COOKIE not in resp.cookies
    assert await sessions(pool) == 0


async def test_the_dashboard_form_carries_a_login_token(client: TestClient,
                                                        pool: asyncpg.Pool) -> None:
    """A browser that sends neither Origin nor Referer still logs in with the form."""
    await make_user(client)
    page = await client.get("/login")
    token = TOKEN.search(await page.text())
    assert token, "the login form carries a pre-session token"
    resp = await client.post("/dashboard/login", allow_redirects=False,
                             data={"username": "alice", "password": PASSWORD,
                                   "login_token": token.group(1)})
    assert resp.status == 302 and COOKIE in resp.cookies
    # The token without its cookie (an attacker copying a token of their own) is refused.
    client.session.cookie_jar.clear()
    resp = await client.post("/dashboard/login", allow_redirects=False,
                             data={"username": "alice", "password": PASSWORD,
                                   "login_token": token.group(1)})
    assert resp.status == 403
    assert await sessions(pool) == 1


async def test_cross_site_hydra_and_api_logins_are_refused(client: TestClient,
                                                           pool: asyncpg.Pool) -> None:
    await make_user(client, "attacker")
    creds = {"username": "attacker", "password": PASSWORD}
    resp = await client.post("/login", data=creds, headers={"Origin": EVIL})
    assert resp.status == 403 and COOKIE not in resp.cookies
    assert "login" in (await resp.json())["error"]
    resp = await client.post("/api/v1/auth/login", data=creds, headers={"Origin": EVIL})
    assert resp.status == 403
    # <form enctype="text/plain"> can post a body that parses as JSON.
    resp = await client.post("/api/v1/auth/login", headers={"Content-Type": "text/plain"},
                             data=json.dumps({"username": "attacker", "password": PASSWORD}))
    assert resp.status == 403, await resp.text()
    assert "Content-Type: application/json" in (await resp.json())["error"]
    assert await sessions(pool) == 0


async def test_json_clients_keep_logging_in(client: TestClient, pool: asyncpg.Pool) -> None:
    """Hydra's clients POST /login with JSON; a browser cannot send that cross-site."""
    await make_user(client)
    resp = await client.post("/login", json={"username": "alice", "password": PASSWORD},
                             headers={"Accept": "application/json"})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["username"] == "alice"
    resp = await client.post("/api/v1/auth/login",
                             json={"username": "alice", "password": PASSWORD})
    assert resp.status == 200
    # And a same-origin browser form still works on Hydra's URL.
    resp = await client.post("/login", headers=origin(client), allow_redirects=False,
                             data={"username": "alice", "password": PASSWORD})
    assert resp.status == 302
    assert await sessions(pool) == 3


# (c) sessions end when the account changes ------------------------------------------

@pytest.mark.parametrize("change", [{"password": "a brand new password"},
                                    {"role": "admin"}, {"enabled": False}])
async def test_an_admin_change_ends_the_users_sessions(client: TestClient,
                                                       change: dict[str, Any]) -> None:
    user_id = await make_user(client)
    stolen = await rest_login(client)
    assert await me(client, stolen) == 200
    resp = await client.put(f"/api/v1/users/{user_id}", headers=ADMIN, json=change)
    assert resp.status == 200, await resp.text()
    if change == {"enabled": False}:
        # Enabled again: the old session must not come back with the account.
        resp = await client.put(f"/api/v1/users/{user_id}", headers=ADMIN,
                                json={"enabled": True})
        assert resp.status == 200
    assert await me(client, stolen) == 401


async def test_an_unchanged_update_keeps_sessions(client: TestClient) -> None:
    user_id = await make_user(client)
    token = await rest_login(client)
    resp = await client.put(f"/api/v1/users/{user_id}", headers=ADMIN,
                            json={"full_name": "Alice"})
    assert resp.status == 200
    assert await me(client, token) == 200


async def test_dashboard_role_change_ends_the_users_sessions(client: TestClient) -> None:
    user_id = await make_user(client)
    token = await rest_login(client)
    resp = await client.post(f"/dashboard/users/{user_id}", headers=ADMIN, allow_redirects=False,
                             data={"role": "cancel-build", "enabled": "on"})
    assert resp.status in (302, 303), await resp.text()
    assert await me(client, token) == 401


async def test_own_password_change_ends_only_the_other_sessions(client: TestClient) -> None:
    await make_user(client)
    other = await rest_login(client)
    resp = await client.post("/api/v1/auth/login",
                             json={"username": "alice", "password": PASSWORD})
    mine = resp.cookies[COOKIE].value
    csrf = (await resp.json())["csrf_token"]
    resp = await client.post("/api/v1/me/password", headers={"X-CSRF-Token": csrf}, json={
        "current_password": PASSWORD, "new_password": "an even better one"})
    assert resp.status == 200, await resp.text()
    assert await me(client, mine) == 200
    assert await me(client, other) == 401


# (d) throttles ----------------------------------------------------------------------

@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every argon2 verification the server runs (a spy: the real verify still runs)."""
    seen: list[str] = []
    lock = threading.Lock()
    real: Callable[[str | None, str], bool] = passwords.verify

    def counting(password_hash: str | None, password: str) -> bool:
        with lock:
            seen.append(password)
        return real(password_hash, password)

    monkeypatch.setattr(passwords, "verify", counting)
    return seen


async def _throttled(aiohttp_client: Any, context: Any, **server: Any) -> TestClient:
    for key, value in server.items():
        setattr(context.config.server, key, value)
    return await aiohttp_client(await init_app(context))


async def test_account_backoff_is_checked_before_hashing(aiohttp_client: Any, context: Any,
                                                         hashes: list[str]) -> None:
    client = await _throttled(aiohttp_client, context, login_free_failures=3,
                              login_backoff_max=2)
    await make_user(client)
    statuses = []
    for _ in range(8):
        resp = await client.post("/api/v1/auth/login",
                                 json={"username": "alice", "password": "guess"})
        statuses.append(resp.status)
    assert statuses[:3] == [401, 401, 401]
    assert 429 in statuses[3:]
    refused = resp
    assert int(refused.headers["Retry-After"]) >= 1
    assert "alice" in (await refused.json())["error"]
    # Refused attempts never reached argon2, and did not lengthen the wait.
    assert len(hashes) == statuses.count(401)
    # Even the right password waits out the block...
    resp = await client.post("/api/v1/auth/login",
                             json={"username": "alice", "password": PASSWORD})
    assert resp.status == 429
    # ...and then gets in: the attacker could not lock alice out for good.
    await asyncio.sleep(int(resp.headers["Retry-After"]) + 0.2)
    resp = await client.post("/api/v1/auth/login",
                             json={"username": "alice", "password": PASSWORD})
    assert resp.status == 200, await resp.text()


async def test_every_front_end_shares_the_account_throttle(aiohttp_client: Any, context: Any,
                                                           hashes: list[str]) -> None:
    client = await _throttled(aiohttp_client, context, login_free_failures=3,
                              login_backoff_max=60)
    await make_user(client)
    bad = {"username": "alice", "password": "guess"}
    resp = await client.post("/login", json=bad, headers={"Accept": "application/json"})
    assert resp.status == 403 and (await resp.json())["error"] == "Bad username or password."
    resp = await client.post("/dashboard/login", data=bad, headers=origin(client))
    assert resp.status == 401
    resp = await client.post("/api/v1/auth/login", json=bad)
    assert resp.status == 401
    for path in ("/login", "/api/v1/auth/login"):
        resp = await client.post(path, json={"username": "alice", "password": PASSWORD})
        assert resp.status == 429, (path, await resp.text())
        assert int(resp.headers["Retry-After"]) >= 1
    resp = await client.post("/dashboard/login", headers=origin(client),
                             data={"username": "alice", "password": PASSWORD})
    assert resp.status == 429 and "Retry-After" in resp.headers
    assert "too many failed logins" in await resp.text()
    assert len(hashes) == 3


async def test_one_address_cannot_burn_the_cpu(aiohttp_client: Any, context: Any,
                                               hashes: list[str], pool: asyncpg.Pool) -> None:
    """Spraying many account names from one address: the bucket stops it before argon2."""
    client = await _throttled(aiohttp_client, context, login_attempts_burst=5,
                              login_attempts_per_minute=1)
    statuses = []
    for i in range(12):
        resp = await client.post("/api/v1/auth/login",
                                 json={"username": f"user{i}", "password": "guess"})
        statuses.append(resp.status)
    assert statuses == [401] * 5 + [429] * 7
    assert "address" in (await resp.json())["error"]
    assert int(resp.headers["Retry-After"]) >= 1
    assert len(hashes) == 5
    # One bucket for the address, whatever names it tried.
    assert await pool.fetchval("SELECT count(*) FROM login_address_throttle") == 1


async def test_success_forgets_the_accounts_failures(aiohttp_client: Any, context: Any,
                                                     pool: asyncpg.Pool) -> None:
    client = await _throttled(aiohttp_client, context, login_free_failures=2)
    await make_user(client)
    for _ in range(2):
        resp = await client.post("/api/v1/auth/login",
                                 json={"username": "alice", "password": "typo"})
        assert resp.status == 401
    # The third attempt is blocked for 1 s; wait it out, then log in.
    await asyncio.sleep(1.2)
    await rest_login(client)
    assert await pool.fetchval("SELECT count(*) FROM login_account_throttle") == 0
    resp = await client.post("/api/v1/auth/login",
                             json={"username": "alice", "password": "typo"})
    assert resp.status == 401


async def test_a_stolen_session_cannot_guess_the_password(aiohttp_client: Any, context: Any,
                                                          hashes: list[str]) -> None:
    """Changing one's password checks the current one: the same throttle as a login."""
    client = await _throttled(aiohttp_client, context, login_free_failures=3,
                              login_backoff_max=60)
    await make_user(client)
    resp = await client.post("/api/v1/auth/login",
                             json={"username": "alice", "password": PASSWORD})
    csrf = {"X-CSRF-Token": (await resp.json())["csrf_token"]}
    hashes.clear()
    statuses = []
    for i in range(6):
        resp = await client.post("/api/v1/me/password", headers=csrf, json={
            "current_password": f"guess {i}", "new_password": "the attacker's own"})
        statuses.append(resp.status)
    assert statuses == [403, 403, 403, 429, 429, 429]
    assert "too many failed logins" in (await resp.json())["error"]
    assert len(hashes) == 3
