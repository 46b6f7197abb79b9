"""GitHub OAuth login (`[oauth.github]`).

`GET /api/v1/auth/github` sends the browser to GitHub with a random `state`, kept twice:
its hash in the database (any server process may get the callback, once) and the raw
value in a short-lived cookie (so the callback must come from the browser that started
the login — another site cannot log a victim into the attacker's account).
`GET /api/v1/auth/github/callback` checks both, trades the code for a token, reads the
GitHub user and opens a session for the user linked to that GitHub id, creating a
read-only one the first time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any
from urllib.parse import urlencode

import aiohttp
import structlog
from aiohttp import web

from circus.app.config import GithubOAuthConfig
from circus.server.accounts import login as accounts
from circus.server.http.errors import ApiError, not_found
from circus.server.http.keys import CONTEXT
from circus.server.http.openapi import STR, doc, query
from circus.services import login as logins
from circus.store import oauth_states

log = structlog.get_logger(__name__)

STATE_COOKIE = "circus_oauth_state"
STATE_LIFETIME = 600
SCOPE = "read:user user:email"
TIMEOUT = aiohttp.ClientTimeout(total=15)


def _config(request: web.Request) -> GithubOAuthConfig:
    github = request.app[CONTEXT].config.oauth.github
    if not github.client_id or not github.client_secret:
        raise not_found("GitHub login (not configured: [oauth.github])")
    return github


def _digest(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def _redirect_uri(request: web.Request, github: GithubOAuthConfig) -> str:
    return github.redirect_uri or str(request.url.with_path("/api/v1/auth/github/callback")
                                      .with_query(None))


@doc("GitHub login: redirects to GitHub (404 when [oauth.github] is not set)",
     status=302, content_type=None, tags=("accounts",))
async def start(request: web.Request) -> web.StreamResponse:
    github = _config(request)
    state = secrets.token_urlsafe(32)
    await oauth_states.remember(request.app[CONTEXT].pool, _digest(state),
                                float(STATE_LIFETIME))
    query = urlencode({"client_id": github.client_id, "state": state, "scope": SCOPE,
                       "redirect_uri": _redirect_uri(request, github)})
    response = web.Response(status=302, headers={"Location": f"{github.authorize_url}?{query}"})
    response.set_cookie(STATE_COOKIE, state, max_age=STATE_LIFETIME, httponly=True,
                        samesite="Lax", path="/api/v1/auth/github",
                        secure=request.app[CONTEXT].config.server.force_secure_cookies)
    return response


@doc("GitHub login callback: sets the session cookie and redirects to /", status=302,
     content_type=None, tags=("accounts",),
     query={"code": query(STR, "GitHub's code"), "state": query(STR, "the login's state")})
async def callback(request: web.Request) -> web.StreamResponse:
    github = _config(request)
    if "error" in request.query:
        raise ApiError(400, f"GitHub refused the login: {request.query['error']}")
    state = request.query.get("state", "")
    code = request.query.get("code", "")
    if not state or not code:
        raise ApiError(400, "state and code are required (come back from GitHub's login)")
    remembered = request.cookies.get(STATE_COOKIE, "")
    if not remembered or not hmac.compare_digest(remembered.encode(), state.encode()):
        raise ApiError(400, "state: does not match the login this browser started")
    if not await oauth_states.take(request.app[CONTEXT].pool, _digest(state)):
        raise ApiError(400, "state: unknown, expired or already used; log in again")
    profile = await _github_user(github, code, _redirect_uri(request, github))
    try:
        user_id = await logins.oauth_login(request.app[CONTEXT].pool, _github_account(profile))
    except logins.Refused as exc:
        return accounts.refusal(exc)
    response = await accounts.logged_in(request, user_id=user_id, redirect="/")
    response.del_cookie(STATE_COOKIE, path="/api/v1/auth/github")
    return response


async def _github_user(github: GithubOAuthConfig, code: str, redirect_uri: str
                       ) -> dict[str, Any]:
    """Trade the code for a token and read the user; 502 when GitHub misbehaves."""
    headers = {"Accept": "application/json", "User-Agent": "circus-ci"}
    try:
        async with aiohttp.ClientSession(timeout=TIMEOUT, headers=headers) as http:
            async with http.post(github.token_url, data={
                "client_id": github.client_id, "client_secret": github.client_secret,
                "code": code, "redirect_uri": redirect_uri,
            }) as resp:
                token_doc = await resp.json(content_type=None)
            if not isinstance(token_doc, dict) or not token_doc.get("access_token"):
                reason = token_doc.get("error") if isinstance(token_doc, dict) else None
                raise ApiError(400 if reason else 502,
                               f"code: GitHub gave no access token ({reason or 'no reason'})")
            auth_header = {"Authorization": f"Bearer {token_doc['access_token']}"}
            async with http.get(f"{github.api_url.rstrip('/')}/user",
                                headers=auth_header) as resp:
                if resp.status != 200:
                    raise ApiError(502, f"GitHub answered {resp.status} for the user")
                profile = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        log.warning("GitHub unreachable", error=str(exc))
        raise ApiError(502, f"GitHub could not be reached: {exc}") from None
    if (not isinstance(profile, dict) or not isinstance(profile.get("id"), int)
            or not isinstance(profile.get("login"), str)):
        raise ApiError(502, "GitHub's user has no id or login")
    return profile


def _github_account(profile: dict[str, Any]) -> logins.GithubUser:
    email, name = profile.get("email"), profile.get("name")
    return logins.GithubUser(profile["id"], profile["login"],
                             email if isinstance(email, str) else None,
                             name if isinstance(name, str) else "")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/v1/auth/github", start)
    router.add_get("/api/v1/auth/github/callback", callback)
