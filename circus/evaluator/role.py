"""The evaluator role: evaluates each enabled jobset when its check interval elapsed or
when someone triggered it (NOTIFY `circus_eval_requested` wakes us at once; the poll
interval is only the safety net), at most `max_concurrent_evals` at a time.

A failed evaluation is the user's business (recorded on the jobset). A failure of the loop
itself (database gone, a bug) is logged and retried, or with `strict_errors` ends the role.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator

import asyncpg
import attrs
import structlog

from circus.app.config import EvaluatorConfig
from circus.app.context import Context
from circus.db.bus import EVAL_REQUESTED, Subscription
from circus.evaluator import evaljobs, workers
from circus.evaluator.evaluate import Jobset, evaluate_jobset
from circus.store import jobsets as jobset_rows

log = structlog.get_logger(__name__)

DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
# A broken database is retried this often at most, whatever the poll interval.
RETRY_SECONDS = 5.0


async def run(ctx: Context) -> None:
    cfg = ctx.config.evaluator
    limits, concurrent = _limits(cfg)
    log.info("evaluator started", poll_interval=cfg.poll_interval,
             max_concurrent_evals=concurrent, workers=limits.workers,
             max_memory_mb=limits.max_memory_mb, work_dir=cfg.work_dir,
             evaluator="nix-eval-jobs" if evaljobs.available() else "walk.nix")
    loop = _Loop(slots=asyncio.Semaphore(concurrent), limits=limits)
    with ctx.bus.subscribe(EVAL_REQUESTED) as sub:
        try:
            while not ctx.stopping.is_set():
                seconds = await _schedule(ctx, loop)
                await _wait(ctx, sub, loop.wake, seconds)
                if loop.crashed and cfg.strict_errors:
                    raise loop.crashed[0]
        finally:
            await _abandon(loop.running)
    log.info("evaluator stopped")


def _limits(cfg: EvaluatorConfig) -> tuple[workers.Limits, int]:
    total = workers.machine_memory_mb()
    limits, concurrent = workers.plan(cfg.workers, cfg.max_memory_mb,
                                      cfg.max_concurrent_evals, total)
    if (limits.workers, concurrent) != (cfg.workers, cfg.max_concurrent_evals):
        log.warning("evaluator lowered to fit the machine's memory: max_concurrent_evals "
                    "x workers x max_memory_mb must stay within it",
                    memory_mb=int(total), max_memory_mb=cfg.max_memory_mb,
                    workers=f"{cfg.workers} -> {limits.workers}",
                    max_concurrent_evals=f"{cfg.max_concurrent_evals} -> {concurrent}")
    return limits, concurrent


@attrs.define
class _Loop:
    slots: asyncio.Semaphore
    limits: workers.Limits
    running: dict[int, asyncio.Task[None]] = attrs.Factory(dict)
    # Set when an evaluation ends: a trigger that came meanwhile is due now.
    wake: asyncio.Event = attrs.Factory(asyncio.Event)
    crashed: list[BaseException] = attrs.Factory(list)

    def finished(self, jobset_id: int, task: asyncio.Task[None]) -> None:
        self.running.pop(jobset_id, None)
        if not task.cancelled() and task.exception() is not None:
            self.crashed.append(task.exception())  # type: ignore[arg-type]
        self.wake.set()


async def _schedule(ctx: Context, loop: _Loop) -> float:
    """Start an evaluation for each due jobset; seconds until the next one is due."""
    poll = float(ctx.config.evaluator.poll_interval)
    try:
        rows = await jobset_rows.due(ctx.pool, list(loop.running))
        for row in rows:
            jobset = Jobset(**dict(row))
            task = asyncio.create_task(_in_slot(ctx, loop, jobset),
                                       name=f"evaluate {jobset.label}")
            loop.running[jobset.id] = task
            task.add_done_callback(functools.partial(loop.finished, jobset.id))
        due_in = await jobset_rows.seconds_until_due(ctx.pool, list(loop.running))
    except DB_ERRORS as exc:
        log.error("evaluator cannot read the jobsets; retrying", error=str(exc),
                  error_type=type(exc).__name__)
        if ctx.config.evaluator.strict_errors:
            raise
        return min(poll, RETRY_SECONDS)
    return poll if due_in is None else max(0.05, min(poll, due_in))


async def _in_slot(ctx: Context, loop: _Loop, jobset: Jobset) -> None:
    async with loop.slots:
        if ctx.stopping.is_set():
            return
        try:
            async with _exclusive(ctx, jobset) as ours:
                if ours:
                    await evaluate_jobset(ctx, jobset, loop.limits)
                else:
                    log.info("jobset is being evaluated by another process; skipped",
                             jobset=jobset.label)
            return
        except DB_ERRORS as exc:
            log.error("evaluation lost its database", jobset=jobset.label, error=str(exc))
            if ctx.config.evaluator.strict_errors:
                raise
        except Exception:
            log.exception("evaluation crashed", jobset=jobset.label)
            if ctx.config.evaluator.strict_errors:
                raise
    # Nothing was recorded, so the jobset is still due: do not retry it in a hot loop.
    await ctx.sleep_or_stop(min(float(ctx.config.evaluator.poll_interval), 30.0))


@contextlib.asynccontextmanager
async def _exclusive(ctx: Context, jobset: Jobset) -> AsyncIterator[bool]:
    """Whether this process may evaluate `jobset` now (another evaluator may be at it)."""
    async with ctx.pool.acquire() as conn:
        ours = await jobset_rows.try_lock(conn, jobset.id)
        try:
            yield ours
        finally:
            if ours and not conn.is_closed():
                await jobset_rows.unlock(conn, jobset.id)


async def _wait(ctx: Context, sub: Subscription, wake: asyncio.Event, seconds: float) -> None:
    """Until a trigger, a finished evaluation, a stop request or `seconds` pass."""
    waiters = [asyncio.ensure_future(sub.wait(seconds)),
               asyncio.ensure_future(ctx.stopping.wait()),
               asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        wake.clear()


async def _abandon(running: dict[int, asyncio.Task[None]]) -> None:
    """Stop evaluations in progress; their Nix processes are killed, and the next start
    takes each over where its row is still running (circus.store.ingest.start)."""
    tasks = list(running.values())
    for task in tasks:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*tasks, return_exceptions=True)
