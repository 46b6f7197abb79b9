"""The list of builds, filtered and paged, at a million builds.

Each filter combination has its access path: one query per path, led by the predicate its
index serves (see sql/queries/builds.sql). `total` is exact up to COUNT_CAP matching
rows; past it, counting would cost more than the page, so the answer is the cap (or the
planner's estimate) and says it is not exact.

Deep offsets of the unfiltered list do not walk the index to them: every `step`-th id of
the list is remembered (`OffsetAnchors`: one index-only scan, redone in the background
when older than `ttl`, so no request waits for it; until the first one is done, offsets
are plain); a page at offset k starts from the anchor at or above k and skips only the
rest. Builds added since the anchors were taken all have larger ids, so they shift every
position by their count (a cheap range scan). Builds deleted meanwhile shift positions by
at most their number until the next refresh; for pages that must not move, there is
`before_id`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import asyncpg
import attrs
import structlog

from circus.db.queries import Q
from circus.domain.status import UNFINISHED

log = structlog.get_logger(__name__)

COUNT_CAP = 10_000


@attrs.frozen
class Filters:
    """What the list is narrowed to; None: not narrowed. `state`/`code` as
    domain.status.parse_filter gives them."""

    project: int | None = None
    jobset: int | None = None
    evaluation: int | None = None
    state: str | None = None
    code: int | None = None
    job: str | None = None
    system: str | None = None

    def args(self) -> tuple[Any, ...]:
        """$1..$7 of every list and count query."""
        return attrs.astuple(self)

    def access_path(self) -> str:
        """The query whose index serves these filters best."""
        if self.evaluation is not None:
            return "evaluation"
        if self.jobset is not None:
            return "jobset"
        if self.project is not None:
            return "project" if self.code is None else "project_status"
        if self.code is not None:
            return "buildstatus"
        if self.state in UNFINISHED:
            return "unfinished"
        return "all"


async def total(conn: asyncpg.Pool, filters: Filters) -> tuple[int, bool]:
    """(how many builds match, whether that is exact)."""
    path, args = filters.access_path(), filters.args()
    estimate = None
    if all(f is None for f in args):
        estimate = await conn.fetchval(Q.builds_estimate)
    elif path == "project" and all(f is None for f in args[1:]):
        estimate = await conn.fetchval(Q.builds_estimate_project, filters.project)
    if estimate is not None and estimate > COUNT_CAP:
        return estimate, False
    counted: int = await conn.fetchval(Q[f"builds_count_{path}"], *args, COUNT_CAP + 1)
    if counted > COUNT_CAP:
        return COUNT_CAP, False
    return counted, True


async def page(conn: asyncpg.Pool, filters: Filters, limit: int, offset: int,
               before: int | None, anchors: OffsetAnchors | None = None
               ) -> list[asyncpg.Record]:
    """Newest first: `limit` builds from `offset`, only ids below `before` if given."""
    path, args = filters.access_path(), filters.args()
    residual = args[2:]
    # Only the access path's own filter: pick the ids by an index-only scan, then read
    # those rows (a deep offset then skips index entries, not heap rows).
    only_ids = all(f is None for f in residual) and (
        (path == "all") or (path == "project" and filters.jobset is None)
        or (path == "jobset" and filters.project is None))
    if not only_ids:
        return list(await conn.fetch(Q[f"builds_page_{path}"], *args, limit, offset, before))
    key: Sequence[int | None] = {"all": (), "project": (filters.project,),
                                 "jobset": (filters.jobset,)}[path]
    if path == "all" and before is None and anchors is not None:
        before, offset = await anchors.locate(conn, offset)
    return list(await conn.fetch(Q[f"builds_ids_{path}"], before, limit, offset, *key))


async def stats(conn: asyncpg.Pool, project: int | None, jobset: int | None
                ) -> asyncpg.Record:
    """Counts by outcome and the mean duration of successes."""
    row: asyncpg.Record = await conn.fetchrow(Q.builds_stats, project, jobset)
    return row


async def latest_finished_ids(conn: asyncpg.Pool, limit: int, project: str | None,
                              jobset: str | None, job: str | None,
                              system: str | None) -> list[int]:
    """Hydra's /api/latestbuilds: the newest finished builds, by finish time."""
    rows = await conn.fetch(Q.builds_latest_finished, limit, project, jobset, job, system)
    return [row["id"] for row in rows]


async def unfinished_ids(conn: asyncpg.Pool, limit: int) -> list[int]:
    """Hydra's /api/queue: unfinished builds in the order runners claim them."""
    return [row["id"] for row in await conn.fetch(Q.builds_in_claim_order, limit)]


async def finished_per_period(conn: asyncpg.Pool, period: str, periods: int,
                              project: str | None, jobset: str | None,
                              job: str | None) -> list[int]:
    """How many builds finished in each of the last `periods` hours, days or months
    (`period`), oldest first."""
    rows = await conn.fetch(Q.builds_finished_per_period, period, periods, project, jobset,
                            job)
    return [row["n"] for row in rows]


async def recent(conn: asyncpg.Pool, limit: int) -> list[asyncpg.Record]:
    """The `limit` most recently finished builds."""
    return list(await conn.fetch(Q.builds_recent, limit))


@attrs.define(eq=False)
class OffsetAnchors:
    step: int = 10_000
    ttl: float = 30.0
    _ids: list[int] = attrs.Factory(list)
    _max_id: int = 0
    _taken: float = float("-inf")
    _refreshing: asyncio.Task[None] | None = None

    async def locate(self, pool: asyncpg.Pool, offset: int) -> tuple[int | None, int]:
        """(before_id, offset) to ask for instead of the plain offset."""
        if offset < self.step:
            return None, offset
        self._refresh_soon(pool)
        if not self._ids:
            return None, offset
        shifted = offset - await pool.fetchval(Q.builds_newer_than, self._max_id)
        index = min(shifted // self.step, len(self._ids))
        if index < 1:
            return None, offset
        return self._ids[index - 1] + 1, shifted - index * self.step

    def _refresh_soon(self, pool: asyncpg.Pool) -> None:
        stale = time.monotonic() - self._taken >= self.ttl
        if stale and (self._refreshing is None or self._refreshing.done()):
            self._refreshing = asyncio.create_task(self.refresh(pool), name="offset-anchors")

    async def refresh(self, pool: asyncpg.Pool) -> None:
        try:
            row = await pool.fetchrow(Q.builds_anchors, self.step)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            log.warning("could not take the build list's offset anchors", error=str(exc))
            self._taken = time.monotonic()  # not again at once; plain offsets meanwhile
            return
        self._ids, self._max_id = row["ids"] or [], row["max_id"] or 0
        self._taken = time.monotonic()
