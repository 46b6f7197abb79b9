"""JSON or HTML on a URL that several front ends serve: the rule, and how a row of the
table (`http/routes.SHARED`) becomes a route.

Hydra serves its API on the URLs of its web pages, and Circus does the same: a row names
the handler that answers a client asking for JSON and the one that answers everyone
else (a browser gets the dashboard's page, a README's image tag gets the badge). Where
both are the same handler the row only records that this method of the shared URL
belongs to one front end. Each shared path is registered here once, with all its
methods, so no front end registers it and the order of the modules does not matter.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable

import attrs
from aiohttp import web

from circus.server.http import openapi

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
JSON = "application/json"


def wants_json(request: web.Request) -> bool:
    """Hydra's rule. Its clients send `Accept: application/json` (or `?output=json`);
    a browser's `text/html`, a bare `*/*` and no Accept at all get the page. Any mention
    of JSON counts, whatever its q-value: Hydra's scripts are what must not break."""
    accept = request.headers.get("Accept", "")
    return JSON in accept or "json" in request.query.get("output", "")


@attrs.frozen
class Shared:
    """One method of a shared URL: who answers JSON, who answers HTML."""

    method: str
    path: str
    json: Handler
    html: Handler

    def handler(self) -> Handler:
        if self.json is self.html:
            return self.json
        return _negotiated(self.json, self.html)


def _negotiated(json: Handler, html: Handler) -> Handler:
    @functools.wraps(json)
    async def answer(request: web.Request) -> web.StreamResponse:
        return await (json if wants_json(request) else html)(request)

    joined = _joined(openapi.operation_of(json), openapi.operation_of(html))
    if joined is not None:
        setattr(answer, openapi.ATTRIBUTE, joined)
    return answer


def _joined(json: openapi.Operation | None,
            html: openapi.Operation | None) -> openapi.Operation | None:
    """The JSON answer's declaration, widened by the other answer's."""
    if json is None or html is None:
        return None
    other = f"Without JSON in Accept: {html.summary[:1].lower()}{html.summary[1:]}."
    return attrs.evolve(
        json, content_type=_either(json.content_type, html.content_type),
        error_content_type=_either(json.error_content_type, html.error_content_type) or JSON,
        tags=tuple(dict.fromkeys((*json.tags, *html.tags))),
        description=" ".join(part for part in (json.description, other, html.description)
                             if part))


def _either(*types: str | tuple[str, ...] | None) -> str | tuple[str, ...] | None:
    found: list[str] = []
    for ctype in types:
        for one in (ctype,) if isinstance(ctype, str) else ctype or ():
            if one not in found:
                found.append(one)
    if not found:
        return None
    return found[0] if len(found) == 1 else tuple(found)


def add_routes(router: web.UrlDispatcher, table: Iterable[Shared]) -> None:
    """Every row, a path's methods on one resource (so a 405 names them all)."""
    by_path: dict[str, list[Shared]] = {}
    for row in table:
        by_path.setdefault(row.path, []).append(row)
    for path, rows in by_path.items():
        resource = router.add_resource(path)
        for row in rows:
            handler = row.handler()
            if row.method == "GET":  # as add_get does: HEAD answers like GET
                resource.add_route("HEAD", handler)
            # aiohttp refuses a method twice on a resource: a row repeated fails here.
            resource.add_route(row.method, handler)
