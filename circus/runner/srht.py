"""The runner's builds.sr.ht side: claims queued jobs (`[srht] workers` at a time, of
the arches this runner has), renews their leases, puts back the jobs of runners that
died (a job starts again from the beginning), and stops a job the moment it is
cancelled. Woken by `circus_srht_jobs_queued` and `circus_srht_job_changed`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import attrs
import structlog

from circus.app.context import Context
from circus.domain.bus import SRHT_JOB_CHANGED, SRHT_JOBS_QUEUED
from circus.runner import srht_job
from circus.runner.systems import supported_systems
from circus.store import srht_jobs as rows

log = structlog.get_logger(__name__)

DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


@attrs.define(eq=False)
class JobRunner:
    ctx: Context
    arches: list[str]
    running: dict[int, tuple[asyncio.Task[str], asyncio.Event]] = attrs.Factory(dict)

    @property
    def lease(self) -> float:
        return float(self.ctx.config.queue_runner.lease_seconds)

    async def run(self) -> None:
        workers = self.ctx.config.srht.workers
        log.info("running sr.ht jobs", workers=workers, arches=self.arches)
        if workers == 0:
            await self.ctx.stopping.wait()
            return
        with self.ctx.bus.subscribe(SRHT_JOBS_QUEUED, SRHT_JOB_CHANGED) as sub:
            try:
                while not self.ctx.stopping.is_set():
                    try:
                        await self._round(workers)
                    except DB_ERRORS as exc:
                        log.error("sr.ht job round failed; will retry", error=str(exc))
                    await sub.wait(timeout=self.lease / 3)
            finally:
                for task, cancel in self.running.values():
                    cancel.set()
                    task.cancel()
                await asyncio.gather(*(t for t, _ in self.running.values()),
                                     return_exceptions=True)

    async def _round(self, workers: int) -> None:
        pool = self.ctx.pool
        reaped = await rows.reap(pool)
        if reaped:
            log.info("requeued sr.ht jobs of a runner that stopped", jobs=reaped)
        ours = await rows.renew(pool, self.ctx.instance, list(self.running), self.lease)
        for job_id, (_, cancel) in self.running.items():
            if job_id not in ours:  # cancelled, or no longer ours
                cancel.set()
        while len(self.running) < workers and not self.ctx.stopping.is_set():
            row = await rows.claim(pool, self.ctx.instance, self.lease, self.arches)
            if row is None:
                return
            self._start(row)

    def _start(self, row: asyncpg.Record) -> None:
        job_id, cancel = int(row["id"]), asyncio.Event()
        work = Path(self.ctx.config.queue_runner.work_dir) / "srht" / f"{job_id}"
        log.info("running sr.ht job", job_id=job_id, attempt=row["attempts"])
        task = asyncio.create_task(srht_job.run(self.ctx, row, work, cancel),
                                   name=f"srht-job-{job_id}")
        self.running[job_id] = (task, cancel)
        task.add_done_callback(lambda t: self._done(job_id, t))

    def _done(self, job_id: int, task: asyncio.Task[str]) -> None:
        self.running.pop(job_id, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("sr.ht job crashed; its lease will run out and it will run again",
                      job_id=job_id, error=repr(task.exception()))


async def run(ctx: Context) -> None:
    systems = await supported_systems(ctx.config.queue_runner.systems)
    await JobRunner(ctx, sorted({s.split("-", 1)[0] for s in systems})).run()
