"""What Hydra's API shares between its routes: who may write, and who answers a URL.

Hydra serves its API on the URLs of its web pages: a request that accepts
`application/json` gets JSON, a browser gets the page. Circus registers these routes
once, here, and `negotiated` sends a request that does not ask for JSON to the
dashboard's page for the same route when the dashboard put one in
`app[DASHBOARD_FALLBACK]` (keyed by the route's path template, e.g. "/project/{id}");
otherwise the JSON is the answer anyway (scripts often send no Accept header at all).

Writes: a Circus API key (`Authorization: Bearer`, an extension Hydra users asked for)
or the session cookie of `POST /login`. Hydra clients never send Circus's CSRF header,
so a cookie write is also accepted when it carries no `Origin`/`Referer` of another
site: browsers always send one of them on cross-site writes (and SameSite=Lax keeps the
cookie off cross-site POSTs anyway), scripts send neither.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import urlsplit

import structlog
from aiohttp import web

from circus.server.accounts import auth, sessions
from circus.server.http.errors import ApiError

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Path template → the dashboard's handler for it (set by the dashboard's add_routes or
# init_app; absent when there is no dashboard).
DASHBOARD_FALLBACK = web.AppKey("hydra_dashboard_fallback", Mapping[str, Handler])
SIGN_IN = "This page requires you to sign in."


def wants_json(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "application/json" in accept or "json" in request.query.get("output", "")


def _template(request: web.Request) -> str:
    resource = request.match_info.route.resource
    if resource is None:
        return ""
    info = resource.get_info()
    return str(info.get("formatter") or info.get("path") or "")


def _dashboard_pages(app: web.Application) -> Mapping[str, Handler] | None:
    # The dashboard (issue 6) keeps the same mapping under its own key; imported here,
    # late, so the API works in a server built without the dashboard's templates.
    from circus.server import dashboard

    return app.get(dashboard.DASHBOARD_FALLBACK)


def negotiated(view: Handler) -> Handler:
    """A GET view that yields to the dashboard's page when the client is a browser."""

    @functools.wraps(view)
    async def dispatch(request: web.Request) -> web.StreamResponse:
        if not wants_json(request):
            pages = request.app.get(DASHBOARD_FALLBACK) or _dashboard_pages(request.app)
            page = pages.get(_template(request)) if pages else None
            if page is not None:
                return await page(request)
        return await view(request)

    return dispatch


def same_site(request: web.Request) -> bool:
    for header in ("Origin", "Referer"):
        value = request.headers.get(header)
        if value is not None and urlsplit(value).netloc != request.host:
            return False
    return True


async def principal(request: web.Request) -> auth.Principal:
    """The caller of a Hydra write: a Bearer key or the session cookie; 403 otherwise."""
    if "Authorization" in request.headers:
        try:
            return await auth.authenticate(request)
        except ApiError as exc:
            # Hydra answers every refused write with 403.
            raise ApiError(403, exc.message) from None
    session = await sessions.current(request)
    if session is None:
        raise ApiError(403, SIGN_IN)
    if not same_site(request) and not await auth.csrf_ok(request, session.csrf_token):
        log.info("hydra write refused: cross-site", user=session.name, path=request.path)
        raise auth.csrf_refused()
    return auth.Principal(session.name, session.role, session.api_key_id, session.user_id,
                          session.id, session.csrf_token)


async def require(request: web.Request, permission: str) -> auth.Principal:
    """The caller, if their role holds `permission` (403 with Hydra's reason if not)."""
    who = await principal(request)
    if not who.may(permission):
        log.info("hydra write refused", who=who.name, role=who.role, permission=permission,
                 path=request.path)
        raise ApiError(403, f"{who.describe()} may not {permission.replace('-', ' ')}")
    return who
