"""Records build outcomes, batching those that arrive while a write is in flight.

Each batch is one statement (or one transaction when there are results or logs to
store), so a busy runner commits once per batch instead of once per build; a lone
build is written at once. Per build nothing changes: only a build still running
under this runner is finished, and its dependents are failed or announced as before.
"""

from __future__ import annotations

import asyncio

import asyncpg
import attrs
import structlog

from circus.runner import results
from circus.runner.outcome import ClaimedBuild, Outcome
from circus.runner.results import Ending
from circus.services import promotion

log = structlog.get_logger(__name__)


@attrs.define(eq=False)
class Finisher:
    pool: asyncpg.Pool
    runner_id: str
    # Set when an outcome is handed over: its build no longer needs a worker slot.
    slot_freed: asyncio.Event | None = None
    # queue_runner.failed_paths_cache: failed derivations are remembered.
    remember_failures: bool = False
    # The builds whose outcomes are handed over and not yet recorded.
    in_hand: set[int] = attrs.Factory(set)
    _pending: list[tuple[Ending, asyncio.Future[bool]]] = attrs.Factory(list)
    _task: asyncio.Task[None] | None = None

    async def finish(self, build: ClaimedBuild, outcome: Outcome, has_log: bool) -> bool:
        """Store the outcome unless the build is no longer ours: False then. Cancelling
        the caller does not withdraw the outcome once handed over."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((Ending(build, outcome, has_log), done))
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="runner-finisher")
        self.in_hand.add(build.id)
        if self.slot_freed is not None:
            self.slot_freed.set()
        try:
            return await done
        finally:
            self.in_hand.discard(build.id)

    async def _run(self) -> None:
        batch: list[tuple[Ending, asyncio.Future[bool]]] = []
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                await self._write(batch)
        finally:
            self._task = None
            for _, done in batch + self._pending:  # stopped midway: nobody waits forever
                done.cancel()
            self._pending = []

    async def _write(self, batch: list[tuple[Ending, asyncio.Future[bool]]]) -> None:
        try:
            recorded = await results.finish_many(self.pool, self.runner_id,
                                                 [ending for ending, _ in batch],
                                                 self.remember_failures)
        except Exception as exc:
            if len(batch) > 1:
                # One build's results must not sink the others: each on its own.
                log.warning("recording a batch of outcomes failed; one by one",
                            builds=len(batch), error=str(exc))
                for item in batch:
                    await self._write([item])
                return
            _settle(batch[0][1], exc)
            return
        for ending, done in batch:
            _settle(done, ending.build.id in recorded)
        await promotion.advance(self.pool, build_ids=recorded)  # a green evaluation moves them


def _settle(done: asyncio.Future[bool], result: bool | BaseException) -> None:
    if done.done():  # the waiting worker was cancelled meanwhile
        return
    if isinstance(result, BaseException):
        done.set_exception(result)
    else:
        done.set_result(result)
