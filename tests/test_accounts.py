"""Accounts: password and API-key login with a session cookie, CSRF, logout, API keys,
users and /me, and what each role may do on the routes that exist."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from circus.server.accounts import auth
from circus.server.accounts.sessions import COOKIE
from tests.helpers.api import (
    ADMIN,
    READONLY_KEY,
    ROLE_KEYS,
    bearer,
    seed_jobset,
    seed_project,
)

PASSWORD = "correct horse battery"


async def make_user(client: TestClient, username: str = "dev", role: str = "read-only",
                    password: str = PASSWORD, **extra: Any) -> dict[str, Any]:
    resp = await client.post("/api/v1/users", headers=ADMIN, json={
        "username": username, "password": password, "role": role, **extra})
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def login(client: TestClient, username: str = "dev",
                password: str = PASSWORD) -> dict[str, Any]:
    resp = await client.post("/api/v1/auth/login",
                             json={"username": username, "password": password})
    assert resp.status == 200, await resp.text()
    return await resp.json()


def csrf(doc: dict[str, Any]) -> dict[str, str]:
    return {"X-CSRF-Token": doc["csrf_token"]}


async def test_password_login_sets_a_safe_session_cookie(client: TestClient,
                                                         pool: asyncpg.Pool) -> None:
    user = await make_user(client, email="dev@example.com")
    assert "password" not in user and "password_hash" not in user
    resp = await client.post("/api/v1/auth/login",
                             json={"username": "dev", "password": PASSWORD})
    assert resp.status == 200
    body = await resp.json()
    assert (body["kind"], body["username"], body["role"]) == ("user", "dev", "read-only")
    assert body["csrf_token"] and body["expires_at"]
    cookie = resp.cookies[COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["max-age"] == str(24 * 3600)
    assert not cookie["secure"]
    # Stored hashed: the raw token appears nowhere in the database.
    stored = await pool.fetchval("SELECT token_hash FROM sessions")
    assert stored != cookie.value and len(stored) == 64
    assert (await pool.fetchval("SELECT password_hash FROM users")).startswith("$argon2id$")

    me = await client.get("/api/v1/me")
    assert me.status == 200
    doc = await me.json()
    assert doc["username"] == "dev" and doc["email"] == "dev@example.com"
    assert doc["csrf_token"] == body["csrf_token"] and doc["permissions"] == []
    assert await pool.fetchval("SELECT last_login_at IS NOT NULL FROM users") is True


async def test_secure_cookie_when_forced(aiohttp_client: Any, context: Any,
                                         client: TestClient) -> None:
    from circus.server.http.app import init_app

    await make_user(client)
    context.config.server.force_secure_cookies = True
    secure = await aiohttp_client(await init_app(context))
    resp = await secure.post("/api/v1/auth/login",
                             json={"username": "dev", "password": PASSWORD})
    assert resp.status == 200
    assert resp.cookies[COOKIE]["secure"] is True
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=")


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"username": "dev", "password": "wrong password"}, 401, "invalid username or password"),
    ({"username": "nobody", "password": PASSWORD}, 401, "invalid username or password"),
    ({"username": "dev"}, 400, "password: is required"),
    ({"api_key": "circus_not_a_key"}, 401, "unknown API key"),
])
async def test_bad_logins_are_refused(client: TestClient, body: dict[str, Any], status: int,
                                      message: str) -> None:
    await make_user(client)
    resp = await client.post("/api/v1/auth/login", json=body)
    assert resp.status == status
    assert message in (await resp.json())["error"]
    assert COOKIE not in resp.cookies


async def test_cookie_writes_need_the_csrf_token(client: TestClient) -> None:
    await make_user(client, role="create-projects")
    session = await login(client)
    project = {"name": "p1", "repository_url": "https://example.com/p1"}
    resp = await client.post("/api/v1/projects", json=project)
    assert resp.status == 403
    assert "CSRF" in (await resp.json())["error"]
    resp = await client.post("/api/v1/projects", json=project,
                             headers={"X-CSRF-Token": "forged"})
    assert resp.status == 403 and "CSRF" in (await resp.json())["error"]
    resp = await client.post("/api/v1/projects", json=project, headers=csrf(session))
    assert resp.status == 201, await resp.text()
    # Reads need no token.
    assert (await client.get("/api/v1/me")).status == 200


async def test_csrf_token_as_a_form_field(client: TestClient) -> None:
    await make_user(client)
    # A form login comes from this server's own page (login CSRF: tests/test_security_login).
    resp = await client.post("/api/v1/auth/login",
                             data={"username": "dev", "password": PASSWORD},
                             headers={"Origin": str(client.make_url("")).rstrip("/")})
    assert resp.status == 200
    token = (await resp.json())["csrf_token"]
    resp = await client.post("/api/v1/auth/logout", data={"csrf_token": "nope"})
    assert resp.status == 403
    resp = await client.post("/api/v1/auth/logout", data={"csrf_token": token})
    assert resp.status == 200 and (await resp.json()) == {"logged_out": True}


async def test_bearer_writes_need_no_csrf_even_with_a_cookie(client: TestClient) -> None:
    await make_user(client)
    await login(client)
    resp = await client.post("/api/v1/projects", headers=ADMIN,
                             json={"name": "p2", "repository_url": "https://example.com/p2"})
    assert resp.status == 201


async def test_logout_ends_the_session(client: TestClient, pool: asyncpg.Pool) -> None:
    await make_user(client)
    session = await login(client)
    token = client.session.cookie_jar.filter_cookies(client.make_url("/"))[COOKIE].value
    resp = await client.post("/api/v1/auth/logout", headers=csrf(session))
    assert resp.status == 200 and (await resp.json()) == {"logged_out": True}
    assert resp.cookies[COOKIE].value == ""
    assert await pool.fetchval("SELECT count(*) FROM sessions") == 0
    assert (await client.get("/api/v1/me")).status == 401
    # The old cookie, replayed, opens nothing.
    resp = await client.get("/api/v1/me", cookies={COOKIE: token})
    assert resp.status == 401


async def test_disabled_user_loses_the_session_at_once(client: TestClient) -> None:
    user = await make_user(client)
    await login(client)
    resp = await client.put(f"/api/v1/users/{user['id']}", headers=ADMIN,
                            json={"enabled": False})
    assert resp.status == 200 and (await resp.json())["enabled"] is False
    assert (await client.get("/api/v1/me")).status == 401
    resp = await client.post("/api/v1/auth/login",
                             json={"username": "dev", "password": PASSWORD})
    assert resp.status == 403 and "disabled" in (await resp.json())["error"]


async def test_api_key_login_and_revocation(client: TestClient, pool: asyncpg.Pool) -> None:
    resp = await client.post("/api/v1/api-keys", headers=ADMIN,
                             json={"name": "ci bot", "role": "eval-jobset"})
    assert resp.status == 201
    created = await resp.json()
    key = created["key"]
    assert key.startswith("circus_") and created["role"] == "eval-jobset"
    assert await pool.fetchval("SELECT key_hash FROM api_keys WHERE id = $1",
                               created["id"]) != key

    listed = await (await client.get("/api/v1/api-keys", headers=ADMIN)).json()
    mine = [k for k in listed["items"] if k["id"] == created["id"]]
    assert mine and mine[0]["last_used_at"] is None
    assert all("key" not in k and "key_hash" not in k for k in listed["items"])
    assert listed["total"] == len(ROLE_KEYS) + 1

    me = await client.get("/api/v1/me", headers=bearer(key))
    assert (await me.json())["kind"] == "api_key"
    resp = await client.post("/api/v1/auth/login", json={"api_key": key})
    assert resp.status == 200
    session = await resp.json()
    assert (session["kind"], session["name"], session["role"]) == ("api_key", "ci bot",
                                                                    "eval-jobset")
    assert (await client.get("/api/v1/me")).status == 200
    listed = await (await client.get("/api/v1/api-keys", headers=ADMIN)).json()
    assert next(k for k in listed["items"] if k["id"] == created["id"])["last_used_at"]

    resp = await client.delete(f"/api/v1/api-keys/{created['id']}", headers=ADMIN)
    assert resp.status == 200
    # Deleted: the key and the session opened with it stop working at once.
    resp = await client.get("/api/v1/me", headers=bearer(key))
    assert resp.status == 401 and "unknown API key" in (await resp.json())["error"]
    assert (await client.get("/api/v1/me")).status == 401
    assert (await client.delete(f"/api/v1/api-keys/{created['id']}",
                                headers=ADMIN)).status == 404


async def test_api_keys_are_admin_only_and_validated(client: TestClient) -> None:
    assert (await client.get("/api/v1/api-keys")).status == 401
    resp = await client.get("/api/v1/api-keys", headers=bearer(READONLY_KEY))
    assert resp.status == 403
    resp = await client.post("/api/v1/api-keys", headers=ADMIN,
                             json={"name": "x", "role": "superuser"})
    assert resp.status == 400 and "role" in (await resp.json())["error"]
    resp = await client.post("/api/v1/api-keys", headers=ADMIN, json={"name": ""})
    assert resp.status == 400 and "name" in (await resp.json())["error"]


async def test_users_api(client: TestClient) -> None:
    created = await make_user(client, "alice", role="cancel-build", email="a@example.com",
                              full_name="Alice")
    assert created["auth_source"] == "local" and created["enabled"] is True
    resp = await client.post("/api/v1/users", headers=ADMIN,
                             json={"username": "alice", "password": PASSWORD})
    assert resp.status == 409 and "username" in (await resp.json())["error"]
    for body, field in [({"username": "bob", "password": "short"}, "password"),
                        ({"username": "bob", "role": "root"}, "role"),
                        ({"username": "bad name"}, "username"),
                        ({"username": "bob", "email": "not-an-email"}, "email")]:
        resp = await client.post("/api/v1/users", headers=ADMIN, json=body)
        assert resp.status == 400, body
        assert (await resp.json())["error"].startswith(field)

    listed = await (await client.get("/api/v1/users", headers=ADMIN)).json()
    assert [u["username"] for u in listed["items"]] == ["alice"] and listed["total"] == 1
    assert "password_hash" not in listed["items"][0]
    one = await client.get(f"/api/v1/users/{created['id']}", headers=ADMIN)
    assert (await one.json())["full_name"] == "Alice"
    resp = await client.put(f"/api/v1/users/{created['id']}", headers=ADMIN,
                            json={"role": "admin", "password": "a brand new one"})
    assert resp.status == 200 and (await resp.json())["role"] == "admin"
    await login(client, "alice", "a brand new one")

    resp = await client.delete(f"/api/v1/users/{created['id']}", headers=ADMIN)
    assert resp.status == 200
    assert (await client.get("/api/v1/me")).status == 401
    assert (await client.get(f"/api/v1/users/{created['id']}", headers=ADMIN)).status == 404
    assert (await client.get("/api/v1/users", headers=bearer(READONLY_KEY))).status == 403
    assert (await client.get("/api/v1/users")).status == 401


async def test_me_profile_and_password(client: TestClient, pool: asyncpg.Pool) -> None:
    await make_user(client)
    session = await login(client)
    resp = await client.put("/api/v1/me", headers=csrf(session),
                            json={"email": "me@example.com", "full_name": "Dee Veloper"})
    assert resp.status == 200
    assert (await resp.json())["email"] == "me@example.com"
    resp = await client.put("/api/v1/me", headers=csrf(session), json={"role": "admin"})
    assert resp.status == 400 and (await resp.json())["error"].startswith("role")

    # Two browsers: A logged in above, B now.
    token_a = client.session.cookie_jar.filter_cookies(client.make_url("/"))[COOKIE].value
    session_b = await login(client)
    resp = await client.post("/api/v1/me/password", headers=csrf(session_b),
                             json={"current_password": "wrong one", "new_password": "x" * 12})
    assert resp.status == 403 and "current_password" in (await resp.json())["error"]
    resp = await client.post("/api/v1/me/password", headers=csrf(session_b),
                             json={"current_password": PASSWORD, "new_password": "short"})
    assert resp.status == 400 and (await resp.json())["error"].startswith("new_password")
    resp = await client.post("/api/v1/me/password", headers=csrf(session_b),
                             json={"current_password": PASSWORD,
                                   "new_password": "a much better one"})
    assert resp.status == 200
    # B goes on; A, opened with the old password, is over.
    assert (await client.get("/api/v1/me")).status == 200
    assert (await client.get("/api/v1/me", cookies={COOKIE: token_a})).status == 401
    assert await pool.fetchval("SELECT count(*) FROM sessions") == 1
    resp = await client.post("/api/v1/auth/login",
                             json={"username": "dev", "password": PASSWORD})
    assert resp.status == 401
    await login(client, "dev", "a much better one")


async def test_me_with_a_key_and_without_credentials(client: TestClient) -> None:
    resp = await client.get("/api/v1/me", headers=ADMIN)
    doc = await resp.json()
    assert (doc["kind"], doc["role"], doc["csrf_token"]) == ("api_key", "admin", None)
    assert set(doc["permissions"]) == auth.PERMISSIONS
    assert (await client.get("/api/v1/me")).status == 401
    # Profile and stars belong to users, not keys.
    resp = await client.put("/api/v1/me", headers=ADMIN, json={"full_name": "x"})
    assert resp.status == 403 and "not a user account" in (await resp.json())["error"]
    assert (await client.get("/api/v1/me/starred-jobs", headers=ADMIN)).status == 403


async def test_starred_jobs(client: TestClient) -> None:
    project = await seed_project(client)
    jobset = await seed_jobset(client, project["id"])
    await make_user(client)
    session = await login(client)
    star = {"jobset_id": jobset["id"], "job": "hello"}
    resp = await client.post("/api/v1/me/starred-jobs", json=star)
    assert resp.status == 403  # CSRF
    resp = await client.post("/api/v1/me/starred-jobs", json=star, headers=csrf(session))
    assert resp.status == 201
    starred = await resp.json()
    assert (starred["project"], starred["jobset"], starred["job"]) == ("demo", "main",
                                                                       "hello")
    again = await client.post("/api/v1/me/starred-jobs", json=star, headers=csrf(session))
    assert again.status == 200 and (await again.json())["id"] == starred["id"]
    resp = await client.post("/api/v1/me/starred-jobs", headers=csrf(session),
                             json={"jobset_id": 999999, "job": "x"})
    assert resp.status == 404
    listed = await (await client.get("/api/v1/me/starred-jobs")).json()
    assert [s["job"] for s in listed["items"]] == ["hello"] and listed["total"] == 1

    # Another user cannot remove it.
    await make_user(client, "eve")
    client.session.cookie_jar.clear()
    eve = await login(client, "eve")
    resp = await client.delete(f"/api/v1/me/starred-jobs/{starred['id']}", headers=csrf(eve))
    assert resp.status == 404
    client.session.cookie_jar.clear()
    session = await login(client)
    resp = await client.delete(f"/api/v1/me/starred-jobs/{starred['id']}",
                               headers=csrf(session))
    assert resp.status == 200
    listed = await (await client.get("/api/v1/me/starred-jobs")).json()
    assert listed["items"] == []


async def test_the_role_table_is_the_seeds() -> None:
    assert set(auth.ROLES) == {"admin", "read-only", "create-projects", "eval-jobset",
                               "cancel-build", "restart-jobs", "bump-to-front"}
    assert auth.ROLE_PERMISSIONS["admin"] == auth.PERMISSIONS
    assert auth.ROLE_PERMISSIONS["read-only"] == frozenset()


# Each role against the writes that exist now: (method, path template, permission).
ROLE_CASES = [
    ("POST", "/api/v1/projects", auth.CREATE_PROJECT),
    ("POST", "/api/v1/projects/{project}/jobsets", auth.CREATE_JOBSET),
    ("PUT", "/api/v1/projects/{project}", auth.ADMIN),
    ("POST", "/api/v1/evaluations/trigger", auth.TRIGGER),
    ("POST", "/api/v1/users", auth.ADMIN),
    ("POST", "/api/v1/api-keys", auth.ADMIN),
]


def _body(path: str, jobset_id: int, n: int) -> dict[str, Any]:
    if path == "/api/v1/projects":
        return {"name": f"p{n}", "repository_url": "https://example.com/x"}
    if path.endswith("/jobsets"):
        return {"name": f"j{n}"}
    if path.endswith("/trigger"):
        return {"jobset_id": jobset_id}
    if path == "/api/v1/users":
        return {"username": f"u{n}", "password": PASSWORD}
    if path == "/api/v1/api-keys":
        return {"name": f"k{n}"}
    return {"description": f"d{n}"}


@pytest.mark.parametrize("role", sorted(ROLE_KEYS))
async def test_each_role_may_do_what_its_row_says(client: TestClient, role: str) -> None:
    project = await seed_project(client)
    jobset = await seed_jobset(client, project["id"])
    # The same role as a user with a session, and as a key: both count alike.
    await make_user(client, "roleuser", role=role)
    session = await login(client, "roleuser")
    for n, (method, template, permission) in enumerate(ROLE_CASES):
        path = template.format(project=project["id"])
        allowed = permission in auth.ROLE_PERMISSIONS[role]
        for who, headers in (("key", bearer(ROLE_KEYS[role])), ("session", csrf(session))):
            body = _body(path, jobset["id"], n * 10 + (who == "session"))
            resp = await client.request(method, path, json=body, headers=headers)
            expected = {True: (200, 201, 202), False: (403,)}[allowed]
            assert resp.status in expected, (role, who, method, path, await resp.text())
        # Without credentials: 401 whatever the route.
        client.session.cookie_jar.clear()
        resp = await client.request(method, path, json=_body(path, jobset["id"], 99))
        assert resp.status == 401, (method, path)
        session = await login(client, "roleuser")
