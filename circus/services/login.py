"""Logging in, the operations behind every login front end: `POST /api/v1/auth/login`,
Hydra's `POST /login`, the dashboard's form, `POST /auth/ldap`, GitHub's callback and
the Bearer key of every write. Each way of logging in is one function here — a local
password (`password_login`), an LDAP bind (`ldap_login`), an API key (`key_login` for a
session, `bearer_login` per request), GitHub (`oauth_login`) — and whoever they let in
is a `Principal`, made by `principal` alone.

It decides three things, the same way for all of them:

- **Where a login may come from** (login CSRF: another site must not log the victim's
  browser into the attacker's account). A request whose Origin (or, without one, its
  Referer) names another site is refused. A JSON body (`Content-Type:
  application/json`) is otherwise accepted: a browser cannot send one cross-site without
  a CORS preflight, which Circus grants only to `server.allowed_origins` — so Hydra's
  JSON clients and scripts need nothing more. Any other body (a form, `text/plain`) must
  come with a same-origin Origin/Referer or carry the login page's pre-session token
  (double-submit: the `circus_login` cookie and the `login_token` field, equal).
- **How fast anyone may guess** (argon2 costs tens of milliseconds of CPU), decided
  before any hash is computed: a token bucket per client address
  (`server.login_attempts_burst`, refilled at `server.login_attempts_per_minute`), and
  per account name an exponential backoff (`server.login_free_failures` failures in a
  row are free, then each attempt waits 1 s, 2 s, 4 s ... at most
  `server.login_backoff_max`; failures older than that are forgotten, and attempts
  refused while waiting do not lengthen the wait, so an attacker can slow an account
  down but never lock its owner out for good). Beyond either: 429 with Retry-After.
- **Where the browser goes afterwards**: `safe_next` keeps only a path on this server.
"""

from __future__ import annotations

import hmac
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import asyncpg
import attrs
import structlog

from circus.app.config import ServerConfig
from circus.domain import roles
from circus.services import passwords
from circus.services.apikeys import hash_key
from circus.store import apikeys, login_throttle, users

log = structlog.get_logger(__name__)

# The usernames that can exist (the users table's CHECK): any other name is refused
# without a hash, a throttle row or a query.
USERNAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,99}$")
JSON_TYPES = ("application/json",)
_MAX_NEXT = 2000


class Refused(Exception):
    """A login that does not happen: the status and message a front end answers with."""

    status = 403

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class BadCredentials(Refused):
    status = 401


class Disabled(Refused):
    status = 403


class CrossSite(Refused):
    status = 403


class Throttled(Refused):
    status = 429


class OtherSource(Refused):
    """The account of that name logs in another way (a local account, not the
    directory's): 409, so nobody takes over a local account through LDAP."""

    status = 409


@attrs.frozen
class Principal:
    """Who a request runs for: a user or an API key, with the role that decides."""

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
        return roles.permits(self.role, permission)

    def describe(self) -> str:
        what = "user" if self.user_id is not None else "API key"
        return f"{what} {self.name!r} (role {self.role})"


class SessionRow(Protocol):
    """What a principal is read from in a session (server/accounts/sessions.Session)."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def csrf_token(self) -> str: ...
    @property
    def user_id(self) -> int | None: ...
    @property
    def api_key_id(self) -> int | None: ...


def principal(name: str, role: str, *, key_id: int | None = None,
              user_id: int | None = None, session: SessionRow | None = None) -> Principal:
    """The one place a principal is made, whatever the way of logging in."""
    if session is None:
        return Principal(name, role, key_id, user_id)
    return Principal(name, role, key_id, user_id, session.id, session.csrf_token)


def session_principal(session: SessionRow) -> Principal:
    """The principal of a session cookie (opened by any of the logins below)."""
    return principal(session.name, session.role, key_id=session.api_key_id,
                     user_id=session.user_id, session=session)


@attrs.frozen
class Client:
    """What a login request says about where it comes from, as plain values."""

    address: str
    host: str
    origin: str | None = None
    referer: str | None = None
    content_type: str = ""
    cookie_token: str | None = None
    form_token: str | None = None
    trusted_origins: tuple[str, ...] = ()


@attrs.frozen
class Limits:
    free_failures: int = 5
    backoff_max: int = 900
    burst: int = 20
    per_minute: int = 20

    @classmethod
    def of(cls, server: ServerConfig) -> Limits:
        return cls(server.login_free_failures, server.login_backoff_max,
                   server.login_attempts_burst, server.login_attempts_per_minute)

    @property
    def per_second(self) -> float:
        return self.per_minute / 60.0


def safe_next(raw: str | None) -> str:
    """`raw` when it is a path on this server, else "/" (no open redirect).

    Browsers drop tabs and newlines inside a URL and read `\\` as `/`, so `/\\t/evil`
    and `/\\evil` are another site: anything but printable ASCII is refused outright,
    and the value must stay a single-slash path even once percent-decoded.
    """
    if not raw or len(raw) > _MAX_NEXT:
        return "/"
    if any(not "\x21" <= c <= "\x7e" for c in raw) or "\\" in raw:
        return "/"
    decoded = unquote(raw)
    if any(c < "\x20" or c == "\x7f" for c in decoded):
        return "/"
    for text in (raw, decoded):
        if not text.startswith("/") or text[1:2] in ("/", "\\"):
            return "/"
    parts = urlsplit(raw)
    return raw if not parts.scheme and not parts.netloc else "/"


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower(), parts.netloc.lower()


def check_origin(client: Client) -> None:
    """Refuse a login another site could have made the browser send (login CSRF)."""
    said = client.origin if client.origin is not None else client.referer
    if said is not None:
        origin, netloc = _origin(said)
        trusted = {o.rstrip("/").lower() for o in client.trusted_origins}
        if netloc and (netloc == client.host.lower() or origin in trusted):
            return
        raise CrossSite(f"login refused: the request comes from {origin!r}, not from this "
                        f"server's pages (Origin/Referer); log in on this server's /login")
    if client.content_type in JSON_TYPES or client.content_type.endswith("+json"):
        return
    if (client.cookie_token and client.form_token
            and hmac.compare_digest(client.cookie_token.encode(), client.form_token.encode())):
        return
    raise CrossSite("login refused: a form login needs the login_token of the login page "
                    "(with its cookie) or a same-origin Origin header; scripts send JSON "
                    "with Content-Type: application/json")


async def _take_address(pool: asyncpg.Pool, limits: Limits, address: str) -> None:
    if not await login_throttle.take_address(pool, address, limits.burst, limits.per_second):
        wait = await login_throttle.address_wait(pool, address, limits.burst,
                                                 limits.per_second)
        raise Throttled(f"too many login attempts from this address: try again in "
                        f"{_seconds(wait)} s", _seconds(wait))


async def _take_account(pool: asyncpg.Pool, limits: Limits, username: str) -> None:
    if not await login_throttle.take_account(pool, username, limits.free_failures,
                                             limits.backoff_max):
        wait = await login_throttle.account_wait(pool, username, limits.free_failures,
                                                 limits.backoff_max)
        raise Throttled(f"too many failed logins for {username!r}: try again in "
                        f"{_seconds(wait)} s", _seconds(wait))


def _seconds(wait: float | None) -> int:
    return max(1, math.ceil(wait or 0))


async def begin(pool: asyncpg.Pool, limits: Limits, client: Client, username: str) -> None:
    """Everything a password login checks before the password: origin, then throttles.

    The attempt counts as a failure from here on; `succeeded` takes it back.
    """
    check_origin(client)
    if not USERNAME_RE.fullmatch(username):
        raise BadCredentials("invalid username or password")
    await _take_address(pool, limits, client.address)
    await _take_account(pool, limits, username)


async def succeeded(pool: asyncpg.Pool, username: str) -> None:
    await login_throttle.clear_account(pool, username)


async def failed(pool: asyncpg.Pool, limits: Limits) -> None:
    # A failure is when the throttle tables grow, so it is when they are swept.
    await login_throttle.purge(pool, limits.backoff_max, limits.burst / limits.per_second)


async def password_login(pool: asyncpg.Pool, limits: Limits, client: Client,
                         username: str, password: str) -> int:
    """The id of the user these credentials log in; `Refused` otherwise."""
    bound = log.bind(username=username[:100], address=client.address)
    try:
        await begin(pool, limits, client, username)
    except Refused as exc:
        bound.info("login refused", reason=exc.message)
        raise
    if len(password) > passwords.MAX_LENGTH:
        # No stored password is that long; hashing megabytes would cost more CPU.
        await failed(pool, limits)
        raise BadCredentials("invalid username or password")
    row = await users.credentials(pool, username)
    # Verified even for an unknown user, so both take the same time (and fails for one).
    good = await passwords.verify_async(row["password_hash"] if row else None, password)
    if not good or row is None:
        await failed(pool, limits)
        bound.info("login refused", reason="bad credentials")
        raise BadCredentials("invalid username or password")
    await succeeded(pool, username)
    if not row["enabled"]:
        bound.info("login refused", reason="disabled")
        raise Disabled(f"user {username!r} is disabled")
    user_id: int = row["id"]
    return user_id


async def key_login(pool: asyncpg.Pool, client: Client, key: str) -> int:
    """The id of the API key a session is opened for. Keys are random and hashed with
    SHA-256, so guessing needs no throttle; the origin rule applies all the same."""
    check_origin(client)
    row = await apikeys.use(pool, hash_key(key))
    if row is None:
        log.info("login refused", reason="unknown API key", address=client.address)
        raise BadCredentials("unknown API key")
    key_id: int = row["id"]
    return key_id


async def bearer_login(pool: asyncpg.Pool, legacy_key: str | None, key: str) -> Principal:
    """The API key of `Authorization: Bearer`: `server.api_key` is an admin, any other
    key must be a stored one (like `key_login`, no throttle is needed)."""
    if legacy_key and hmac.compare_digest(key.encode(), legacy_key.encode()):
        return principal("server.api_key", "admin")
    row = await apikeys.use(pool, hash_key(key))
    if row is None:
        raise BadCredentials("unknown API key")
    return principal(row["name"], row["role"], key_id=row["id"])


# An LDAP bind: the entry's mail and cn when the directory accepts the password, None
# when it refuses (front ends own the directory's client and its transport errors).
Directory = Callable[[str, str], Awaitable[dict[str, Any] | None]]


async def ldap_login(pool: asyncpg.Pool, limits: Limits, client: Client, username: str,
                     password: str, directory: Directory) -> int:
    """The id of the user the directory vouches for, created read-only the first time."""
    # An empty password is an "unauthenticated bind" that many servers accept (RFC 4513).
    if not password:
        raise BadCredentials("invalid username or password")
    # The same origin rule and throttles as a password login: the directory is someone's
    # CPU too, and guessing through us must be as slow as guessing here.
    await begin(pool, limits, client, username)
    entry = await directory(username, password)
    if entry is None:
        log.info("LDAP login refused", username=username)
        await failed(pool, limits)
        raise BadCredentials("invalid username or password")
    await succeeded(pool, username)
    user = await users.by_name(pool, username)
    if user is None:
        user = await users.insert_external(pool, username, email=entry.get("mail"),
                                           full_name=entry.get("cn") or "",
                                           auth_source="ldap")
        log.info("user created from LDAP", username=username)
    elif user["auth_source"] != "ldap":
        # The directory vouches for its own people, not for a local account of that name.
        raise OtherSource(f"username: {username!r} is a {user['auth_source']} account, "
                          "not an LDAP one")
    if not user["enabled"]:
        raise Disabled(f"user {username!r} is disabled")
    user_id: int = user["id"]
    return user_id


@attrs.frozen
class GithubUser:
    """The GitHub account a login came back with (its id is what links it)."""

    id: int
    login: str
    email: str | None = None
    name: str = ""


async def oauth_login(pool: asyncpg.Pool, github: GithubUser) -> int:
    """The id of the user linked to that GitHub account, created read-only the first
    time; GitHub has already checked the credentials."""
    found = await users.by_github_id(pool, github.id)
    if found is None:
        # A local account of the same name is someone else until an admin links them.
        taken = await users.by_name(pool, github.login)
        username = github.login if taken is None else f"{github.login}@github"
        found = await users.insert_external(pool, username, email=github.email,
                                            full_name=github.name, auth_source="github",
                                            github_id=github.id)
        log.info("user created from GitHub", username=username, github_id=github.id)
    if not found["enabled"]:
        raise Disabled(f"user {found['username']!r} is disabled")
    user_id: int = found["id"]
    return user_id


async def check_password(pool: asyncpg.Pool, limits: Limits, client: Client,
                         username: str, password_hash: str, password: str) -> bool:
    """A logged-in user's current password (to change it), under the same throttles:
    a stolen session cookie must not be a way to guess it or to burn the CPU."""
    await _take_address(pool, limits, client.address)
    await _take_account(pool, limits, username)
    if await passwords.verify_async(password_hash, password):
        await succeeded(pool, username)
        return True
    await failed(pool, limits)
    return False
