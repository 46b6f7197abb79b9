"""The bus: one dedicated connection that LISTENs on Circus's channels and hands
notifications to subscribers in this process.

Writers send with `pg_notify` inside the transaction that changed the rows (in the named
queries), so a rolled-back change wakes nobody. Payloads are ids; the rows are the truth.
When the connection drops, the bus reconnects, re-LISTENs, and tells every subscriber
`RECONNECTED` so it catches up from the database: a notification lost meanwhile delays
work, it never loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import asyncpg
import attrs
import structlog

# The channel names live in the domain; re-exported so `bus.BUILD_LOG` etc. keep working.
from circus.domain.bus import BUILD_CHANGED as BUILD_CHANGED
from circus.domain.bus import BUILD_LOG as BUILD_LOG
from circus.domain.bus import BUILDS_QUEUED as BUILDS_QUEUED
from circus.domain.bus import CHANNELS as CHANNELS
from circus.domain.bus import EVAL_CHANGED as EVAL_CHANGED
from circus.domain.bus import EVAL_REQUESTED as EVAL_REQUESTED
from circus.domain.bus import NOTIFICATIONS as NOTIFICATIONS
from circus.domain.bus import RECONNECTED as RECONNECTED
from circus.domain.bus import SERVER_CLOSING as SERVER_CLOSING

log = structlog.get_logger(__name__)

PROBE_INTERVAL = 15.0


@attrs.define(eq=False)
class Subscription:
    channels: frozenset[str]
    queue: asyncio.Queue[tuple[str, str]] = attrs.Factory(asyncio.Queue)

    async def wait(self, timeout: float | None = None) -> list[tuple[str, str]]:  # noqa: ASYNC109
        """Every notification so far, waiting up to `timeout` for the first one."""
        # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancellation
        # that arrives as the item does, and a loop around this then never stops.
        try:
            async with asyncio.timeout(timeout):
                first = await self.queue.get()
        except TimeoutError:
            return []
        items = [first]
        while not self.queue.empty():
            items.append(self.queue.get_nowait())
        return items


@attrs.define(eq=False)
class Bus:
    url: str
    _conn: asyncpg.Connection | None = None
    _subs: set[Subscription] = attrs.Factory(set)
    _lost: asyncio.Event = attrs.Factory(asyncio.Event)
    _task: asyncio.Task[None] | None = None
    connected: asyncio.Event = attrs.Factory(asyncio.Event)

    async def start(self) -> None:
        await self._connect()
        self._task = asyncio.create_task(self._watch(), name="bus-watch")

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()

    @contextlib.contextmanager
    def subscribe(self, *channels: str) -> Iterator[Subscription]:
        sub = Subscription(frozenset(channels))
        self._subs.add(sub)
        try:
            yield sub
        finally:
            self._subs.discard(sub)

    @contextlib.asynccontextmanager
    async def listening(self, *channels: str) -> AsyncIterator[Subscription]:
        with self.subscribe(*channels) as sub:
            yield sub

    def _dispatch(self, _conn: object, _pid: int, channel: str, payload: str) -> None:
        for sub in self._subs:
            if channel in sub.channels:
                sub.queue.put_nowait((channel, payload))

    def _on_termination(self, _conn: object) -> None:
        self.connected.clear()
        self._lost.set()

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self.url, timeout=10)
        conn.add_termination_listener(self._on_termination)
        for channel in CHANNELS:
            await conn.add_listener(channel, self._dispatch)
        self._conn = conn
        self._lost.clear()
        self.connected.set()

    async def _watch(self) -> None:
        """Probe the connection; on loss, reconnect with backoff and tell subscribers."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PROBE_INTERVAL):
                    await self._lost.wait()
            if not self._lost.is_set():
                try:
                    async with asyncio.timeout(5):
                        await self._conn.fetchval("SELECT 1")  # type: ignore[union-attr]
                    continue
                except (asyncpg.PostgresError, OSError, TimeoutError,
                        asyncpg.InterfaceError) as exc:
                    log.warning("bus connection probe failed", error=str(exc))
            await self._reconnect()

    async def _reconnect(self) -> None:
        self.connected.clear()
        if self._conn is not None and not self._conn.is_closed():
            self._conn.terminate()
        delay = 0.2
        while True:
            try:
                await self._connect()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError,
                    TimeoutError) as exc:
                log.warning("bus reconnect failed", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            log.info("bus reconnected; subscribers will catch up")
            for sub in self._subs:
                sub.queue.put_nowait((RECONNECTED, ""))
            return
