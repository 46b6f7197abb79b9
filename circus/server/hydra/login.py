"""Hydra's `POST /login`, `POST /logout` and `GET /current-user`, on Circus's sessions.

The session cookie `POST /login` sets works on every Hydra route (and on /api/v1 with
the CSRF token). A JSON client gets Hydra's user document; a browser form gets a 302.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import structlog
from aiohttp import web

from circus.server.accounts import auth, sessions
from circus.server.accounts import login as accounts
from circus.server.http.errors import ApiError
from circus.server.http.keys import CONTEXT
from circus.server.hydra.body import read, text
from circus.server.hydra.dispatch import SIGN_IN, same_site
from circus.services import login as logins
from circus.store import users

log = structlog.get_logger(__name__)


def _user(row: asyncpg.Record) -> dict[str, Any]:
    role = row["role"]
    return {"username": row["username"], "fullname": row["full_name"],
            "emailaddress": row["email"] or "",
            # Hydra's roles are a list; Circus gives each account one role.
            "userroles": [] if role == "read-only" else [role]}


async def login(request: web.Request) -> web.StreamResponse:
    body = await read(request)
    username, password = text(body, "username"), text(body, "password")
    pool = request.app[CONTEXT].pool
    try:
        user_id = await logins.password_login(pool, accounts.limits(request),
                                              accounts.client(request, body),
                                              username, password)
    except (logins.BadCredentials, logins.Disabled):
        # Hydra's one answer for both, which tells nobody which accounts are disabled.
        raise ApiError(403, "Bad username or password.") from None
    except logins.Refused as exc:
        return accounts.refusal(exc)
    opened = await sessions.start(request, user_id=user_id)
    # Hydra's answer to every successful login: 302 to /current-user, the user as the body.
    user = await users.get(pool, user_id)
    response = web.json_response(_user(user), status=302, headers={
        "Location": str(request.url.origin()) + "/current-user"})
    sessions.set_cookie(request, response, opened.token)
    log.info("hydra login", username=username)
    return response


async def logout(request: web.Request) -> web.Response:
    session = await sessions.current(request)
    # Another site must not end the user's session either.
    if session is not None and not same_site(request) and not await auth.csrf_ok(
            request, session.csrf_token):
        raise auth.csrf_refused()
    response = web.Response(status=204)
    await sessions.end(request, response)
    return response


async def current_user(request: web.Request) -> web.Response:
    session = await sessions.current(request)
    if session is None or session.user_id is None:
        raise ApiError(403, SIGN_IN)
    row = await users.get(request.app[CONTEXT].pool, session.user_id)
    if row is None:
        raise ApiError(403, SIGN_IN)
    return web.json_response(_user(row))
