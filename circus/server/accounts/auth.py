"""Who is asking and what their role lets them do.

Credentials: a Bearer API key (`Authorization: Bearer <key>`, stored as SHA-256), or the
session cookie set by a login. Reads are public; every write names the permission it
needs with `@requires(...)`. A write authenticated by the cookie alone must also carry
the session's CSRF token (`X-CSRF-Token` header or `csrf_token` form field), because a
browser sends the cookie with requests that other sites make it send.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from circus.domain import roles
from circus.server.accounts import sessions
from circus.server.http.errors import ApiError
from circus.server.http.keys import CONTEXT
from circus.server.http.openapi import AUTHENTICATED
from circus.services import login as logins

log = structlog.get_logger(__name__)

# The one role table lives in circus/domain/roles.py; the routes and tests read it here.
CREATE_PROJECT = roles.CREATE_PROJECT
CREATE_JOBSET = roles.CREATE_JOBSET
ADMIN = roles.ADMIN
TRIGGER = roles.TRIGGER
CANCEL = roles.CANCEL
RESTART = roles.RESTART
BUMP = roles.BUMP
PERMISSIONS = roles.PERMISSIONS
ROLE_PERMISSIONS = roles.ROLE_PERMISSIONS
ROLES = roles.ROLES
Principal = logins.Principal


def needs(operation: str) -> str:
    """The permission a project/jobset operation needs (`roles.OPERATIONS`): the routes
    guard and document with it, and the operation itself asks the same table."""
    return roles.OPERATIONS[operation]

CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# Where the authenticated principal is kept on the request.
_PRINCIPAL = web.RequestKey("principal", Principal)


def _bearer(header: str) -> str:
    """The key of `Bearer <key>`, or of `token <key>` (what builds.sr.ht's clients send)."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() not in ("bearer", "token") or not token.strip():
        raise ApiError(401, "authentication required: send Authorization: Bearer <api key>")
    return token.strip()


async def _from_key(request: web.Request, token: str) -> Principal:
    ctx = request.app[CONTEXT]
    try:
        return await logins.bearer_login(ctx.pool, ctx.config.server.api_key, token)
    except logins.Refused as exc:
        raise ApiError(exc.status, exc.message) from None


async def csrf_ok(request: web.Request, expected: str) -> bool:
    """The request echoes the session's CSRF token (header, or form field)."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.content_type in _FORMS:
        # post() keeps what it read, so the view can still read the form.
        form = await request.post()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    return sent is not None and hmac.compare_digest(sent.encode(), expected.encode())


async def authenticate(request: web.Request) -> Principal:
    """The caller, from the Bearer key or else the session cookie; 401 without either."""
    known: Principal | None = request.get(_PRINCIPAL)
    if known is not None:
        return known
    header = request.headers.get("Authorization")
    if header is not None:
        who = await _from_key(request, _bearer(header))
    else:
        session = await sessions.current(request)
        if session is None:
            raise ApiError(401, "authentication required: send Authorization: Bearer <api key>"
                                " or log in (POST /api/v1/auth/login)")
        if request.method not in SAFE_METHODS and not await csrf_ok(request,
                                                                     session.csrf_token):
            log.info("write refused: CSRF token", user=session.name, path=request.path)
            raise csrf_refused()
        who = logins.session_principal(session)
    request[_PRINCIPAL] = who
    return who


def csrf_refused() -> ApiError:
    return ApiError(403, f"CSRF token missing or wrong: a write with the session cookie must "
                         f"send the {CSRF_HEADER} header (the csrf_token of "
                         f"POST /api/v1/auth/login or GET /api/v1/me)")


def principal(request: web.Request) -> Principal:
    """The principal a `@requires`/`@requires_login` view runs for."""
    who: Principal | None = request.get(_PRINCIPAL)
    if who is None:
        raise RuntimeError("principal() outside an authenticated view")
    return who


def requires(permission: str) -> Callable[[Handler], Handler]:
    """The view runs only for a caller whose role holds `permission` (401 / 403 otherwise)."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    def wrap(view: Handler) -> Handler:
        @functools.wraps(view)
        async def guarded(request: web.Request) -> web.StreamResponse:
            who = await authenticate(request)
            if not who.may(permission):
                log.info("write refused", who=who.name, kind=who.kind, role=who.role,
                         permission=permission, path=request.path)
                raise ApiError(403, f"{who.describe()} may not "
                                    f"{permission.replace('-', ' ')}")
            return await view(request)

        guarded.required_permission = permission  # type: ignore[attr-defined]
        return guarded

    return wrap


def requires_login(view: Handler) -> Handler:
    """The view runs for any authenticated caller, whatever the role."""

    @functools.wraps(view)
    async def guarded(request: web.Request) -> web.StreamResponse:
        await authenticate(request)
        return await view(request)

    guarded.required_permission = AUTHENTICATED  # type: ignore[attr-defined]
    return guarded


def requires_user(view: Handler) -> Handler:
    """The view runs for a user account (its own profile, password, stars): 403 for a key."""

    @functools.wraps(view)
    async def guarded(request: web.Request) -> web.StreamResponse:
        who = await authenticate(request)
        if who.user_id is None:
            raise ApiError(403, f"{who.describe()} is not a user account: log in as a user")
        return await view(request)

    guarded.required_permission = AUTHENTICATED  # type: ignore[attr-defined]
    return guarded
