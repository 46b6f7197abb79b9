"""Logging in and out: `POST /api/v1/auth/login` (username and password, or an API key)
opens a session cookie; `POST /api/v1/auth/logout` ends it. Also what the other login
routes (GitHub, LDAP) share: the body reader and the answer to a successful login."""

from __future__ import annotations

from typing import Any

import asyncpg
import structlog
from aiohttp import web

from circus.server.accounts import auth, sessions
from circus.server.http import params, responses
from circus.server.http.keys import CONTEXT
from circus.server.http.openapi import BOOL, INT, STR, TIME, arr, doc, nullable, obj
from circus.services import login as logins
from circus.store import users

log = structlog.get_logger(__name__)

_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
ROLE = {"type": "string", "enum": list(auth.ROLES)}
USER = obj(id=INT, username=STR, email=nullable(STR), full_name=STR, role=STR, auth_source=STR,
           enabled=BOOL, declarative=BOOL, created_at=TIME, updated_at=TIME,
           last_login_at=nullable(TIME))
# /me: a user's fields appear when the caller is a user; `id` is the key's for a key.
ME = obj(required=("kind", "name", "role", "permissions", "csrf_token"),
         kind={"type": "string", "enum": ["user", "api_key"]}, name=STR, role=STR,
         permissions=arr(STR), csrf_token=nullable(STR), id=nullable(INT),
         has_password=BOOL,
         **{k: v for k, v in USER["properties"].items() if k not in ("id", "role")})
# An API key, or a username with its password.
LOGIN = {**obj(required=(), username=STR, password=STR, api_key=STR),
         "anyOf": [{"required": ["api_key"]}, {"required": ["username", "password"]}]}
USER_FIELDS = ("id", "username", "email", "full_name", "role", "auth_source", "enabled",
               "declarative", "created_at", "updated_at", "last_login_at")


async def body(request: web.Request) -> dict[str, Any]:
    """A login body: JSON, or the fields of an HTML form (the dashboard's login page)."""
    if request.content_type in _FORMS:
        form = await request.post()
        return {k: v for k, v in form.items() if isinstance(v, str)}
    return await params.json_body(request)


def client(request: web.Request, data: dict[str, Any]) -> logins.Client:
    """What the login rules need to know of the request (services/login.py)."""
    token = data.get(sessions.LOGIN_FIELD)
    return logins.Client(
        # The peer address: X-Forwarded-For is the client's to write, so it is not trusted.
        address=request.remote or "unknown", host=request.host,
        origin=request.headers.get("Origin"), referer=request.headers.get("Referer"),
        content_type=request.content_type,
        cookie_token=request.cookies.get(sessions.LOGIN_COOKIE),
        form_token=token if isinstance(token, str) else None,
        trusted_origins=tuple(request.app[CONTEXT].config.server.allowed_origins))


def limits(request: web.Request) -> logins.Limits:
    return logins.Limits.of(request.app[CONTEXT].config.server)


def refusal(exc: logins.Refused) -> web.Response:
    """A refused login as the API answers it: the status, the message, Retry-After."""
    response = responses.error(exc.status, exc.message)
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def user_json(row: asyncpg.Record) -> dict[str, Any]:
    """A user as the API shows it: never the password hash."""
    return {field: row[field] for field in USER_FIELDS}


async def me_document(pool: asyncpg.Pool, who: auth.Principal) -> dict[str, Any]:
    """Who the caller is, what they may do and, for a session, its CSRF token."""
    doc: dict[str, Any] = {"kind": who.kind, "name": who.name, "role": who.role,
                           "permissions": sorted(auth.ROLE_PERMISSIONS.get(who.role, ())),
                           "csrf_token": who.csrf_token}
    if who.user_id is not None:
        row = await users.get(pool, who.user_id)
        if row is not None:
            doc.update(user_json(row), has_password=row["has_password"])
    else:
        doc["id"] = who.key_id
    return doc


async def logged_in(request: web.Request, *, user_id: int | None = None,
                    api_key_id: int | None = None,
                    redirect: str | None = None) -> web.StreamResponse:
    """Open the session and answer: the `/me` document, or a redirect (browser flows)."""
    opened = await sessions.start(request, user_id=user_id, api_key_id=api_key_id)
    session = opened.session
    who = logins.session_principal(session)
    response: web.StreamResponse
    if redirect is not None:
        response = web.Response(status=302, headers={"Location": redirect})
    else:
        doc = await me_document(request.app[CONTEXT].pool, who)
        doc["expires_at"] = session.expires_at
        response = responses.ok(doc)
    sessions.set_cookie(request, response, opened.token)
    log.info("logged in", who=who.name, kind=who.kind, role=who.role)
    return response


@doc("Log in (username and password, or an API key): sets the session cookie",
     body=LOGIN, response=obj(required=(*ME["required"], "expires_at"), **ME["properties"],
                  expires_at=TIME),
     tags=("accounts",),
     description="The answer's csrf_token must be sent as X-CSRF-Token with every write "
                 "made with the cookie. A form body (application/x-www-form-urlencoded) "
                 "is accepted from this server's own pages only (same-origin Origin, or "
                 "the login page's csrf_token). 429 with Retry-After after too many "
                 "failed attempts for the account or from the address.")
async def login(request: web.Request) -> web.StreamResponse:
    data = await body(request)
    pool = request.app[CONTEXT].pool
    try:
        if "api_key" in data:
            key_id = await logins.key_login(pool, client(request, data),
                                            params.text(data, "api_key"))
            return await logged_in(request, api_key_id=key_id)
        user_id = await logins.password_login(pool, limits(request), client(request, data),
                                              params.text(data, "username"),
                                              params.text(data, "password"))
    except logins.Refused as exc:
        return refusal(exc)
    return await logged_in(request, user_id=user_id)


@doc("Log out: ends the session and clears its cookie", response=obj(logged_out=BOOL),
     tags=("accounts",))
async def logout(request: web.Request) -> web.Response:
    session = await sessions.current(request)
    # Even logging out needs the token: another site must not end the user's session.
    if session is not None and not await auth.csrf_ok(request, session.csrf_token):
        raise auth.csrf_refused()
    response = responses.ok({"logged_out": session is not None})
    await sessions.end(request, response)
    return response


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/api/v1/auth/login", login)
    router.add_post("/api/v1/auth/logout", logout)
