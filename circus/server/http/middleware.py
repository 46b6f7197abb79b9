"""Middlewares: every error as JSON `{"error": ...}` with the right status (a driver
error caused by bad input is a 4xx, never a 500), and one log line per request."""

from __future__ import annotations

import asyncio
import re
import time

import asyncpg
import structlog
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from circus.server.http import params, responses
from circus.server.http.errors import ApiError

log = structlog.get_logger(__name__)

# The database is unreachable, as opposed to refusing what we sent.
_UNAVAILABLE = (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
                asyncpg.CannotConnectNowError)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return responses.error(exc.status, exc.message, exc.retry_after)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 405:
            exc.headers["Allow"] = _allow(request, exc.headers.get("Allow", ""))
        return _http_error(exc)
    except asyncpg.PostgresError as exc:
        mapped = _postgres_error(exc)
        if mapped is None:
            raise
        return mapped
    except _UNAVAILABLE as exc:
        log.warning("database unavailable", path=request.path, error=str(exc))
        return responses.error(503, "database unavailable")


@web.middleware
async def bodies(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every body is checked here, once, before any view: a malformed content type,
    charset, encoding or multipart body is a 400 on every route, never a 500 from
    whichever parser a view happens to call."""
    # The headers too: a view may parse a form from an empty multipart body.
    if request.body_exists or hdrs.CONTENT_TYPE in request.headers:
        try:
            await params.check_body(request)
        except ApiError as exc:
            response = responses.error(exc.status, exc.message)
            # Part of the body may be unread or undecodable: the connection cannot carry
            # another request, and the client must be told so rather than find it closed.
            response.force_close()
            return response
    return await handler(request)


def _http_error(exc: web.HTTPException) -> web.Response:
    if exc.status == 413:
        message = f"request body too large: {exc.text}"
    elif exc.status == 405:
        message = f"method {exc.method} not allowed"  # type: ignore[attr-defined]
    elif exc.status == 404:
        message = "not found"
    else:
        message = exc.reason
    response = responses.error(exc.status, message)
    if exc.status == 405:
        response.headers["Allow"] = exc.headers.get("Allow", "")
    return response


def _allow(request: web.Request, matched: str) -> str:
    """The methods of the resource at exactly this path. aiohttp's 405 lists those of
    every resource the path matches (`/projects/probe` also matches `/projects/{id}`),
    advertising methods the path does not have."""
    exact = {route.method for resource in request.app.router.resources()
             if resource.get_info().get("path") == request.path for route in resource}
    if not exact:
        return matched
    if "GET" in exact:
        exact.add("HEAD")
    return ",".join(sorted(exact))


def _postgres_error(exc: asyncpg.PostgresError) -> web.Response | None:
    detail = getattr(exc, "detail", None) or str(exc)
    if isinstance(exc, asyncpg.QueryCanceledError):
        # database.statement_timeout cut the statement short: a bound, not a bug.
        return responses.error(503, f"the database took too long ({exc}; "
                                    "database.statement_timeout)", retry_after=5)
    if isinstance(exc, asyncpg.UniqueViolationError):
        return responses.error(409, f"{_field(exc)}: already exists ({detail})")
    if isinstance(exc, asyncpg.CheckViolationError):
        return responses.error(400, f"{_field(exc)}: value not allowed ({exc})")
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        return responses.error(404, f"referenced row not found ({detail})")
    if isinstance(exc, asyncpg.DataError | asyncpg.NotNullViolationError):
        return responses.error(400, f"invalid value: {exc}")
    return None


def _field(exc: asyncpg.PostgresError) -> str:
    """`jobsets_check_interval_check` → `check_interval`; best effort, never fails."""
    constraint = getattr(exc, "constraint_name", None) or ""
    table = getattr(exc, "table_name", None) or ""
    name = constraint.removeprefix(f"{table}_")
    name = re.sub(r"_(check|key|fkey)$", "", name)
    # (project_id, name) unique: the user chose the name, not the project.
    return name.split("_")[-1] if name.startswith("project_id_") else (name or "value")


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.monotonic()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = 499
        raise
    except Exception:
        log.exception("unhandled error", method=request.method, path=request.path)
        status = 500
        return responses.error(500, "internal error")
    finally:
        fields = {"method": request.method, "path": request.path, "status": status,
                  "ms": round((time.monotonic() - started) * 1000, 1)}
        if request.method in ("GET", "HEAD") and status < 400:
            log.debug("request", **fields)
        else:
            log.info("request", **fields)
