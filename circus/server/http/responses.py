"""JSON responses: rows and dates as the API shows them, errors as {"error": ...}."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from aiohttp import web


def _default(value: Any) -> Any:
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(value: Any) -> str:
    """JSON text; orjson because encoding was a third of a build page's CPU time."""
    return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS).decode()


def ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=dumps)


def error(status: int, message: str, retry_after: int | None = None) -> web.Response:
    headers = None if retry_after is None else {"Retry-After": str(retry_after)}
    return web.json_response({"error": message}, status=status, dumps=dumps,
                             headers=headers)


def rows(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [dict(r) for r in records]


def page(items: list[dict[str, Any]], total: int, limit: int, offset: int,
         exact: bool = True) -> dict[str, Any]:
    return {"items": items, "total": total, "limit": limit, "offset": offset,
            "total_exact": exact}
