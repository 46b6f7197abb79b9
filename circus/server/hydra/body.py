"""Reading Hydra request bodies: JSON or form data, with Hydra's loose value types
(`"on"`, `"1"`, `true` and `1` are all true) and Hydra's error texts."""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from circus.server.http.errors import ApiError

_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
# Hydra's identifiers (projectNameRE, jobsetNameRE), narrowed to what Circus stores.
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$")
INPUT_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_TRUE = frozenset({"1", "true", "on", "yes"})
_FALSE = frozenset({"0", "false", "off", "no", ""})


def q(name: object) -> str:
    """A name in Hydra's curly quotes (U+2018, U+2019), as Hydra's messages write it."""
    return f"\u2018{name}\u2019"


def bad(message: str) -> ApiError:
    """Hydra answers a bad request with a 500 and this text; Circus with a 400."""
    return ApiError(400, message)


async def read(request: web.Request) -> dict[str, Any]:
    if request.content_type in _FORMS:
        form = await request.post()
        return {k: v for k, v in form.items() if isinstance(v, str)}
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise bad("The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise bad("The request body must be a JSON object.")
    return data


def text(body: dict[str, Any], field: str, default: str = "") -> str:
    value = body.get(field, default)
    if value is None:
        return default
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise bad(f"Invalid value for {q(field)}: expected a string.")
    return str(value)


def flag(body: dict[str, Any], field: str, default: bool) -> bool:
    value = body.get(field)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int | str) and str(value).strip().lower() in _TRUE:
        return True
    if isinstance(value, int | str) and str(value).strip().lower() in _FALSE:
        return False
    raise bad(f"Invalid value for {q(field)}: expected a boolean.")


def number(body: dict[str, Any], field: str, default: int, minimum: int,
           maximum: int = 2**31 - 1) -> int:
    value = body.get(field)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        value = int(value)
    try:
        result = int(str(value).strip())
    except ValueError:
        raise bad(f"Invalid value for {q(field)}: expected an integer.") from None
    if not minimum <= result <= maximum:
        raise bad(f"Invalid value for {q(field)}: must be between {minimum} and {maximum}.")
    return result
