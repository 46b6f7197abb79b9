"""Streams a running build's log into `build_log_chunks`, a batch of lines at a time.

Lines that arrive within one flush interval become one chunk (and one notification),
so a chatty builder costs a few inserts a second, not one per line. A chunk holds at
most CHUNK_CHARS, so a reader paging by byte offset never fetches a huge row. Past
`max_size` bytes nothing more is kept (not even in memory): one marker line says so,
and the log in the database never exceeds the limit by more than that line.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import attrs
import structlog

from circus.store import logs

FLUSH_INTERVAL = 0.075
CHUNK_CHARS = 256 * 1024

log = structlog.get_logger(__name__)


def limit_marker(max_size: int) -> str:
    """The line that ends a log cut at the limit (the runner's error message says it too)."""
    return f"circus: log limit of {max_size} bytes exceeded; the rest of the log was not stored"


def pieces(lines: list[str], size: int = CHUNK_CHARS) -> list[str]:
    """The lines joined into pieces of at most `size` characters, cut between lines
    where it can (a single longer line is cut where it must)."""
    out: list[str] = []
    current: list[str] = []
    length = 0
    for line in lines:
        if current and length + len(line) > size:
            out.append("".join(current))
            current, length = [], 0
        while len(line) > size:
            out.append(line[:size])
            line = line[size:]
        current.append(line)
        length += len(line)
    if current:
        out.append("".join(current))
    return out


@attrs.define(eq=False)
class LogSink:
    pool: asyncpg.Pool
    build_id: int
    interval: float = FLUSH_INTERVAL
    max_size: int = 0  # bytes; 0: unlimited
    _lines: list[str] = attrs.Factory(list)
    _seq: int = 0
    _kept: int = 0  # bytes taken in (stored or waiting to be)
    _full: bool = False
    _closing: asyncio.Event = attrs.Factory(asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def add(self, line: str) -> None:
        if self._full:
            return
        line = logs.clean(line) + "\n"
        size = len(line.encode())
        if self.max_size and self._kept + size > self.max_size:
            self._full = True
            line = limit_marker(self.max_size) + "\n"
            log.warning("build log limit reached; dropping the rest", build_id=self.build_id,
                        max_size=self.max_size)
        self._kept += len(line.encode()) if self._full else size
        self._lines.append(line)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"log-{self.build_id}")

    @property
    def full(self) -> bool:
        """Whether the limit was reached (and the rest of the log dropped)."""
        return self._full

    async def _run(self) -> None:
        while not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._closing.wait()
            await self.flush()

    async def flush(self) -> None:
        waiting, self._lines = pieces(self._lines), []
        while waiting:
            try:
                async with self.pool.acquire() as conn:
                    await logs.append_chunk(conn, self.build_id, self._seq, waiting[0])
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
                # Kept for the next flush: a lost chunk would leave a hole in the log.
                self._lines[:0] = waiting
                log.error("could not store log chunk; will retry", build_id=self.build_id,
                          error=str(exc))
                return
            waiting.pop(0)
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
