"""One table-driven test over every route that needs a permission (every write route,
and the reads only an admin may do): for every role of the seed, the route answers 403
exactly when the role lacks the permission (circus/server/accounts/auth.py's role table), and
401 without credentials. Routes and their permissions come from the OpenAPI document,
so a new write route is covered as soon as it exists."""

from __future__ import annotations

import re

from aiohttp.test_utils import TestClient

from circus.server.accounts import auth
from circus.server.http import openapi
from tests.helpers.api import ROLE_KEYS, bearer

# Writes anyone may send: logging in and out (the credentials are the body), LDAP login,
# through the API, the dashboard's forms and Hydra's URLs.
PUBLIC_WRITES = {("POST", "/api/v1/auth/login"), ("POST", "/api/v1/auth/logout"),
                 ("POST", "/auth/ldap"), ("POST", "/dashboard/login"),
                 ("POST", "/dashboard/logout"), ("POST", "/login"), ("POST", "/logout")}
# Writes a forge sends, authenticated by its signature under a project's webhook secret
# (tests/test_webhooks.py), not by a role.
SIGNED_WRITES = {("POST", "/api/v1/webhooks/{project_id}/{forge}"),
                 ("POST", "/api/push-github"), ("POST", "/api/push-gitea")}


def _operations(client: TestClient) -> list[tuple[str, str, dict]]:
    doc = openapi.document(client.app)
    return [(m.upper(), p, op) for p, ops in doc["paths"].items() for m, op in ops.items()]


def _url(path: str, op: dict) -> str:
    kinds = {p["name"]: p["schema"] for p in op["parameters"] if p["in"] == "path"}

    def value(m: re.Match[str]) -> str:
        schema = kinds.get(m.group(1), {})
        if "enum" in schema:
            return schema["enum"][0]
        return "999999" if schema.get("type") == "integer" else "missing"

    return re.sub(r"\{([^}]+)\}", value, path)


async def test_every_write_route_names_a_permission(client: TestClient) -> None:
    unguarded = [(m, p) for m, p, op in _operations(client)
                 if m != "GET" and "x-permission" not in op
                 and (m, p) not in PUBLIC_WRITES | SIGNED_WRITES]
    assert unguarded == []
    assert set(ROLE_KEYS) == set(auth.ROLES)


async def test_roles_may_do_exactly_what_the_table_says(client: TestClient) -> None:
    checked = 0
    for method, path, op in _operations(client):
        permission = op.get("x-permission")
        if permission is None:
            continue
        url = _url(path, op)
        resp = await client.request(method, url, json={}, allow_redirects=False)
        # /api/v1 says 401; Hydra's and the dashboard's URLs keep their own answer (403,
        # or a redirect to the login page).
        refused = (401,) if path.startswith("/api/v1/") else (401, 403, 302, 303)
        assert resp.status in refused, (method, path, resp.status)
        # Admin last: its allowed write may create what the others' would only update
        # (Hydra's PUT creates), and updating asks for more than creating.
        for role, key in sorted(ROLE_KEYS.items(), key=lambda item: item[0] == "admin"):
            resp = await client.request(method, url, json={}, headers=bearer(key),
                                        allow_redirects=False)
            text = await resp.text()
            if permission == openapi.AUTHENTICATED:
                allowed = True
            else:
                allowed = permission in auth.ROLE_PERMISSIONS[role]
            if allowed:
                # Allowed: the route runs (and may find nothing: 404, or refuse {}: 400).
                assert resp.status != 401, (method, path, role, text)
                assert resp.status != 403 or "not a user account" in text, (
                    method, path, role, text)
            else:
                assert resp.status == 403, (method, path, role, resp.status, text)
            checked += 1
    assert checked >= 30 * len(ROLE_KEYS)
