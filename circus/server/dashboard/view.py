"""What every dashboard page shares: who is looking, rendering a template with the
navigation's context, pages of a list, and HTML (not JSON) error pages."""

from __future__ import annotations

import datetime
import functools
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
import attrs
import structlog
from aiohttp import web

from circus.domain import status as buildstatus
from circus.server.accounts import auth, sessions
from circus.server.http import params, safety
from circus.server.http.errors import ApiError
from circus.services import login as logins

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PAGE_SIZE = 50
_VIEWER = web.RequestKey("dashboard_viewer", object)


async def viewer(request: web.Request) -> auth.Principal | None:
    """The logged-in user of this browser (session cookie), or None for a visitor."""
    if _VIEWER in request:
        return request[_VIEWER]  # type: ignore[return-value]
    session = await sessions.current(request)
    who = None
    if session is not None:
        who = logins.session_principal(session)
    request[_VIEWER] = who
    return who


@attrs.frozen
class Pager:
    """One page of a list: links keep the page's other query parameters (its filters)."""

    total: int
    limit: int
    offset: int
    query: dict[str, str]
    path: str
    exact: bool = True

    def _link(self, offset: int) -> str:
        query = {k: v for k, v in self.query.items() if k != "offset" and v != ""}
        if offset:
            query["offset"] = str(offset)
        return self.path + ("?" + urlencode(query) if query else "")

    @property
    def first(self) -> int:
        return self.offset + 1 if self.total else 0

    @property
    def last(self) -> int:
        return min(self.offset + self.limit, self.total)

    @property
    def prev_url(self) -> str | None:
        return self._link(max(0, self.offset - self.limit)) if self.offset > 0 else None

    @property
    def next_url(self) -> str | None:
        return self._link(self.offset + self.limit) if self.last < self.total else None


def pager(request: web.Request, total: int, limit: int = PAGE_SIZE,
          exact: bool = True) -> Pager:
    offset = page_offset(request)
    return Pager(total, limit, offset, dict(request.query), request.path, exact)


def page_offset(request: web.Request) -> int:
    raw = request.query.get("offset", "")
    if not params.digits(raw):
        return 0
    return params.offset(request)  # bounded there, as on every front end


def filter_text(request: web.Request, field: str) -> str | None:
    value = request.query.get(field, "").strip()
    return value or None


def status_name(row: Any) -> str:
    return buildstatus.name(row["state"], row["buildstatus"])


def status_class(name: str) -> str:
    """The badge colour of a build or evaluation status."""
    if name in ("succeeded",):
        return "ok"
    if name in ("queued", "running"):
        return name
    if name in ("cancelled", "aborted", "unsupported"):
        return "muted"
    return "bad"


def ago(when: datetime.datetime | None) -> str:
    if when is None:
        return ""
    seconds = (datetime.datetime.now(datetime.UTC) - when).total_seconds()
    if seconds < 60:
        return "just now" if seconds < 5 else f"{int(seconds)}s ago"
    if seconds < 3600:
        return f"{int(seconds // 60)}m ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h ago"
    return f"{int(seconds // 86400)}d ago"


def duration(start: datetime.datetime | None, end: datetime.datetime | None) -> str:
    if start is None:
        return ""
    stop = end or datetime.datetime.now(datetime.UTC)
    seconds = int((stop - start).total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60}m"


def timestamp(when: datetime.datetime | None) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S UTC") if when else ""


def jinja_helpers() -> dict[str, Any]:
    """Functions and filters every template may call."""
    return {"status_name": status_name, "status_class": status_class, "ago": ago,
            "duration": duration, "timestamp": timestamp, "shown_url": safety.shown_url}


async def render(request: web.Request, template: str, context: dict[str, Any],
                 status: int = 200) -> web.Response:
    who = await viewer(request)
    notice = request.query.get("notice", "")
    full = {"who": who, "may": (lambda p: who is not None and who.may(p)),
            "csrf": who.csrf_token if who else "", "P": _PERMS, "notice": notice,
            "path": request.path, "query": request.query, **context}
    response = aiohttp_jinja2.render_template(template, request, full, status=status)
    # Pages show live data and who is logged in: never from a shared cache.
    response.headers["Cache-Control"] = "no-store"
    return response


_PERMS = {"create_project": auth.CREATE_PROJECT, "create_jobset": auth.CREATE_JOBSET,
          "admin": auth.ADMIN, "trigger": auth.TRIGGER, "cancel": auth.CANCEL,
          "restart": auth.RESTART, "bump": auth.BUMP}


def html_errors(view: Handler) -> Handler:
    """A page's ApiError (404, 400, 403...) as an HTML page, not the API's JSON."""

    @functools.wraps(view)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await view(request)
        except ApiError as exc:
            log.info("dashboard error page", path=request.path, status=exc.status,
                     error=exc.message)
            return await render(request, "error.html",
                                {"status": exc.status, "message": exc.message},
                                status=exc.status)

    return wrapped


def arg(request: web.Request, position: int, *names: str) -> str:
    """A path parameter by one of its names, else by position: the Hydra routes may hand
    us their request, whose parameters are named their way."""
    for name in names:
        if name in request.match_info:
            return request.match_info[name]
    values = list(request.match_info.values())
    if position < len(values):
        return values[position]
    raise ApiError(404, "not found")


def redirect(location: str, notice: str | None = None) -> web.HTTPSeeOther:
    if notice:
        location += ("&" if "?" in location else "?") + urlencode({"notice": notice})
    return web.HTTPSeeOther(location)
