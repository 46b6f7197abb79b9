"""Circus's walker run as `workers` Nix processes, each walking one share of the jobs and
printing each job as soon as it is done (walk.nix's streaming mode), so the first builds
can be queued while the rest is still evaluating.

A worker that dies is started again just after the last job it printed. If it died of an
error tryEval cannot catch, the job it was on gets Nix's message as its error. If it died
because its resident memory passed `max_memory_mb`, that job is tried once more in the
fresh worker; the second time, the limit is recorded as its error. The other jobs are
still evaluated either way.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path

import attrs
import structlog

from circus.evaluator.jobs import JobRecord, from_walker
from circus.evaluator.nixeval import EvalError, Target, nix_message, walker_argv
from circus.proc import child

log = structlog.get_logger(__name__)

Emit = Callable[[JobRecord], None]

# How often a worker's resident memory is read.
MEMORY_POLL = 0.1
PAGE = os.sysconf("SC_PAGE_SIZE")


@attrs.frozen
class Limits:
    workers: int = 1
    max_memory_mb: int = 4096


async def stream(target: Target, limits: Limits, emit: Emit) -> None:
    """Evaluate every job of `target`, passing each to `emit` as it comes (good jobs and
    failed ones); EvalError when the jobs value itself cannot be evaluated."""
    tag = secrets.token_hex(8)
    tasks = [asyncio.create_task(_shard(target, tag, shard, limits, emit))
             for shard in range(limits.workers)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@attrs.define
class _Walk:
    """What one worker process printed so far."""

    prefix: str
    emit: Emit
    # The path it began last, whether that one was printed, and the last one printed.
    current: list[str] | None = None
    current_done: bool = False
    last_done: list[str] | None = None
    errors: collections.deque[str] = attrs.Factory(lambda: collections.deque(maxlen=50))

    def feed(self, line: str) -> None:
        if not line.startswith(self.prefix):
            self.errors.append(line)
            return
        kind, _, body = line[len(self.prefix):].partition(" ")
        if kind == "B":
            self.current, self.current_done = json.loads(body), False
        elif kind == "R":
            self.emit(from_walker(json.loads(body)))
            self.current_done, self.last_done = True, self.current


async def _shard(target: Target, tag: str, shard: int, limits: Limits, emit: Emit) -> None:
    after: list[str] | None = None
    retried: set[tuple[str, ...]] = set()
    bound = log.bind(shard=shard)
    while True:
        walk = _Walk(f"trace: {tag} ", emit)
        argv = walker_argv(target, [], tag=tag, shard=shard, shards=limits.workers,
                           after=after)
        done = await _watched(argv, walk, limits.max_memory_mb)
        if done is not None and done.ok:
            return
        culprit = walk.current
        message = (f"evaluating this job took more than evaluator.max_memory_mb "
                   f"({limits.max_memory_mb} MiB); its Nix process was stopped"
                   if done is None else nix_message("\n".join(walk.errors)))
        if not culprit or walk.current_done:
            raise EvalError(message)
        attr = ".".join(culprit)
        if done is None and tuple(culprit) not in retried:
            retried.add(tuple(culprit))
            bound.warning("evaluation worker passed its memory limit; retrying the job "
                          "in a fresh one", attr=attr, max_memory_mb=limits.max_memory_mb)
            after = walk.last_done or after
            continue
        bound.info("job failed its worker; going on after it", attr=attr,
                   error=message.splitlines()[0])
        emit(JobRecord(attr=attr, error=message, attr_path=culprit))
        after = culprit


async def _watched(argv: list[str], walk: _Walk, max_memory_mb: int) -> child.Result | None:
    """Run one worker; None when it was stopped for passing `max_memory_mb`."""
    pids: list[int] = []
    task = asyncio.ensure_future(child.run(argv, name="nix eval", on_stderr_line=walk.feed,
                                           on_start=pids.append))
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=MEMORY_POLL)
            if pids and not task.done() and _resident_mb(pids[0]) > max_memory_mb:
                return None
        return task.result()
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _resident_mb(pid: int) -> float:
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * PAGE / (1 << 20)


def plan(workers: int, max_memory_mb: int, concurrent: int,
         total_mb: float) -> tuple[Limits, int]:
    """The workers per evaluation and the evaluations at once that fit in `total_mb` with
    every worker at its limit: workers are lowered first, then concurrent evaluations."""
    fit = int(total_mb // max_memory_mb)
    concurrent = max(1, min(concurrent, fit))
    workers = max(1, min(workers, fit // concurrent))
    return Limits(workers=workers, max_memory_mb=max_memory_mb), concurrent


def machine_memory_mb() -> float:
    """MemTotal, from /proc/meminfo."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024
    return float("inf")
