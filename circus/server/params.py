"""Reading request input: pagination, query filters, path ids and JSON bodies, each
refusing bad values with a 400 that names the field."""

from __future__ import annotations

import json
import re
from typing import Any

import attrs
from aiohttp import web

from circus.server.errors import ApiError, bad_field, not_found

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# PostgreSQL bigint: a larger id cannot exist, and would be a DataError in the driver.
MAX_ID = 2**63 - 1
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$")
INPUT_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")

# The default of a field that must be present.
REQUIRED: Any = object()


@attrs.frozen
class Page:
    limit: int
    offset: int


def _parse_int(raw: str, field: str, minimum: int, maximum: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise bad_field(field, f"expected an integer, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise bad_field(field, f"must be between {minimum} and {maximum}, got {value}")
    return value


def page(request: web.Request) -> Page:
    """`limit` (default 50, at most 500: larger asks are clamped) and `offset`."""
    query = request.query
    limit = DEFAULT_LIMIT
    if query.get("limit", "") != "":
        limit = min(_parse_int(query["limit"], "limit", 1, MAX_ID), MAX_LIMIT)
    offset = 0
    if query.get("offset", "") != "":
        offset = _parse_int(query["offset"], "offset", 0, MAX_ID)
    return Page(limit, offset)


def query_id(request: web.Request, field: str) -> int | None:
    raw = request.query.get(field, "")
    return None if raw == "" else _parse_int(raw, field, 1, MAX_ID)


def query_text(request: web.Request, field: str) -> str | None:
    raw = request.query.get(field, "")
    return None if raw == "" else raw


def path_id(request: web.Request, field: str = "id", what: str = "resource") -> int:
    """A numeric id from the path; anything that cannot be an id names nothing: 404."""
    raw = request.match_info[field]
    if not raw.isdigit() or not 0 < int(raw) <= MAX_ID:
        raise not_found(f"{what} {raw!r}")
    return int(raw)


async def json_body(request: web.Request) -> dict[str, Any]:
    # read() enforces client_max_size (413) before we parse anything.
    raw = await request.read()
    if not raw.strip():
        raise ApiError(400, "body: expected a JSON object, got an empty body")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"body: malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, f"body: expected a JSON object, got {type(data).__name__}")
    return data


def text(body: dict[str, Any], field: str, default: Any = REQUIRED,
         nullable: bool = False) -> Any:
    """A string field; missing → `default` (required when no default)."""
    if field not in body:
        if default is REQUIRED:
            raise bad_field(field, "is required")
        return default
    value = body[field]
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise bad_field(field, f"expected a string, got {_kind(value)}")
    if "\x00" in value:
        raise bad_field(field, "must not contain NUL characters")
    return value


def boolean(body: dict[str, Any], field: str, default: bool) -> bool:
    if field not in body:
        return default
    value = body[field]
    if not isinstance(value, bool):
        raise bad_field(field, f"expected true or false, got {_kind(value)}")
    return value


def integer(body: dict[str, Any], field: str, default: int, minimum: int = 0,
            maximum: int = 2**31 - 1) -> int:
    if field not in body:
        return default
    value = body[field]
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_field(field, f"expected an integer, got {_kind(value)}")
    if not minimum <= value <= maximum:
        raise bad_field(field, f"must be between {minimum} and {maximum}, got {value}")
    return value


def name(body: dict[str, Any], field: str = "name", default: Any = REQUIRED,
         pattern: re.Pattern[str] = NAME_RE) -> str:
    value = text(body, field, default)
    if not pattern.match(value):
        raise bad_field(field, f"{value!r} is not a valid name (must match {pattern.pattern})")
    return value


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
