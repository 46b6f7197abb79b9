"""The OpenAPI document, built from the routes that exist.

Each module declares its operations next to its handlers with `@doc(...)`; at request
time `document(app)` walks `app.router` and turns every (method, path) into an operation
from the handler's declaration. A route whose handler carries none is listed by
`undocumented(app)` (a test fails on it) and appears in the document marked
`x-undocumented`, so the document never hides a route that exists.

Conventions:
- every operation answers `default` with the JSON error envelope (`{"error": ...}`), so
  any 4xx a route gives is described;
- `x-permission` names what a caller needs: a permission of `circus/server/accounts/auth.py`,
  `authenticated` (any valid credential) or nothing (public);
- HEAD and OPTIONS routes are left out: aiohttp adds HEAD for every GET, and OPTIONS only
  answers CORS preflights.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from importlib.metadata import version
from typing import Any, TypeVar

import attrs
from aiohttp import web

from circus.server.accounts.sessions import COOKIE as SESSION_COOKIE
from circus.server.http import responses
from circus.server.http.params import MAX_OFFSET, NAME_RE

ATTRIBUTE = "__openapi__"
SKIPPED_METHODS = frozenset({"HEAD", "OPTIONS"})
AUTHENTICATED = "authenticated"

Schema = dict[str, Any]
H = TypeVar("H", bound=Callable[..., Awaitable[web.StreamResponse]])

# Small schema vocabulary, so declarations next to handlers stay one-liners.
STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
# A project, jobset or channel name, exactly as params.name checks it.
NAME: Schema = {"type": "string", "pattern": NAME_RE.pattern}
TIME: Schema = {"type": "string", "format": "date-time"}
ANY: Schema = {}


def nullable(schema: Schema) -> Schema:
    return {**schema, "nullable": True}


def obj(required: tuple[str, ...] | list[str] | None = None, **props: Schema) -> Schema:
    """An object with these properties; all required unless `required` says otherwise.
    More properties may appear (clients must ignore what they do not know)."""
    out: Schema = {"type": "object", "properties": props}
    names = list(props) if required is None else list(required)
    if names:
        out["required"] = names
    return out


def arr(item: Schema) -> Schema:
    return {"type": "array", "items": item}


def page_of(item: Schema) -> Schema:
    """The list envelope of params.page / responses.page."""
    return obj(items=arr(item), total=INT, limit=INT, offset=INT, total_exact=BOOL)


def query(schema: Schema = STR, description: str = "", required: bool = False) -> Schema:
    """A query parameter declaration (used in `doc(query=...)`)."""
    return {"schema": schema, "description": description, "required": required}


PAGE_QUERY: dict[str, Schema] = {
    "limit": query({"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
                   "page size (default 50; larger asks get 500)"),
    "offset": query({"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
                    f"items to skip (at most {MAX_OFFSET}; deeper, page with before_id)"),
}
ERROR: Schema = obj(error=STR)
DELETED: Schema = obj(id=INT, deleted=BOOL)


@attrs.frozen
class Operation:
    summary: str
    response: Schema | None = None
    status: int = 200
    # A tuple where the answer depends on Accept (Hydra's URLs are also dashboard pages).
    content_type: str | tuple[str, ...] | None = "application/json"
    body: Schema | None = None
    # False where the route also answers without a body (a form with no fields).
    body_required: bool = True
    # A dashboard form posts application/x-www-form-urlencoded.
    body_content_type: str = "application/json"
    query: Mapping[str, Schema] = attrs.Factory(dict)
    path: Mapping[str, Schema] = attrs.Factory(dict)
    permission: str | None = None
    tags: tuple[str, ...] = ()
    description: str = ""
    # Other success answers: status → (content type or None, schema or None, description).
    extra: Mapping[int, tuple[str | None, Schema | None, str]] = attrs.Factory(dict)
    # How this route's errors come: JSON `{"error": ...}` unless a protocol says otherwise
    # (the binary cache answers Nix with plain-text 404s).
    error_content_type: str | tuple[str, ...] = "application/json"
    # The JSON of its errors (sr.ht's routes answer in sr.ht's envelope).
    error_schema: Schema = ERROR


def doc(summary: str, **fields: Any) -> Callable[[H], H]:
    """Declare the operation a handler serves (see `Operation` for the fields)."""
    operation = Operation(summary, **fields)

    def mark(view: H) -> H:
        setattr(view, ATTRIBUTE, operation)
        return view

    return mark


# Static files come in every type, and aiohttp answers their errors itself.
STATIC_FILE = Operation("A static file", content_type="*/*", error_content_type="*/*",
                        response={"type": "string", "format": "binary"})


def route_operation(route: web.AbstractRoute) -> Operation | None:
    # A static directory's handler is aiohttp's own; it always serves files.
    if isinstance(route.resource, web.StaticResource):
        return STATIC_FILE
    op = operation_of(route.handler)
    # What auth.requires* guards, the document says, whether or not the @doc repeats it.
    guarded = _required_permission(route.handler)
    if op is not None and op.permission is None and guarded is not None:
        op = attrs.evolve(op, permission=guarded)
    return op


def _required_permission(handler: Any) -> str | None:
    while handler is not None:
        found = getattr(handler, "required_permission", None)
        if isinstance(found, str):
            return found
        handler = getattr(handler, "__wrapped__", None)
    return None


def operation_of(handler: Any) -> Operation | None:
    found = getattr(handler, ATTRIBUTE, None)
    if found is None and hasattr(handler, "__wrapped__"):
        found = getattr(handler.__wrapped__, ATTRIBUTE, None)
    return found


_PARAM = re.compile(r"\{([^}:]+)(?::([^}]+))?\}")


def _route_path(route: web.AbstractRoute) -> tuple[str, dict[str, str]] | None:
    """The OpenAPI path of a route and the regex of each path parameter."""
    resource = route.resource
    if resource is None:
        return None
    info = resource.get_info()
    if "path" in info:
        return info["path"], {}
    if "formatter" in info:
        return info["formatter"], _param_patterns(resource)
    if "prefix" in info:  # a static directory
        return info["prefix"].rstrip("/") + "/{filename}", {"filename": ".+"}
    return None


def _param_patterns(resource: web.AbstractResource) -> dict[str, str]:
    raw = getattr(resource, "_orig_path", "") or ""
    return {m.group(1): (m.group(2) or "[^{}/]+") for m in _PARAM.finditer(raw)}


def routes(app: web.Application) -> list[tuple[str, str, web.AbstractRoute]]:
    """(method, OpenAPI path, route) of every route the document must describe."""
    out = []
    for route in app.router.routes():
        if route.method in SKIPPED_METHODS or route.method == "*":
            continue
        found = _route_path(route)
        if found is not None:
            out.append((route.method.upper(), found[0], route))
    return out


def undocumented(app: web.Application) -> list[str]:
    return [f"{method} {path}" for method, path, route in routes(app)
            if route_operation(route) is None]


def _path_parameter(name: str, pattern: str, op: Operation | None) -> Schema:
    if op is not None and name in op.path:
        schema = op.path[name]
    elif pattern in (r"\d+", "[0-9]+"):
        schema = INT
    else:
        schema = STR
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _operation(method: str, path: str, patterns: dict[str, str], op: Operation | None,
               operation_id: str) -> Schema:
    names = [m.group(1) for m in _PARAM.finditer(path)]
    out: Schema = {"operationId": operation_id,
                   "summary": op.summary if op else f"{method} {path} (undocumented)"}
    parameters = [_path_parameter(n, patterns.get(n, ""), op) for n in names]
    error_types = _types(op.error_content_type if op else "application/json")
    responses_: Schema = {"default": {"description": "an error", "content": {
        t: {"schema": (op.error_schema if op else ERROR) if t == "application/json"
            else {"type": "string"}}
        for t in error_types}}}
    if op is None:
        out["x-undocumented"] = True
        out["parameters"] = parameters
        out["responses"] = responses_
        return out
    if op.description:
        out["description"] = op.description
    if op.tags:
        out["tags"] = list(op.tags)
    for name, spec in op.query.items():
        param: Schema = {"name": name, "in": "query", "required": spec.get("required", False),
                         "schema": spec.get("schema", STR)}
        if spec.get("description"):
            param["description"] = spec["description"]
        parameters.append(param)
    out["parameters"] = parameters
    if op.body is not None:
        out["requestBody"] = {"required": op.body_required,
                              "content": {op.body_content_type: {"schema": op.body}}}
    responses_[str(op.status)] = _response(op.content_type, op.response, op.summary)
    for status, (ctype, schema, text) in op.extra.items():
        responses_[str(status)] = _response(ctype, schema, text)
    out["responses"] = responses_
    if op.permission:
        out["x-permission"] = op.permission
        # An API key, or a browser's session cookie (writes with it send X-CSRF-Token).
        out["security"] = [{"bearer": []}, {"session": []}]
    return out


def _types(ctype: str | tuple[str, ...]) -> tuple[str, ...]:
    return (ctype,) if isinstance(ctype, str) else ctype


def _response(ctype: str | tuple[str, ...] | None, schema: Schema | None,
              description: str) -> Schema:
    answer: Schema = {"description": description or "success"}
    if ctype is not None:
        answer["content"] = {
            t: {"schema": (schema if schema is not None else {})
                if t == "application/json" or len(_types(ctype)) == 1 else {"type": "string"}}
            for t in _types(ctype)}
    return answer


def _operation_id(method: str, path: str) -> str:
    words = re.sub(r"[^A-Za-z0-9]+", "_", path.replace("{", "by_")).strip("_")
    return f"{method.lower()}_{words}"


def document(app: web.Application) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, path, route in sorted(routes(app), key=lambda r: (r[1], r[0])):
        patterns = _param_patterns(route.resource) if route.resource else {}
        paths.setdefault(path, {})[method.lower()] = _operation(
            method, path, patterns, route_operation(route), _operation_id(method, path))
    return {
        "openapi": "3.0.3",
        "info": {"title": "Circus API", "version": version("circus-ci"),
                 "description": "Continuous integration for Nix projects. Reads are public; "
                                "writes need `Authorization: Bearer <api key>`."},
        "paths": paths,
        "components": {"securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE}}},
    }


@doc("This OpenAPI document", response=obj(openapi=STR, info=ANY, paths=ANY))
async def openapi_json(request: web.Request) -> web.Response:
    return responses.ok(document(request.app))


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/v1/openapi.json", openapi_json)
