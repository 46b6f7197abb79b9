"""A dashboard session in a test client: logged in through the form, with its CSRF token."""

from __future__ import annotations

import re

from aiohttp.test_utils import TestClient

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')



def same_origin(client: TestClient) -> dict[str, str]:
    """What a browser sends with a form posted from this server's page (login CSRF)."""
    return {"Origin": str(client.make_url("")).rstrip("/")}


async def login(client: TestClient, key: str) -> str:
    """Log this client in with an API key through the login form; its CSRF token."""
    resp = await client.post("/dashboard/login", data={"api_key": key, "next": "/"},
                             allow_redirects=False, headers=same_origin(client))
    assert resp.status == 302, await resp.text()
    page = await (await client.get("/")).text()
    found = CSRF.search(page)
    assert found, "a logged-in page carries the CSRF token in its forms"
    return found.group(1)
