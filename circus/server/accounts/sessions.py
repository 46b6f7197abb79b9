"""Browser sessions: a random token in an HttpOnly cookie, stored as its SHA-256 with the
CSRF token that cookie-authenticated writes must echo back.

Used by the login routes (password, API key, GitHub, LDAP) and by the dashboard.
"""

from __future__ import annotations

import datetime
import hashlib
import re
import secrets

import asyncpg
import attrs
from aiohttp import web

from circus.server.http.errors import ApiError
from circus.server.http.keys import CONTEXT
from circus.store import sessions, users

COOKIE = "circus_session"
# The seed: "Session cookies are valid for 24 hours".
LIFETIME = 24 * 3600
# The pre-session token of the login form (double-submit: this cookie and the form's
# login_token field must be equal), for browsers that send neither Origin nor Referer.
LOGIN_COOKIE = "circus_login"
LOGIN_FIELD = "login_token"
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@attrs.frozen
class Session:
    id: int
    name: str
    role: str
    csrf_token: str
    user_id: int | None
    api_key_id: int | None
    expires_at: datetime.datetime


@attrs.frozen
class Opened:
    session: Session
    # The raw token: it exists only here and in the browser's cookie.
    token: str


async def start(request: web.Request, *, user_id: int | None = None,
                api_key_id: int | None = None) -> Opened:
    """Open a session for a user or an API key; `set_cookie` hands it to the browser."""
    ctx = request.app[CONTEXT]
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    async with ctx.pool.acquire() as conn, conn.transaction():
        # Expired rows go when someone logs in, which keeps the table small without a timer.
        await sessions.purge_expired(conn)
        await sessions.insert(conn, _digest(token), csrf, user_id=user_id,
                              api_key_id=api_key_id, lifetime=float(LIFETIME))
        if user_id is not None:
            await users.stamp_login(conn, user_id)
    session = await _lookup(ctx.pool, token)
    if session is None:
        # Only a user disabled in the same instant gets here.
        raise ApiError(403, "account is disabled")
    return Opened(session, token)


def set_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    response.set_cookie(COOKIE, token, max_age=LIFETIME, path="/", httponly=True,
                        samesite="Lax",
                        secure=request.app[CONTEXT].config.server.force_secure_cookies)


def login_token(request: web.Request) -> str:
    """The browser's login-form token, or a new one (then `set_login_cookie` it)."""
    known = request.cookies.get(LOGIN_COOKIE, "")
    return known if _TOKEN_RE.match(known) else secrets.token_urlsafe(32)


def set_login_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    # Strict: the form is posted from our own page, never from another site's.
    response.set_cookie(LOGIN_COOKIE, token, max_age=LIFETIME, path="/", httponly=True,
                        samesite="Strict",
                        secure=request.app[CONTEXT].config.server.force_secure_cookies)


async def current(request: web.Request) -> Session | None:
    """The session the request's cookie names, if it is still good."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    return await _lookup(request.app[CONTEXT].pool, token)


async def _lookup(pool: asyncpg.Pool, token: str) -> Session | None:
    row = await sessions.by_token(pool, _digest(token))
    if row is None:
        return None
    return Session(id=row["id"], name=row["name"], role=row["role"],
                   csrf_token=row["csrf_token"], user_id=row["user_id"],
                   api_key_id=row["api_key_id"], expires_at=row["expires_at"])


async def end(request: web.Request, response: web.StreamResponse) -> bool:
    """Forget the request's session and clear its cookie; True when there was one."""
    token = request.cookies.get(COOKIE)
    deleted = False
    if token:
        deleted = await sessions.delete(request.app[CONTEXT].pool, _digest(token))
    response.del_cookie(COOKIE, path="/")
    return deleted
