"""Streams a running build's log into `build_log_chunks`, a batch of lines at a time.

Lines that arrive within one flush interval become one chunk (and one notification),
so a chatty builder costs a few inserts a second, not one per line.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import attrs
import structlog

from circus import logstore

FLUSH_INTERVAL = 0.075

log = structlog.get_logger(__name__)


@attrs.define(eq=False)
class LogSink:
    pool: asyncpg.Pool
    build_id: int
    interval: float = FLUSH_INTERVAL
    _lines: list[str] = attrs.Factory(list)
    _seq: int = 0
    _closing: asyncio.Event = attrs.Factory(asyncio.Event)
    _task: asyncio.Task | None = None

    def add(self, line: str) -> None:
        self._lines.append(line + "\n")
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"log-{self.build_id}")

    async def _run(self) -> None:
        while not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.interval)
            await self.flush()

    async def flush(self) -> None:
        if not self._lines:
            return
        data, self._lines = "".join(self._lines), []
        try:
            async with self.pool.acquire() as conn:
                await logstore.append_chunk(conn, self.build_id, self._seq, data)
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
            # Kept for the next flush: a lost chunk would leave a hole in the log.
            self._lines.insert(0, data)
            log.error("could not store log chunk; will retry", build_id=self.build_id,
                      error=str(exc))
            return
        self._seq += 1

    @property
    def written(self) -> bool:
        """Whether any chunk was stored (else there is no log to fold)."""
        return self._seq > 0

    async def close(self) -> None:
        """Write what is left; shielded so a cancelled build still keeps its last lines."""
        self._closing.set()
        if self._task is not None:
            await asyncio.shield(self._task)
        await self.flush()
