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

import attrs
import structlog
from aiohttp import web

from circus.db.queries import Q
from circus.server.accounts import sessions
from circus.server.http.errors import ApiError
from circus.server.http.keys import CONTEXT
from circus.server.http.openapi import AUTHENTICATED
from circus.services.apikeys import hash_key

log = structlog.get_logger(__name__)

# Permissions a write route asks for; `admin` holds them all.
CREATE_PROJECT = "create-project"
CREATE_JOBSET = "create-jobset"
ADMIN = "administer"
TRIGGER = "trigger-evaluation"
CANCEL = "cancel-build"
RESTART = "restart-build"
BUMP = "bump-build"
PERMISSIONS = frozenset({CREATE_PROJECT, CREATE_JOBSET, ADMIN, TRIGGER, CANCEL, RESTART, BUMP})

# The one role table (the seed's "Roles"): the routes and the tests read it from here.
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": PERMISSIONS,
    "read-only": frozenset(),
    "create-projects": frozenset({CREATE_PROJECT, CREATE_JOBSET}),
    "eval-jobset": frozenset({TRIGGER}),
    "cancel-build": frozenset({CANCEL}),
    "restart-jobs": frozenset({RESTART}),
    "bump-to-front": frozenset({BUMP}),
}
ROLES = tuple(ROLE_PERMISSIONS)

CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@attrs.frozen
class Principal:
    name: str
    role: str
    key_id: int | None
    user_id: int | None = None
    # Set when the credentials were the session cookie.
    session_id: int | None = None
    csrf_token: str | None = None

    @property
    def kind(self) -> str:
        return "user" if self.user_id is not None else "api_key"

    def may(self, permission: str) -> bool:
        return permission in ROLE_PERMISSIONS.get(self.role, frozenset())

    def describe(self) -> str:
        what = "user" if self.user_id is not None else "API key"
        return f"{what} {self.name!r} (role {self.role})"


# Where the authenticated principal is kept on the request.
_PRINCIPAL = web.RequestKey("principal", Principal)


def _bearer(header: str) -> str:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "authentication required: send Authorization: Bearer <api key>")
    return token.strip()


async def _from_key(request: web.Request, token: str) -> Principal:
    ctx = request.app[CONTEXT]
    legacy = ctx.config.server.api_key
    if legacy and hmac.compare_digest(token.encode(), legacy.encode()):
        return Principal("server.api_key", "admin", None)
    row = await ctx.pool.fetchrow(Q.api_key_use, hash_key(token))
    if row is None:
        raise ApiError(401, "unknown API key")
    return Principal(row["name"], row["role"], row["id"])


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
        who = Principal(session.name, session.role, session.api_key_id, session.user_id,
                        session.id, session.csrf_token)
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
