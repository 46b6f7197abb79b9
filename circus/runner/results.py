"""Recording how a build ended, in one transaction with what it means downstream."""

from __future__ import annotations

import asyncpg
import attrs

from circus.domain.status import BuildStatus
from circus.runner.outcome import ClaimedBuild, Outcome
from circus.store import builds, logs, results


@attrs.define
class Ending:
    """How one claimed build ended, waiting to be recorded."""

    build: ClaimedBuild
    outcome: Outcome
    has_log: bool = True


async def finish_many(pool: asyncpg.Pool, runner_id: str, endings: list[Ending],
                      remember_failures: bool = False) -> set[int]:
    """Store these outcomes in one transaction, each only if its build is still ours
    (not cancelled, not reaped); returns the ids recorded. A recorded build gets its
    results and folded log, and a failed one fails what waits on it (and, with
    `remember_failures`, is in the failed-paths cache)."""
    ordered = sorted(endings, key=lambda e: e.build.id)  # row locks in one order
    async with pool.acquire() as conn:
        if all(_bare(e) for e in ordered):
            # Nothing else to write: the one statement is its own transaction.
            return await _finish_rows(conn, runner_id, ordered, remember_failures)
        async with conn.transaction():
            recorded = await _finish_rows(conn, runner_id, ordered, remember_failures)
            for ending in ordered:
                if ending.build.id in recorded:
                    await _record_rest(conn, ending)
    return recorded


def _bare(ending: Ending) -> bool:
    outcome = ending.outcome
    return not ending.has_log and outcome.status == BuildStatus.SUCCEEDED and not (
        outcome.outputs or outcome.steps or outcome.products or outcome.metrics)


async def _finish_rows(conn: asyncpg.Connection, runner_id: str, endings: list[Ending],
                       remember_failures: bool) -> set[int]:
    return await results.finish(conn, runner_id, [e.build.id for e in endings],
                                [e.outcome.status for e in endings],
                                [e.outcome.error for e in endings], remember_failures)


async def _record_rest(conn: asyncpg.Connection, ending: Ending) -> None:
    build, outcome = ending.build, ending.outcome
    await _insert_results(conn, build.id, outcome)
    if ending.has_log:
        await logs.fold(conn, build.id)
    if outcome.status != BuildStatus.SUCCEEDED:
        await builds.fail_dependents(conn, build.id,
                                     f"dependency {build.job} (build {build.id}) failed")


async def _insert_results(conn: asyncpg.Connection, build_id: int, outcome: Outcome) -> None:
    if outcome.outputs:
        names = sorted(outcome.outputs)
        await results.add_outputs(conn, build_id, names, [outcome.outputs[n] for n in names])
    if ps := outcome.products:
        await results.add_products(conn, build_id, [
            [p.type for p in ps], [p.subtype for p in ps], [p.name for p in ps],
            [p.path for p in ps], [p.default_path for p in ps], [p.file_size for p in ps],
            [p.sha256 for p in ps]])
    if ms := outcome.metrics:
        await results.add_metrics(conn, build_id, [m.name for m in ms],
                                  [m.value for m in ms], [m.unit for m in ms])
    if ss := outcome.steps:
        await results.add_steps(conn, build_id, [
            [s.step_nr for s in ss], [s.drv_path for s in ss], [s.kind for s in ss],
            [s.machine for s in ss], [s.status for s in ss], [s.error_message for s in ss],
            [s.started_at for s in ss], [s.finished_at for s in ss]])


async def fold_cancelled_log(pool: asyncpg.Pool, build_id: int) -> None:
    """A build finished by someone else (cancelled) still gets its log folded."""
    async with pool.acquire() as conn, conn.transaction():
        if await results.lock_if_finished(conn, build_id):
            await logs.fold(conn, build_id)
