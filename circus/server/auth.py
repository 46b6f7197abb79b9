"""Bearer API keys and what each role may do. Reads are public; every write names the
permission it needs with `@requires(...)`."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable

import attrs
import structlog
from aiohttp import web

from circus.apikeys import hash_key
from circus.db.queries import Q
from circus.server.errors import ApiError
from circus.server.keys import CONTEXT

log = structlog.get_logger(__name__)

# Permissions a write route asks for; `admin` holds them all.
CREATE_PROJECT = "create-project"
CREATE_JOBSET = "create-jobset"
ADMIN = "administer"
TRIGGER = "trigger-evaluation"
CANCEL = "cancel-build"
RESTART = "restart-build"
BUMP = "bump-build"

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "create-projects": frozenset({CREATE_PROJECT, CREATE_JOBSET}),
    "eval-jobset": frozenset({TRIGGER}),
    "cancel-build": frozenset({CANCEL}),
    "restart-jobs": frozenset({RESTART}),
    "bump-to-front": frozenset({BUMP}),
    "read-only": frozenset(),
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@attrs.frozen
class Principal:
    name: str
    role: str
    key_id: int | None

    def may(self, permission: str) -> bool:
        return self.role == "admin" or permission in ROLE_PERMISSIONS.get(self.role, ())


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "authentication required: send Authorization: Bearer <api key>")
    return token.strip()


async def authenticate(request: web.Request) -> Principal:
    token = _bearer(request)
    ctx = request.app[CONTEXT]
    legacy = ctx.config.server.api_key
    if legacy and hmac.compare_digest(token.encode(), legacy.encode()):
        return Principal("server.api_key", "admin", None)
    row = await ctx.pool.fetchrow(Q.api_key_use, hash_key(token))
    if row is None:
        raise ApiError(401, "unknown API key")
    return Principal(row["name"], row["role"], row["id"])


def requires(permission: str) -> Callable[[Handler], Handler]:
    """The view runs only for a key whose role holds `permission` (401 / 403 otherwise)."""

    def wrap(view: Handler) -> Handler:
        @functools.wraps(view)
        async def guarded(request: web.Request) -> web.StreamResponse:
            who = await authenticate(request)
            if not who.may(permission):
                log.info("write refused", key=who.name, role=who.role, permission=permission,
                         path=request.path)
                raise ApiError(403, f"API key {who.name!r} (role {who.role}) may not "
                                    f"{permission.replace('-', ' ')}")
            return await view(request)

        return guarded

    return wrap
