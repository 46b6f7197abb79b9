"""Writing an evaluation: everything in ONE transaction, jobs in bulk (COPY into a staging
table, then INSERT … SELECT), notifications sent inside it so nobody wakes for a
rolled-back evaluation. The evaluator prepares the rows (circus.evaluator.ingest)."""

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
    "maintainers", "timeout", "max_silent", "is_aggregate", "deps", "constituents",
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


async def write(conn: asyncpg.Connection, ev: Evaluation, rows: Iterable[tuple[Any, ...]],
                has_aggregates: bool, failed: Sequence[tuple[str, str]]) -> Counts:
    """A successful evaluation: its staging `rows` (STAGING_COLUMNS) become builds, and
    `failed` (job, error) its job errors."""
    async with conn.transaction():
        await conn.execute(Q.ingest_tune)
        await conn.execute(Q.ingest_create_staging)
        await conn.execute(Q.ingest_insert_evaluation, ev.id, ev.jobset_id, ev.commit_hash,
                           ev.inputs_hash, ev.flake_uri, ev.started_at)
        await conn.copy_records_to_table("evaluator_jobs", columns=STAGING_COLUMNS,
                                         records=rows)
        await conn.execute(Q.ingest_insert_builds, ev.jobset_id, ev.project_id)
        await conn.execute(Q.ingest_link_builds, ev.id)
        await conn.execute(Q.ingest_insert_dependencies)
        if has_aggregates:
            await conn.execute(Q.ingest_insert_constituents)
        await conn.execute(Q.ingest_insert_job_errors, ev.id, [job for job, _ in failed],
                           [error for _, error in failed])
        await _insert_inputs(conn, ev)
        row = await conn.fetchrow(Q.ingest_finish_evaluation, ev.id, len(failed))
        await conn.execute(Q.ingest_jobset_succeeded, ev.jobset_id, ev.started_at)
        await conn.execute(Q.ingest_notify, BUILDS_QUEUED, str(row["nr_new_builds"]))
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
