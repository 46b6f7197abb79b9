"""What Hydra's API shares between its routes: who may write, and the rule for JSON.

Hydra serves its API on the URLs of its web pages; which front end answers such a URL is
`http/routes.SHARED`, by the rule `wants_json` (in `http/negotiation`, re-exported here
for the handlers that pick their own answer's form, like `POST /login`).

Writes: a Circus API key (`Authorization: Bearer`, an extension Hydra users asked for)
or the session cookie of `POST /login`. Hydra clients never send Circus's CSRF header,
so a cookie write is also accepted when it carries no `Origin`/`Referer` of another
site: browsers always send one of them on cross-site writes (and SameSite=Lax keeps the
cookie off cross-site POSTs anyway), scripts send neither. Hydra's writes answer GET too
(its clients use it); a GET with the cookie alone also needs the X-CSRF-Token header,
because a link or an image on another site makes the browser send one with no Referer.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import structlog
from aiohttp import web

from circus.server.accounts import auth, sessions
from circus.server.http.errors import ApiError
from circus.server.http.negotiation import Handler as Handler
from circus.server.http.negotiation import wants_json as wants_json
from circus.services import login as logins

log = structlog.get_logger(__name__)

SIGN_IN = "This page requires you to sign in."


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
    token_ok = await auth.csrf_ok(request, session.csrf_token)
    if request.method == "GET" and not token_ok:
        log.info("hydra write refused: GET with the cookie alone", user=session.name,
                 path=request.path)
        raise ApiError(403, f"GET {request.path} with a session cookie needs the "
                            "X-CSRF-Token header (another site can make a browser send the "
                            "cookie on a GET); use POST, an API key (Authorization: Bearer) "
                            "or send the token")
    if not same_site(request) and not token_ok:
        log.info("hydra write refused: cross-site", user=session.name, path=request.path)
        raise auth.csrf_refused()
    return logins.session_principal(session)


async def require(request: web.Request, permission: str) -> auth.Principal:
    """The caller, if their role holds `permission` (403 with Hydra's reason if not)."""
    who = await principal(request)
    if not who.may(permission):
        log.info("hydra write refused", who=who.name, role=who.role, permission=permission,
                 path=request.path)
        raise ApiError(403, f"{who.describe()} may not {permission.replace('-', ' ')}")
    return who
