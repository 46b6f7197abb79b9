"""/api/v1/metrics: build counts and durations over time, and the build systems seen."""

from __future__ import annotations

from aiohttp import web

from circus.server.http import params, responses
from circus.server.http.errors import bad_field
from circus.server.http.keys import CONTEXT
from circus.server.http.openapi import INT, NUM, STR, TIME, arr, doc, nullable, obj, query
from circus.store import metrics

BUCKETS = {"minute": 1 / 60, "hour": 1, "day": 24, "week": 24 * 7}
DEFAULT_HOURS = 24
MAX_HOURS = 24 * 366
# Points per series at most: minutes over a year would be half a million.
MAX_POINTS = 10_000

SERIES_QUERY = {
    "hours": query({"type": "integer", "minimum": 1, "maximum": MAX_HOURS},
                   f"how far back (default {DEFAULT_HOURS})"),
    "bucket": query({"type": "string", "enum": list(BUCKETS)}, "point width (default hour)"),
    "project_id": query({"type": "integer", "minimum": 1}),
}
BUILD_POINT = obj(time=TIME, total=INT, succeeded=INT, failed=INT)
DURATION_POINT = obj(time=TIME, builds=INT, avg_seconds=nullable(NUM),
                     p50_seconds=nullable(NUM), p95_seconds=nullable(NUM),
                     max_seconds=nullable(NUM))


def _series_params(request: web.Request) -> tuple[str, int, int | None]:
    raw = request.query.get("hours", "")
    hours = DEFAULT_HOURS
    if raw != "":
        try:
            hours = int(raw)
        except ValueError:
            raise bad_field("hours", f"expected an integer, got {raw!r}") from None
        if not 1 <= hours <= MAX_HOURS:
            raise bad_field("hours", f"must be between 1 and {MAX_HOURS}, got {hours}")
    bucket = request.query.get("bucket", "") or "hour"
    if bucket not in BUCKETS:
        raise bad_field("bucket", f"must be one of {', '.join(BUCKETS)}, got {bucket!r}")
    # More points than a chart can show: the most recent MAX_POINTS buckets, and the
    # answer's `hours` says how far back that is (every valid request gets an answer).
    hours = min(hours, int(MAX_POINTS * BUCKETS[bucket]))
    return bucket, hours, params.query_id(request, "project_id")


async def _series(request: web.Request, what: str) -> web.Response:
    bucket, hours, project_id = _series_params(request)
    rows = await metrics.series(request.app[CONTEXT].pool, what, bucket, hours, project_id)
    return responses.ok({"hours": hours, "bucket": bucket, "points": responses.rows(rows)})


@doc("Finished builds per time bucket (total, succeeded, failed)", tags=("metrics",),
     query=SERIES_QUERY, response=obj(hours=INT, bucket=STR, points=arr(BUILD_POINT)))
async def builds_series(request: web.Request) -> web.Response:
    return await _series(request, "builds")


@doc("Durations of successful builds per time bucket", tags=("metrics",),
     query=SERIES_QUERY, response=obj(hours=INT, bucket=STR, points=arr(DURATION_POINT)))
async def duration_series(request: web.Request) -> web.Response:
    return await _series(request, "durations")


@doc("The build systems builds have asked for, with their queued builds",
     tags=("metrics",), response=obj(items=arr(obj(system=STR, queued=INT))))
async def systems(request: web.Request) -> web.Response:
    rows = await metrics.systems(request.app[CONTEXT].pool)
    return responses.ok({"items": responses.rows(rows)})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/v1/metrics/timeseries/builds", builds_series)
    router.add_get("/api/v1/metrics/timeseries/duration", duration_series)
    router.add_get("/api/v1/metrics/systems", systems)
