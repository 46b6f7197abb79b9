"""How a claimed build is turned into an Outcome. The runner takes any `Builder`:
Nix for real work, a no-op one for measuring the queue itself (bench/queue_throughput.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, Protocol

import attrs
import structlog

from circus.app.config import QueueRunnerConfig
from circus.domain.status import BuildStatus
from circus.nix import products
from circus.nix.build import LineSink, NixResult
from circus.nix.gcroots import GcRoots
from circus.proc import nix
from circus.proc.child import ChildError
from circus.runner import remote
from circus.runner.outcome import ClaimedBuild, Outcome
from circus.runner.publish import Publisher

log = structlog.get_logger(__name__)

# Beyond Nix's own --timeout: if Nix itself hangs, the runner gives up this much later.
WALL_CLOCK_SLACK = 60


class Builder(Protocol):
    async def build(self, build: ClaimedBuild, on_line: LineSink) -> Outcome:
        """Build it; cancelling the call must stop whatever it started."""
        ...


@attrs.define
class NoopBuilder:
    """Succeeds at once with no outputs; only for benchmarks of the queue."""

    async def build(self, build: ClaimedBuild, on_line: LineSink) -> Outcome:
        return Outcome(status=BuildStatus.SUCCEEDED)


@attrs.define
class NixBuilder:
    config: QueueRunnerConfig
    gcroots: GcRoots | None = None
    publisher: Publisher | None = None
    # logs.max_size: bytes of log a build may write; 0: unlimited.
    max_log_size: int = 0

    async def build(self, build: ClaimedBuild, on_line: LineSink) -> Outcome:
        timeout = build.timeout or self.config.build_timeout
        # Nix enforces the limit itself where it may (a local store, a trusted user: a
        # daemon ignores the option from others), so the log is also counted here.
        machine = build.machine
        argv = nix.build_argv(build.drv_path, timeout, build.max_silent,
                              self.max_log_size or None,
                              machine.build_flags() if machine else ())
        env = machine.build_env() if machine else None
        counter = _LogCounter(on_line, self.max_log_size)
        try:
            async with asyncio.timeout(timeout + WALL_CLOCK_SLACK):
                result = await _until_over(nix.build(argv, counter.line, env), counter)
        except TimeoutError:
            return Outcome(BuildStatus.TIMED_OUT, f"nix did not finish within {timeout} s")
        if (machine is not None and result is not None
                and result.status == BuildStatus.FAILED
                and remote.builder_failed(result.error or "")):
            # The connection or the machine failed, not the build: another machine's turn.
            result.status, result.infrastructure = BuildStatus.ABORTED, True
        if (result is None or result.status == BuildStatus.LOG_LIMIT_EXCEEDED
                or counter.over.is_set()):
            return self._over_limit(build, on_line)
        if result.status == BuildStatus.SUCCEEDED and counter.lines == 0:
            await _replay_stored_log(build.drv_path, on_line)
        outcome = Outcome(result.status, result.error, result.outputs, result.steps,
                          infrastructure=result.infrastructure)
        if result.status == BuildStatus.SUCCEEDED:
            await asyncio.to_thread(_inspect_outputs, outcome)
            await self._add_roots(build, outcome.outputs)
            if self.publisher is not None and outcome.status == BuildStatus.SUCCEEDED:
                await self.publisher.settle(build.id, outcome)  # cache, sign, upload
        return outcome

    def _over_limit(self, build: ClaimedBuild, on_line: LineSink) -> Outcome:
        message = (f"circus: log limit of {self.max_log_size} bytes exceeded; "
                   "the build was stopped")
        on_line(message)  # stored if it still fits; else the log sink's marker says it
        log.warning("build stopped: log limit exceeded", build_id=build.id,
                    max_log_size=self.max_log_size)
        return Outcome(BuildStatus.LOG_LIMIT_EXCEEDED, message)

    async def _add_roots(self, build: ClaimedBuild, outputs: dict[str, str]) -> None:
        if self.gcroots is None:
            return
        for path in outputs.values():
            try:
                await self.gcroots.add(path)
            except ChildError as exc:
                log.error("could not add a gc root", build_id=build.id, path=path,
                          error=str(exc))


@attrs.define(eq=False)
class _LogCounter:
    """Passes lines on and counts their bytes; `over` is set once past the limit."""

    on_line: LineSink
    limit: int
    lines: int = 0
    size: int = 0
    over: asyncio.Event = attrs.Factory(asyncio.Event)

    def line(self, text: str) -> None:
        self.lines += 1
        self.size += len(text.encode()) + 1
        if self.limit and self.size > self.limit:
            self.over.set()
        self.on_line(text)


async def _until_over(building: Coroutine[Any, Any, NixResult],
                      counter: _LogCounter) -> NixResult | None:
    """The build's result, or None when its log went past the limit first (the build is
    then cancelled, which stops Nix and its builder)."""
    task = asyncio.ensure_future(building)
    over = asyncio.ensure_future(counter.over.wait())
    try:
        await asyncio.wait({task, over}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        over.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return None if task.cancelled() else task.result()


async def _replay_stored_log(drv_path: str, on_line: LineSink) -> None:
    """Outputs already valid: Nix built nothing and printed nothing. Show the log of the
    build that made them, as a user reading this build's log expects."""
    stored = await nix.read_log(drv_path)
    on_line("circus: the outputs were already in the store; nothing was rebuilt."
            + (" Log of the build that made them:" if stored else ""))
    for line in stored:
        on_line(line)


def _inspect_outputs(outcome: Outcome) -> None:
    outcome.products = products.products_of(outcome.outputs)
    outcome.metrics = products.metrics_of(outcome.outputs)
    if products.failed_with_output(outcome.outputs):
        outcome.status = BuildStatus.FAILED_WITH_OUTPUT
        outcome.error = "the build reported failure (nix-support/failed)"
