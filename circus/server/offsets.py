"""Deep offsets of the unfiltered build list without walking the index to them.

`OFFSET 900000` reads 900 000 index entries for every page. Instead, every `step`-th id
of the list is remembered (one index-only scan, redone when older than `ttl`); a page
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

from circus.db.queries import Q


@attrs.define(eq=False)
class OffsetAnchors:
    step: int = 10_000
    ttl: float = 30.0
    _ids: list[int] = attrs.Factory(list)
    _max_id: int = 0
    _taken: float = float("-inf")
    _lock: asyncio.Lock = attrs.Factory(asyncio.Lock)

    async def locate(self, pool: asyncpg.Pool, offset: int) -> tuple[int | None, int]:
        """(before_id, offset) to ask for instead of the plain offset."""
        if offset < self.step:
            return None, offset
        await self._refresh(pool)
        shifted = offset - await pool.fetchval(Q.api_builds_newer_than, self._max_id)
        index = min(shifted // self.step, len(self._ids))
        if index < 1:
            return None, offset
        return self._ids[index - 1] + 1, shifted - index * self.step

    async def _refresh(self, pool: asyncpg.Pool) -> None:
        if time.monotonic() - self._taken < self.ttl:
            return
        async with self._lock:
            if time.monotonic() - self._taken < self.ttl:
                return
            row = await pool.fetchrow(Q.api_builds_anchors, self.step)
            self._ids, self._max_id = row["ids"] or [], row["max_id"] or 0
            self._taken = time.monotonic()
