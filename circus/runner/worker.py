"""One claimed build, start to finish: stream its log, build it, record the outcome."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import structlog
from structlog.typing import FilteringBoundLogger

from circus.app.config import QueueRunnerConfig
from circus.domain.status import BuildStatus
from circus.runner import lease, remote, results
from circus.runner.builders import Builder
from circus.runner.finisher import Finisher
from circus.runner.logsink import LogSink
from circus.runner.outcome import ClaimedBuild, Outcome

log = structlog.get_logger(__name__)


def resolved_log() -> FilteringBoundLogger:
    """This module's logger as configured now, for `execute(runner_log=...)`."""
    bound: FilteringBoundLogger = log.bind()
    return bound


async def execute(pool: asyncpg.Pool, finisher: Finisher, builder: Builder,
                  build: ClaimedBuild, cfg: QueueRunnerConfig,
                  runner_log: FilteringBoundLogger | None = None) -> None:
    """Build and record. Cancelled (build cancelled, lease lost, shutdown): the build
    process is stopped, the log so far kept, and no status written. A failure of the
    machine rather than the build goes back to the queue `cfg.infrastructure_retries` times,
    then ends as aborted (3), never as failed (1). `runner_log`: a logger resolved once
    by the caller, so a build does not pay for structlog's lazy proxy re-resolving its
    configuration on every call."""
    blog = (runner_log or log).bind(build_id=build.id, job=build.job,
                                    jobset=f"{build.project}:{build.jobset}")
    machine = build.machine.name if build.machine else "local"
    blog.info("build claimed", drv=build.drv_path, system=build.system, attempt=build.attempts,
              machine=machine)
    started = time.monotonic()
    # The builder that knows logs.max_size also bounds what is stored (the no-op one: 0).
    sink = LogSink(pool, build.id, max_size=getattr(builder, "max_log_size", 0))
    try:
        outcome = await _run(builder, build, sink)
    except asyncio.CancelledError:
        await asyncio.shield(_after_cancel(pool, sink, build.id))
        blog.info("build stopped before it finished",
                  duration=round(time.monotonic() - started, 3))
        raise
    except Exception as exc:
        blog.exception("build could not be run", error=str(exc))
        outcome = Outcome(BuildStatus.ABORTED, f"runner error: {exc}", infrastructure=True)
    await sink.close()
    if build.machine is not None and build.failed_in is None:
        await remote.report(pool, build.machine, not outcome.infrastructure, outcome.error,
                            cfg)
    if outcome.infrastructure:
        if build.attempts <= cfg.infrastructure_retries:
            blog.warning("the machine failed, not the build; queued again",
                         attempt=build.attempts, error=outcome.error)
            await lease.hand_back(pool, finisher.runner_id, [build.id])
            return
        outcome.status = BuildStatus.ABORTED
        outcome.error = (f"infrastructure failure, {build.attempts} attempts: "
                         f"{outcome.error}")
    recorded = await finisher.finish(build, outcome, sink.written)
    duration = round(time.monotonic() - started, 3)
    if recorded:
        blog.info("build finished", status=outcome.status, duration=duration,
                  error=outcome.error)
    else:
        blog.warning("build result dropped: the build is no longer ours (cancelled or "
                     "reaped)", status=outcome.status, duration=duration)


async def _run(builder: Builder, build: ClaimedBuild, sink: LogSink) -> Outcome:
    if build.failed_in is not None:
        message = (f"cached failure: {build.drv_path} failed in build {build.failed_in}; "
                   "restart this build to build it again")
        sink.add(f"circus: {message}")
        return Outcome(BuildStatus.CACHED_FAILURE, message)
    return await builder.build(build, sink.add)


async def _after_cancel(pool: asyncpg.Pool, sink: LogSink, build_id: int) -> None:
    await sink.close()
    await results.fold_cancelled_log(pool, build_id)
