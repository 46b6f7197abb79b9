"""sr.ht's way of answering: its error envelope `{"errors": [{"field", "reason"}]}`, and
who the caller is. `Authorization: token <key>` (sr.ht's scheme) or `Bearer <key>` with a
Circus API key, or the dashboard's session. The scopes are Circus permissions:
`jobs:read` is any signed-in caller (who sees their own jobs, an admin all of them);
`jobs:write` is `submit-job` (roles `admin` and `create-projects`)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web

from circus.domain import roles
from circus.domain.errors import Forbidden, InvalidValue, NotFound
from circus.server.accounts import auth
from circus.server.http import responses
from circus.server.http.errors import ApiError
from circus.server.http.negotiation import Handler
from circus.server.http.openapi import AUTHENTICATED
from circus.services.login import Principal
from circus.services.srht_jobs import NotPending

log = structlog.get_logger(__name__)

READ, WRITE = AUTHENTICATED, roles.SUBMIT_JOB


def errors(status: int, reason: str, field: str | None = None) -> web.Response:
    item: dict[str, Any] = {"reason": reason}
    if field is not None:
        item["field"] = field
    return responses.ok({"errors": [item]}, status=status)


def _refusal(exc: Exception) -> web.Response:
    if isinstance(exc, InvalidValue):
        return errors(400, exc.problem, exc.field)
    if isinstance(exc, NotPending):
        return errors(400, str(exc))
    if isinstance(exc, Forbidden):
        return errors(403, str(exc))
    if isinstance(exc, NotFound):
        return errors(404, str(exc))
    assert isinstance(exc, ApiError)
    return errors(exc.status, exc.message)


def scoped(scope: str) -> Callable[[Handler], Handler]:
    """The view runs for a caller with `scope`; every refusal in sr.ht's envelope."""

    def wrap(view: Handler) -> Handler:
        @functools.wraps(view)
        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                who = await auth.authenticate(request)
                if scope != READ and not who.may(scope):
                    log.info("srht write refused", who=who.name, role=who.role,
                             path=request.path)
                    raise Forbidden(f"{who.describe()} lacks the jobs:write scope "
                                    f"(Circus permission {scope})")
                return await view(request)
            except (ApiError, InvalidValue, NotPending, Forbidden, NotFound) as exc:
                return _refusal(exc)

        guarded.required_permission = scope  # type: ignore[attr-defined]
        return guarded

    return wrap


def _ours(path: str) -> bool:
    return path == "/api/jobs" or path.startswith("/api/jobs/")


@web.middleware
async def envelope(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The errors the shared middlewares answer for sr.ht's URLs (a body too large, a
    wrong method, the database away) in sr.ht's envelope too."""
    response = await handler(request)
    if (_ours(request.path) and response.status >= 400 and isinstance(response, web.Response)
            and response.content_type == "application/json" and response.body):
        try:
            body = json.loads(response.body)  # type: ignore[arg-type]
        except ValueError:
            return response
        if isinstance(body, dict) and set(body) == {"error"}:
            replaced = errors(response.status, str(body["error"]))
            for name in ("Allow", "Retry-After", "Connection"):
                if name in response.headers:
                    replaced.headers[name] = response.headers[name]
            if response.keep_alive is False:  # the body may be unread: see `bodies`
                replaced.force_close()
            return replaced
    return response


def caller(request: web.Request) -> Principal:
    return auth.principal(request)
