"""Writing an evaluation while it runs: its row first (running), then each batch of jobs
in bulk (COPY into a staging table, then INSERT … SELECT) in its own transaction, and
last its errors and counts. Notifications are sent inside the transactions, so nobody
wakes for a rolled-back batch. The evaluator prepares the rows (circus.evaluator.ingest)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

import asyncpg
import attrs

from circus.db.bus import BUILDS_QUEUED, EVAL_CHANGED
from circus.db.queries import Q

STAGING_COLUMNS = (
    "n", "job", "drv_path", "nix_name", "system", "description", "license", "homepage",
    "maintainers", "timeout", "max_silent", "is_aggregate", "required_features",
)


class Input(Protocol):
    """One row of `evaluation_inputs` (circus.evaluator.inputs.EvalInput)."""

    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def uri(self) -> str: ...
    @property
    def revision(self) -> str: ...
    @property
    def value(self) -> str: ...


@attrs.frozen
class Evaluation:
    """What an evaluation row records besides its jobs."""

    id: int
    jobset_id: int
    project_id: int
    commit_hash: str
    inputs_hash: str
    flake_uri: str
    started_at: datetime
    inputs: Sequence[Input] = attrs.Factory(list)


@attrs.frozen
class Counts:
    nr_jobs: int
    nr_builds: int
    nr_new_builds: int
    nr_job_errors: int


async def start(conn: asyncpg.Connection, ev: Evaluation) -> Evaluation:
    """The evaluation's row, running. The caller holds the jobset's evaluation lock, so a
    running evaluation of the jobset is a dead evaluator's: with the same inputs it is
    taken over (its id and start kept; what it queued is reused), else it is failed."""
    async with conn.transaction():
        await conn.execute(Q.ingest_fail_abandoned, ev.jobset_id, ev.inputs_hash)
        row = await conn.fetchrow(Q.ingest_abandoned_with_inputs, ev.jobset_id,
                                  ev.inputs_hash)
        if row is not None:
            return attrs.evolve(ev, id=row["id"], started_at=row["started_at"])
        await conn.execute(Q.ingest_insert_evaluation, ev.id, ev.jobset_id, ev.commit_hash,
                           ev.inputs_hash, ev.flake_uri, ev.started_at)
        await _insert_inputs(conn, ev)
        await conn.execute(Q.ingest_notify, EVAL_CHANGED, str(ev.id))
    return ev


async def insert_jobs(conn: asyncpg.Connection, ev: Evaluation,
                      rows: Iterable[tuple[Any, ...]], *,
                      taken_over: bool = False) -> list[asyncpg.Record]:
    """One batch's staging `rows` (STAGING_COLUMNS) as builds of the evaluation: (n,
    build_id, is_new) for each. Run in the batch's transaction."""
    await conn.execute(Q.ingest_tune)
    await conn.execute(Q.ingest_create_staging)
    await conn.copy_records_to_table("evaluator_jobs", columns=STAGING_COLUMNS, records=rows)
    await conn.execute(Q.ingest_insert_builds, ev.jobset_id, ev.project_id)
    await conn.execute(Q.ingest_link_builds_taken_over if taken_over
                       else Q.ingest_link_builds, ev.id)
    return list(await conn.fetch(Q.ingest_batch_builds))


async def insert_dependencies(conn: asyncpg.Connection, pairs: Sequence[tuple[int, int]],
                              *, fresh: bool = False) -> None:
    """(build, dependency) pairs. `fresh` pairs cannot exist yet (each has a build new in
    this batch, or one new in this evaluation whose pairs only this batch writes): COPY,
    without a conflict check."""
    if not pairs:
        return
    if fresh:
        await conn.copy_records_to_table("build_dependencies",
                                         columns=("build_id", "dependency_id"), records=pairs)
        return
    await conn.execute(Q.ingest_insert_dependencies, [b for b, _ in pairs],
                       [d for _, d in pairs])


async def prune_dependencies(conn: asyncpg.Connection, owners: Sequence[int],
                             among: Sequence[int], nearest: Sequence[tuple[int, int]]) -> None:
    """Delete the pairs of `owners` onto builds `among` that are not in `nearest`."""
    if owners:
        await conn.execute(Q.ingest_prune_dependencies, owners, among,
                           [b for b, _ in nearest], [d for _, d in nearest])


async def insert_constituents(conn: asyncpg.Connection,
                              pairs: Sequence[tuple[int, int]]) -> None:
    """(aggregate, constituent) pairs; the aggregate also waits for each."""
    if pairs:
        await conn.execute(Q.ingest_insert_constituents, [a for a, _ in pairs],
                           [c for _, c in pairs])


async def announce_queued(conn: asyncpg.Connection, count: int) -> None:
    """Wake the runners when the batch commits (a notification waits for the commit)."""
    await conn.execute(Q.ingest_notify, BUILDS_QUEUED, str(count))


async def finish(conn: asyncpg.Connection, ev: Evaluation,
                 failed: Sequence[tuple[str, str]]) -> Counts:
    """The evaluation succeeded: `failed` (job, error) as its job errors, its counts."""
    await conn.execute(Q.ingest_insert_job_errors, ev.id, [job for job, _ in failed],
                       [error for _, error in failed])
    row = await conn.fetchrow(Q.ingest_finish_evaluation, ev.id, len(failed))
    await conn.execute(Q.ingest_jobset_succeeded, ev.jobset_id, ev.started_at)
    await conn.execute(Q.ingest_notify, EVAL_CHANGED, str(ev.id))
    return Counts(**dict(row))


async def write_failure(conn: asyncpg.Connection, ev: Evaluation, message: str) -> None:
    """A failed evaluation: its row with the error, and the error on the jobset."""
    async with conn.transaction():
        await conn.execute(Q.ingest_insert_failed_evaluation, ev.id, ev.jobset_id,
                           ev.commit_hash, ev.inputs_hash, ev.flake_uri, message, ev.started_at)
        await _insert_inputs(conn, ev)
        await conn.execute(Q.ingest_jobset_failed, ev.jobset_id, message, ev.started_at)
        await conn.execute(Q.ingest_notify, EVAL_CHANGED, str(ev.id))


async def _insert_inputs(conn: asyncpg.Connection, ev: Evaluation) -> None:
    if not ev.inputs:
        return
    cols = list(zip(*((i.name, i.type, i.uri, i.revision, i.value) for i in ev.inputs),
                    strict=True))
    await conn.execute(Q.ingest_insert_inputs, ev.id, *map(list, cols))


async def analyze(conn: asyncpg.Connection) -> None:
    """Fresh planner statistics on builds, after a large ingest."""
    await conn.execute(Q.builds_analyze)
