"""Deep offsets of the unfiltered build list without walking the index to them.

`OFFSET 900000` reads 900 000 index entries for every page. Instead, every `step`-th id
of the list is remembered (one index-only scan, redone in the background when older
than `ttl`, so no request waits for it; until the first one is done, offsets are plain);
a page
at offset k starts from the anchor at or above k and skips only the rest. Builds added
since the anchors were taken all have larger ids, so they shift every position by their
count (a cheap range scan). Builds deleted meanwhile shift positions by at most their
number until the next refresh; for pages that must not move, there is `before_id`.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import attrs
import structlog

from circus.db.queries import Q

log = structlog.get_logger(__name__)


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
        shifted = offset - await pool.fetchval(Q.api_builds_newer_than, self._max_id)
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
            row = await pool.fetchrow(Q.api_builds_anchors, self.step)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            log.warning("could not take the build list's offset anchors", error=str(exc))
            self._taken = time.monotonic()  # not again at once; plain offsets meanwhile
            return
        self._ids, self._max_id = row["ids"] or [], row["max_id"] or 0
        self._taken = time.monotonic()
