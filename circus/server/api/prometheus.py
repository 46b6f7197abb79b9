"""GET /prometheus: every metric of the seed's table, in the Prometheus text format."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import defaultdict
from collections.abc import Iterable

import asyncpg
import attrs
import structlog
from aiohttp import web

from circus.domain.status import EVALUATION_STATUSES, BuildStatus
from circus.server.http.keys import CONTEXT
from circus.server.http.openapi import doc
from circus.services import builders
from circus.store import metrics

log = structlog.get_logger(__name__)

Sample = tuple[dict[str, str], float]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _family(name: str, help_text: str, samples: Iterable[Sample]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    for labels, value in samples:
        label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        lines.append(f"{name}{{{label_text}}} {value:g}" if label_text
                     else f"{name} {value:g}")
    return lines


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _builder_families(rows: list[asyncpg.Record]) -> list[str]:
    """The count of builders getting builds now, and each builder's own gauges."""
    lines = _family("circus_remote_builders_active",
                    "Remote builders enabled, up and not backing off",
                    [({}, sum(1 for r in rows if r["active"]))])
    for name, help_text, value in (
            ("circus_builder_up", "1 when the builder's last probe found it up",
             lambda r: 1.0 if r["health"] == "up" else 0.0),
            ("circus_builder_slots_in_use", "Builds running on the builder",
             lambda r: r["slots_in_use"]),
            ("circus_builder_max_jobs", "Builds the builder may run at once",
             lambda r: r["max_jobs"]),
            ("circus_builder_consecutive_failures", "Failures since the last success",
             lambda r: r["consecutive_failures"])):
        lines += _family(name, help_text, [({"builder": r["name"]}, value(r)) for r in rows])
    return lines


async def render(pool: asyncpg.Pool) -> str:
    counts: dict[str, int] = defaultdict(int)
    completed: dict[int, int] = defaultdict(int)
    failed: dict[int, int] = defaultdict(int)
    for row in await metrics.build_counts(pool):
        n, code = row["n"], row["buildstatus"]
        counts["all"] += n
        if row["state"] == "queued":
            counts["pending"] += n
        elif row["state"] == "running":
            counts["running"] += n
        elif code == BuildStatus.SUCCEEDED:
            counts["succeeded"] += n
        else:
            counts["failed"] += n
        if code is not None:
            completed[row["project_id"]] += n
            if code != BuildStatus.SUCCEEDED:
                failed[row["project_id"]] += n
    durations = await metrics.durations(pool)
    evaluations = await metrics.evaluation_counts(pool)
    projects = await metrics.projects(pool)
    optional = await metrics.optional_counts(pool)

    lines: list[str] = []
    lines += _family("circus_builds_total", "Builds by status (all: every build)",
                     [({"status": s}, counts[s])
                      for s in ("succeeded", "failed", "running", "pending", "all")])
    lines += _family("circus_builds_avg_duration_seconds",
                     "Average duration of the last 10000 successful builds",
                     [({}, durations["avg"] or 0.0)])
    lines += _family("circus_builds_duration_seconds",
                     "Duration quantiles of the last 10000 successful builds",
                     [({"quantile": q}, durations[k] or 0.0)
                      for q, k in (("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99"))])
    lines += _family("circus_evaluations_total", "Evaluations",
                     [({}, sum(evaluations.values()))])
    lines += _family("circus_evaluations_by_status", "Evaluations by status",
                     [({"status": s}, evaluations.get(s, 0))
                      for s in EVALUATION_STATUSES])
    lines += _family("circus_queue_depth", "Builds waiting in the queue",
                     [({}, counts["pending"])])
    lines += _family("circus_projects_total", "Projects", [({}, len(projects))])
    lines += _family("circus_channels_total", "Channels", [({}, optional["channels"])])
    lines += _builder_families(await builders.listing(pool))
    lines += _family("circus_project_builds_completed", "Finished builds per project",
                     [({"project": p["name"]}, completed[p["id"]]) for p in projects])
    lines += _family("circus_project_builds_failed", "Failed builds per project",
                     [({"project": p["name"]}, failed[p["id"]]) for p in projects])
    return "\n".join(lines) + "\n"


# The figures aggregate the whole builds table, so they are computed at most once per
# MIN_AGE seconds, and never more often than COST_FACTOR times their own cost: however
# often anyone scrapes, the database spends at most 1/COST_FACTOR of one connection on it.
MIN_AGE = 15.0
COST_FACTOR = 20


@attrs.define(eq=False)
class _Figures:
    text: str | None = None
    fresh_until: float = float("-inf")
    # Scrapes arriving while the figures are computed wait for them, not compute again.
    lock: asyncio.Lock = attrs.Factory(asyncio.Lock)

    def fresh(self) -> str | None:
        return self.text if time.monotonic() < self.fresh_until else None


_figures: weakref.WeakKeyDictionary[web.Application, _Figures] = weakref.WeakKeyDictionary()


async def figures(app: web.Application) -> str:
    """The text of the last computation while it is fresh; else computed, once."""
    state = _figures.setdefault(app, _Figures())
    if (text := state.fresh()) is not None:
        return text
    async with state.lock:
        if (text := state.fresh()) is not None:
            return text
        started = time.monotonic()
        state.text = await render(app[CONTEXT].pool)
        took = time.monotonic() - started
        state.fresh_until = time.monotonic() + max(MIN_AGE, COST_FACTOR * took)
        log.debug("prometheus figures computed", seconds=round(took, 3))
        return state.text


@doc("Metrics in the Prometheus text format", content_type="text/plain",
     response={"type": "string"}, tags=("system",),
     description=f"Computed at most every {MIN_AGE:g} s (longer when the computation is "
                 "slow); scrapes in between get the same figures.")
async def prometheus(request: web.Request) -> web.Response:
    text = await figures(request.app)
    return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE,
                                                     "Cache-Control": "no-store"})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/prometheus", prometheus)
