"""Reading request input: pagination, query filters, path ids and JSON bodies, each
refusing bad values with a 400 that names the field."""

from __future__ import annotations

import codecs
import json
import re
from typing import Any

import attrs
from aiohttp import hdrs, web
from aiohttp.compression_utils import HAS_BROTLI, HAS_ZSTD
from aiohttp.helpers import parse_mimetype
from aiohttp.http_exceptions import ContentEncodingError
from aiohttp.web_protocol import RequestPayloadError

from circus.server.http.errors import ApiError, bad_field, not_found

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# Deeper than any list should be paged by offset (use `before_id`): a plain OFFSET reads
# every row it skips, so this bounds what one anonymous request can make PostgreSQL read.
MAX_OFFSET = 10_000_000
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


def digits(raw: str) -> bool:
    """Whether `raw` is a whole number in ASCII digits, short enough for int() to read at
    once. str.isdigit alone also takes '²' (which int() refuses: a 500) and '١٢' (which it
    reads as 12), and a 5 000-digit string passes it but not int()."""
    return raw.isascii() and raw.isdigit() and len(raw) <= 19


def _parse_int(raw: str, field: str, minimum: int, maximum: int) -> int:
    if not digits(raw.removeprefix("-")):
        raise bad_field(field, f"expected an integer, got {raw!r}")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise bad_field(field, f"must be between {minimum} and {maximum}, got {value}")
    return value


def page(request: web.Request) -> Page:
    """`limit` (default 50, at most 500: larger asks are clamped) and `offset`."""
    query = request.query
    limit = DEFAULT_LIMIT
    if "limit" in query:
        limit = min(_parse_int(query["limit"], "limit", 1, MAX_ID), MAX_LIMIT)
    return Page(limit, offset(request))


def offset(request: web.Request) -> int:
    """`offset` (default 0, at most MAX_OFFSET); every front end's pages read it here."""
    raw = request.query.get("offset")
    return 0 if raw is None else _parse_int(raw, "offset", 0, MAX_OFFSET)


def query_id(request: web.Request, field: str) -> int | None:
    raw = request.query.get(field, "")
    return None if raw == "" else _parse_int(raw, field, 1, MAX_ID)


def query_text(request: web.Request, field: str) -> str | None:
    raw = request.query.get(field, "")
    return None if raw == "" else raw


def path_id(request: web.Request, field: str = "id", what: str = "resource") -> int:
    """A numeric id from the path; anything that cannot be an id names nothing: 404."""
    raw = request.match_info[field]
    if not digits(raw) or not 0 < int(raw) <= MAX_ID:
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


async def sized_body(request: web.Request, limit: int, setting: str) -> bytes:
    """The raw body (a signature covers its bytes); 413 past `limit` bytes, naming the
    `setting` that sets it."""
    if (request.content_length or 0) > limit or len(await request.read()) > limit:
        raise ApiError(413, f"body: larger than {setting} ({limit} bytes)")
    return await request.read()


# RFC 9110 media-type: type "/" subtype *( OWS ";" OWS [ name "=" value ] ).
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PARAM_VALUE = rf'(?:{_TOKEN}|"(?:[^"\\]|\\.)*")'
_MEDIA_TYPE = re.compile(
    rf"^[ \t]*{_TOKEN}/{_TOKEN}[ \t]*(?:;[ \t]*(?:{_TOKEN}={_PARAM_VALUE})?[ \t]*)*$")
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
# What aiohttp can decode; anything else would reach a view as undecoded bytes.
ENCODINGS = ("identity", "gzip", "x-gzip", "deflate", *(("br",) if HAS_BROTLI else ()),
             *(("zstd",) if HAS_ZSTD else ()))


async def check_body(request: web.Request) -> None:
    """Refuse a body no view could read, with a 400 naming what is wrong. Called for every
    request by `middleware.bodies`, so no route meets a malformed body (and a view's own
    `request.post()`/`read()` only ever sees one that parses: both are cached)."""
    _check_content_type(request)
    _check_content_encoding(request)
    if not request.body_exists:
        return
    try:
        if request.content_type == MULTIPART:
            await request.post()
            return
        raw = await request.read()
        charset = request.charset or ("utf-8" if request.content_type == FORM else None)
        if charset is not None:
            _decode(raw, charset)
    except (RequestPayloadError, ContentEncodingError) as exc:
        # Nothing more of this body can be read; without this aiohttp would try to drain
        # it after our 400 and log the same decoding error again as unhandled.
        request.content.feed_eof()
        coding = request.headers.get(hdrs.CONTENT_ENCODING, "")
        raise bad_field("Content-Encoding", f"cannot decode the body as {coding!r}: "
                                            f"{_reason(exc)}") from None
    except (ValueError, LookupError) as exc:  # aiohttp's multipart reader
        raise ApiError(400, f"body: malformed {MULTIPART}: {exc}") from None


def _check_content_type(request: web.Request) -> None:
    raw = request.headers.get(hdrs.CONTENT_TYPE)
    if raw is None:
        return
    if not _MEDIA_TYPE.match(raw):
        raise bad_field("Content-Type", f"malformed header {raw!r} (expected type/subtype "
                                        "with optional ; name=value parameters)")
    if request.charset is not None:
        try:
            codecs.lookup(request.charset)
        except LookupError:
            raise bad_field("Content-Type", f"unknown charset {request.charset!r}") from None
    if request.content_type == MULTIPART and not parse_mimetype(raw).parameters.get("boundary"):
        raise bad_field("Content-Type", f"{MULTIPART} needs a boundary parameter")


def _check_content_encoding(request: web.Request) -> None:
    raw = request.headers.get(hdrs.CONTENT_ENCODING)
    if raw is None:
        return
    for coding in (c.strip().lower() for c in raw.split(",")):
        if coding not in ENCODINGS:
            raise bad_field("Content-Encoding", f"{coding!r} is not supported (use one of "
                                                f"{', '.join(ENCODINGS)})")


def _decode(raw: bytes, charset: str) -> None:
    try:
        raw.decode(charset)
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"body: not valid {charset} (the charset of its Content-Type): "
                            f"{exc.reason} at byte {exc.start}") from None


def _reason(exc: Exception) -> str:
    """aiohttp's messages start with `400, message:` and span lines."""
    return " ".join(str(getattr(exc, "message", "") or exc).split())


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
    value: str = text(body, field, default)
    # fullmatch: `$` alone would also take a name with a trailing newline.
    if not pattern.fullmatch(value):
        raise bad_field(field, f"{value!r} is not a valid name (must match {pattern.pattern})")
    return value


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
