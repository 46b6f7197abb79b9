"""HTTP safety: rate limit per client address (429), CORS, security headers on every
response; and the server's side of what a project may fetch: repository URLs, jobset
inputs, homepages and who may repoint a project. Every front end (/api/v1, Hydra's API,
the dashboard, the setup wizard) calls these, and they call `circus.sources`, which the
evaluator applies again before it fetches."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Sequence

import attrs
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from circus.app.config import Config, ServerConfig
from circus.server.accounts import auth
from circus.server.http import responses
from circus.server.http.errors import ApiError, bad_field
from circus.server.http.keys import CONTEXT
from circus.services import sources

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
}
HSTS = "max-age=31536000"

CORS_METHODS = "GET, HEAD, POST, PUT, DELETE, OPTIONS"
CORS_HEADERS = "Authorization, Content-Type, X-CSRF-Token"
CORS_MAX_AGE = "600"

# Buckets of addresses not seen for this long are full again, so they can be forgotten.
_IDLE_SECONDS = 300.0
_SWEEP_EVERY = 10_000


def allowed_url_schemes(configured: list[str]) -> list[str]:
    """The schemes a repository URL may have: the configured list, or the default one."""
    return sources.allowed_url_schemes(configured)


@contextlib.contextmanager
def bad_input() -> Iterator[None]:
    """A refused source is the caller's bad input: 400 naming the field."""
    try:
        yield
    except sources.SourceRefused as exc:
        raise bad_field(exc.field, exc.problem) from None


def check_git_url(url: str, config: Config, field: str = "repository_url") -> None:
    """400 unless git may fetch `url` (scheme, transport, private addresses)."""
    with bad_input():
        sources.check_git_url(url, sources.Policy.of(config), field)


async def check_git_host(url: str, config: Config, field: str = "repository_url") -> None:
    """400 when the URL's host name resolves to a private address (before git runs)."""
    with bad_input():
        await sources.check_resolved(url, sources.Policy.of(config), field)


def check_homepage(url: str, field: str = "homepage") -> None:
    with bad_input():
        sources.check_homepage(url, field)


def check_inputs(who: auth.Principal, inputs: Sequence[tuple[str, str, str]],
                 config: Config, field: str | None = None) -> None:
    """Jobset inputs (name, type, value) as every front end takes them: adding any needs
    `administer` (what /api/v1's input routes ask), a path input must lie inside
    `evaluator.allowed_path_inputs`, a git input's URL passes the repository URL check."""
    if inputs and not who.may(auth.ADMIN):
        raise ApiError(403, f"{who.describe()} may not add jobset inputs "
                            f"({', '.join(i[0] for i in inputs)}): that needs administer")
    policy = sources.Policy.of(config)
    for name, kind, value in inputs:
        with bad_input():
            sources.check_input(kind, value, policy, field or f"inputs.{name}.value")


def check_repository_change(who: auth.Principal, current: str | None, new: str) -> None:
    """Pointing a project at another repository is an admin's, on every front end: the
    project's builds, cache and channels would serve whatever the new one holds."""
    if current and current != new and not who.may(auth.ADMIN):
        raise ApiError(403, f"{who.describe()} may not change the repository of a project "
                            "(it needs administer)")


def shown_url(url: str | None) -> str | None:
    """A repository URL as responses and logs show it: credentials masked."""
    return None if url is None else sources.redact(url)


@attrs.define
class _Bucket:
    tokens: float
    stamp: float


@attrs.define
class RateLimiter:
    """A token bucket per client address: `rate` requests a second, `burst` at once."""

    rate: float
    burst: float
    buckets: dict[str, _Bucket] = attrs.Factory(dict)
    calls: int = 0

    def take(self, client: str, now: float | None = None) -> float:
        """0 when the request may go; else the seconds until it could."""
        now = time.monotonic() if now is None else now
        self.calls += 1
        if self.calls % _SWEEP_EVERY == 0:
            self._sweep(now)
        bucket = self.buckets.get(client)
        if bucket is None:
            bucket = self.buckets[client] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
        bucket.stamp = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate

    def _sweep(self, now: float) -> None:
        idle = [k for k, b in self.buckets.items() if now - b.stamp > _IDLE_SECONDS]
        for key in idle:
            del self.buckets[key]


def rate_limit(server: ServerConfig) -> Middleware | None:
    if server.rate_limit_rps is None:
        return None
    limiter = RateLimiter(float(server.rate_limit_rps),
                          float(server.rate_limit_burst or server.rate_limit_rps))

    @web.middleware
    async def limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        # The peer address: X-Forwarded-For is the client's to write, so it is not trusted.
        wait = limiter.take(request.remote or "unknown")
        if wait > 0:
            response = responses.error(429, f"rate limit exceeded: at most "
                                            f"{server.rate_limit_rps} requests per second")
            response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
            return response
        return await handler(request)

    return limit


def _cors_origin(server: ServerConfig, origin: str) -> str | None:
    """The Access-Control-Allow-Origin value for `origin`, or None when not allowed."""
    if origin in server.allowed_origins:
        return origin
    if server.cors_permissive:
        return "*"
    return None


def cors(server: ServerConfig) -> Middleware | None:
    if not server.allowed_origins and not server.cors_permissive:
        return None

    @web.middleware
    async def handle(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is None:
            return await handler(request)
        allow = _cors_origin(server, origin)
        preflight = (request.method == "OPTIONS"
                     and "Access-Control-Request-Method" in request.headers)
        if preflight:
            if allow is None:
                return responses.error(403, f"origin {origin!r} is not allowed "
                                            "(server.allowed_origins)")
            response: web.StreamResponse = web.Response(status=204)
            response.headers.update({
                "Access-Control-Allow-Methods": CORS_METHODS,
                "Access-Control-Allow-Headers": CORS_HEADERS,
                "Access-Control-Max-Age": CORS_MAX_AGE,
            })
        else:
            response = await handler(request)
        if allow is not None:
            response.headers["Access-Control-Allow-Origin"] = allow
            if allow != "*":
                # Only a named origin may send cookies; `*` never carries credentials.
                response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers.add("Vary", "Origin")
        return response

    return handle


def middlewares(server: ServerConfig) -> list[Middleware]:
    """The safety middlewares the configuration asks for, outermost first."""
    return [m for m in (cors(server), rate_limit(server)) if m is not None]


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.app[CONTEXT].config.server.force_secure_cookies:
        response.headers.setdefault("Strict-Transport-Security", HSTS)


def setup(app: web.Application) -> None:
    """Security headers on every response, errors and streams included."""
    app.on_response_prepare.append(_headers)
