"""The runner role: claims ready builds from the queue and builds them, `workers` at a time.

Woken by `circus_builds_queued` (the poll interval is only a safety net). Side tasks
renew the leases of our running builds, return builds of dead runners to the queue,
and stop a build the moment it is cancelled or its lease is lost. On stop: no new
claims, running builds get `shutdown_grace` seconds, the rest are stopped and handed
back to the queue.

Every side task is watched: one that dies of an unexpected error (database errors are
retried inside it) is logged, the role stops as above, and the error leaves `run` as a
TaskFailed, so `circus run` exits with status 1 rather than carry on half-working.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

import asyncpg
import attrs
import structlog
from structlog.typing import FilteringBoundLogger

from circus.app.config import QueueRunnerConfig
from circus.app.context import Context
from circus.db.bus import BUILD_CHANGED, BUILDS_QUEUED, RECONNECTED, Subscription
from circus.domain.bus import BUILDERS_CHANGED
from circus.domain.errors import TaskFailed
from circus.nix.gcroots import GcRoots
from circus.notify import retry_queue as notification_queue
from circus.runner import expiry, lease, remote, srht, worker
from circus.runner.builders import Builder, NixBuilder
from circus.runner.finisher import Finisher
from circus.runner.outcome import ClaimedBuild
from circus.runner.publish import Publisher
from circus.runner.systems import local_features, supported_systems
from circus.store import build_queue as queue
from circus.store import dispatch

log = structlog.get_logger(__name__)

DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
# How long notifications about our running builds are gathered before one check.
CHECK_WINDOW = 0.05
# How often builders are looked at for a due probe (a back-off ending, the interval over).
PROBE_TICK = 2.0

SideTask = Callable[[], Coroutine[Any, Any, None]]


async def run(ctx: Context) -> None:
    gcroots = None
    if ctx.config.gc.enabled:
        gcroots = GcRoots.choose(ctx.config.gc.gc_roots_dir, ctx.config.state_dir)
    publisher = Publisher.from_config(ctx.config, ctx.pool)
    builder = NixBuilder(ctx.config.queue_runner, gcroots, publisher,
                         max_log_size=ctx.config.logs.max_size)
    # The runner holds the roots, so it sweeps them too: see runner/expiry.py. Any
    # runner sends notifications as well, so a runner-only host drains the queue too.
    side = {**expiry.side_tasks(ctx, gcroots),
            "runner-notifications": lambda: notification_queue.run(ctx),
            "runner-srht-jobs": lambda: srht.run(ctx)}
    await serve(ctx, builder, side)


async def serve(ctx: Context, builder: Builder, extra: Mapping[str, SideTask] | None = None,
                ) -> None:
    """Run the queue with any builder (the benchmarks pass a no-op one); `extra` side
    tasks run and are watched like the runner's own."""
    systems = await supported_systems(ctx.config.queue_runner.systems)
    features = await local_features()
    await Runner(ctx, builder, systems, features, dict(extra or {})).run()


@attrs.define(eq=False)
class Runner:
    ctx: Context
    builder: Builder
    systems: list[str]
    # The system features of this runner's own Nix (a build requiring others goes to a
    # remote builder that has them).
    features: list[str]
    extra: dict[str, SideTask] = attrs.Factory(dict)
    running: dict[int, asyncio.Task[None]] = attrs.Factory(dict)
    # The running builds that run on a remote builder: they take none of `workers`.
    remote: set[int] = attrs.Factory(set)
    # Whether any builder is enabled (kept by the probe loop), so a runner without
    # builders spends no query per claim on them.
    has_builders: bool = True
    wake: asyncio.Event = attrs.Factory(asyncio.Event)
    _background: set[asyncio.Task[object]] = attrs.Factory(set)
    _finisher: Finisher = attrs.field(init=False)
    _build_log: FilteringBoundLogger = attrs.field(init=False)
    _failure: TaskFailed | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        self._finisher = Finisher(self.ctx.pool, self.ctx.instance, slot_freed=self.wake,
                                  remember_failures=self.cfg.failed_paths_cache)
        self._build_log = worker.resolved_log()

    @property
    def cfg(self) -> QueueRunnerConfig:
        return self.ctx.config.queue_runner

    async def run(self) -> None:
        log.info("runner started", runner=self.ctx.instance, workers=self.cfg.workers,
                 systems=self.systems, lease_seconds=self.cfg.lease_seconds)
        await self._maintain_once()
        with self.ctx.bus.subscribe(BUILDS_QUEUED, BUILD_CHANGED) as sub:
            side = [self._watch(name, coro) for name, coro in self._side_tasks(sub)]
            try:
                await self._claim_loop()
                await self._drain()
            finally:
                for task in side:
                    task.cancel()
                await asyncio.gather(*side, *self._background, return_exceptions=True)
        log.info("runner stopped", runner=self.ctx.instance)
        if self._failure is not None:
            raise self._failure from self._failure.cause

    def _side_tasks(self, sub: Subscription) -> list[tuple[str, Coroutine[Any, Any, None]]]:
        own = [
            ("runner-listen", self._listen(sub)),
            ("runner-heartbeat", self._every(self.cfg.lease_seconds / 3, self._heartbeat)),
            ("runner-maintain", self._every(self.cfg.lease_seconds, self._maintain_once)),
            ("runner-stop", self._wake_on_stop()),
            ("runner-probes", self._probe_builders()),
        ]
        return own + [(name, start()) for name, start in self.extra.items()]

    def _watch(self, name: str, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._side_done)
        return task

    def _side_done(self, task: asyncio.Task[None]) -> None:
        # Without its side tasks the runner would keep claiming builds whose leases
        # nobody renews or whose cancellation nobody notices: stop instead of limping on.
        if task.cancelled() or (exc := task.exception()) is None:
            return
        log.error("runner task failed; stopping the runner", task=task.get_name(),
                  error=repr(exc))
        if self._failure is None:  # the first failure is the one reported
            self._failure = TaskFailed(task.get_name(), exc)
        self.wake.set()

    def _stopping(self) -> bool:
        return self.ctx.stopping.is_set() or self._failure is not None

    async def _claim_loop(self) -> None:
        while not self._stopping():
            self.wake.clear()
            try:
                await self._fill()
            except DB_ERRORS as exc:
                log.error("claiming builds failed; retrying", error=str(exc))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.cfg.poll_interval):
                    await self.wake.wait()

    async def _fill(self) -> None:
        """Remote builders first, each for as many builds as it has free slots, in the
        order of the scheduling strategy; then this runner's own workers."""
        while not self._stopping():
            claimed = await self._fill_remote()
            free = self.cfg.workers - self._busy()
            if free <= 0:
                return
            async with self.ctx.pool.acquire() as conn:
                rows = await queue.claim(conn, self.ctx.instance, self.systems,
                                         float(self.cfg.lease_seconds), free, None,
                                         self.features, (), self._failed_paths_ttl)
            for row in rows:
                self._start(ClaimedBuild.from_row(row))
            if len(rows) < free and not claimed:
                return

    async def _fill_remote(self) -> int:
        cfg, claimed = self.cfg, 0
        if not self.has_builders:
            return 0
        builders = await dispatch.dispatchable(self.ctx.pool, cfg.psi_threshold,
                                               cfg.scheduling_strategy)
        for row in builders:
            rows = await dispatch.claim_for_builder(
                self.ctx.pool, self.ctx.instance, row, float(cfg.lease_seconds),
                row["free"], self._failed_paths_ttl)
            machine = remote.Machine.from_row(row)
            for build in rows:
                self.remote.add(build["id"])
                self._start(ClaimedBuild.from_row(build, machine))
            claimed += len(rows)
        return claimed

    @property
    def _failed_paths_ttl(self) -> float | None:
        return float(self.cfg.failed_paths_ttl) if self.cfg.failed_paths_cache else None

    def _busy(self) -> int:
        """Worker slots in use by local builds: a build whose outcome waits to be recorded
        needs none, so the next claim overlaps that write."""
        return len(self.running.keys() - self.remote - self._finisher.in_hand)

    def _start(self, build: ClaimedBuild) -> None:
        task = asyncio.create_task(
            worker.execute(self.ctx.pool, self._finisher, self.builder, build, self.cfg,
                           self._build_log),
            name=f"build-{build.id}")
        self.running[build.id] = task
        task.add_done_callback(lambda t: self._done(build.id, t))

    def _done(self, build_id: int, task: asyncio.Task[None]) -> None:
        self.running.pop(build_id, None)
        self.remote.discard(build_id)
        self.wake.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("build worker failed; handing the build back", build_id=build_id,
                      error=repr(task.exception()))
            self._spawn(lease.hand_back(self.ctx.pool, self.ctx.instance, [build_id]))

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _stop_builds(self, build_ids: set[int], reason: str) -> None:
        for build_id in build_ids:
            task = self.running.get(build_id)
            if task is not None:
                log.info("stopping build", build_id=build_id, reason=reason)
                task.cancel()

    async def _listen(self, sub: Subscription) -> None:
        while True:
            changed = self._heard(await sub.wait())
            if not changed:
                continue
            # Our own claims and finishes notify too. Gathering what arrives within a
            # short window checks them all with one query, still well within the second
            # a cancelled build has to stop in.
            deadline = asyncio.get_running_loop().time() + CHECK_WINDOW
            while (left := deadline - asyncio.get_running_loop().time()) > 0:
                changed |= self._heard(await sub.wait(timeout=left))
            try:
                gone = await lease.lost(self.ctx.pool, self.ctx.instance,
                                        [i for i in changed if i in self.running])
            except DB_ERRORS as exc:
                log.error("checking changed builds failed", error=str(exc))
                continue
            self._stop_builds(gone, "cancelled")

    def _heard(self, items: list[tuple[str, str]]) -> set[int]:
        """Wakes the claim loop if builds were queued; returns the running builds that
        changed (all of them after a reconnect)."""
        channels = {channel for channel, _ in items}
        if channels & {BUILDS_QUEUED, RECONNECTED}:
            self.wake.set()
        if RECONNECTED in channels:
            return set(self.running)
        return {int(p) for c, p in items
                if c == BUILD_CHANGED and p.isdigit() and int(p) in self.running}

    async def _heartbeat(self) -> None:
        gone = await lease.renew(self.ctx.pool, self.ctx.instance, list(self.running),
                                 float(self.cfg.lease_seconds))
        self._stop_builds(gone, "lease lost")

    async def _maintain_once(self) -> None:
        reaped = await lease.reap_expired(self.ctx.pool)
        if reaped:
            log.info("returned builds with expired leases to the queue", builds=reaped)
        if self.cfg.unsupported_timeout:
            failed = await lease.fail_unsupported(self.ctx.pool, self.systems, self.features,
                                                  self.cfg.unsupported_timeout)
            if failed:
                log.info("finished builds no runner supports as unsupported", builds=failed)

    async def _every(self, seconds: float, step: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await step()
            except DB_ERRORS as exc:
                log.error("periodic runner task failed; will retry", task=step.__name__,
                          error=str(exc))

    async def _probe_builders(self) -> None:
        """Probes remote builders: new and changed ones at once (their notification),
        the others every builder_probe_interval, a disabled one when its back-off ends."""
        log.info("probing remote builders", interval=self.cfg.builder_probe_interval)
        with self.ctx.bus.subscribe(BUILDERS_CHANGED) as sub:
            while True:
                try:
                    self.has_builders = bool(await dispatch.known_systems(self.ctx.pool))
                    await remote.probe_due(self.ctx.pool, self.cfg)
                except DB_ERRORS as exc:
                    log.error("probing remote builders failed; will retry", error=str(exc))
                await sub.wait(timeout=PROBE_TICK)

    async def _wake_on_stop(self) -> None:
        await self.ctx.stopping.wait()
        self.wake.set()

    async def _drain(self) -> None:
        if not self.running:
            return
        grace = self.cfg.shutdown_grace
        log.info("stopping: waiting for running builds", builds=list(self.running),
                 grace=grace)
        await asyncio.wait(list(self.running.values()), timeout=grace)
        unfinished = dict(self.running)
        for task in unfinished.values():
            task.cancel()
        await asyncio.gather(*unfinished.values(), return_exceptions=True)
        returned = await lease.hand_back(self.ctx.pool, self.ctx.instance, list(unfinished))
        if returned:
            log.info("handed unfinished builds back to the queue", builds=returned)
