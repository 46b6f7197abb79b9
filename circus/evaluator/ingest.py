"""Writing an evaluation: everything in ONE transaction, jobs in bulk (COPY into a staging
table, then INSERT … SELECT), notifications sent inside it so nobody wakes for a
rolled-back evaluation."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from datetime import datetime
from typing import Any

import asyncpg
import attrs

from circus.db.bus import BUILDS_QUEUED, EVAL_CHANGED
from circus.db.queries import Q
from circus.evaluator.inputs import EvalInput
from circus.evaluator.jobs import JobRecord

STAGING_COLUMNS = (
    "n", "job", "drv_path", "nix_name", "system", "description", "license", "homepage",
    "maintainers", "timeout", "max_silent", "is_aggregate", "deps", "constituents",
)


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
    inputs: list[EvalInput] = attrs.Factory(list)


@attrs.frozen
class Counts:
    nr_jobs: int
    nr_builds: int
    nr_new_builds: int
    nr_job_errors: int


def settle_aggregates(jobs: list[JobRecord]) -> list[JobRecord]:
    """Constituents named by job (a derivation becomes the jobs that have it). An aggregate
    naming one that is not a good job of this evaluation fails, as in Hydra, rather than
    passing without it."""
    jobs_of: dict[str, list[str]] = {}
    for job in jobs:
        if job.error is None:
            jobs_of.setdefault(job.attr, []).append(job.attr)
            jobs_of.setdefault(job.drv_path, []).append(job.attr)
    return [_settle(job, jobs_of) if job.is_aggregate and job.error is None else job
            for job in jobs]


def _settle(job: JobRecord, jobs_of: dict[str, list[str]]) -> JobRecord:
    missing = [c for c in job.constituents if c not in jobs_of]
    if missing:
        return attrs.evolve(job, error=f"aggregate job {job.attr!r}: constituent(s) "
                            f"{', '.join(missing)} did not evaluate to a job")
    return attrs.evolve(job, constituents=[n for c in job.constituents for n in jobs_of[c]])


def _rows(good: list[JobRecord], deps: Mapping[str, Collection[str]]) -> Iterator[tuple[Any, ...]]:
    """Staging rows; dependencies and constituents as the numbers of other rows."""
    by_drv: dict[str, list[int]] = {}
    by_name: dict[str, int] = {}
    for n, job in enumerate(good):
        by_drv.setdefault(job.drv_path, []).append(n)
        by_name[job.attr] = n
    for n, job in enumerate(good):
        m = job.meta
        needs = [i for d in deps.get(job.drv_path, ()) for i in by_drv.get(d, ())]
        parts = [by_name[c] for c in job.constituents if c in by_name]
        yield (n, job.attr, job.drv_path, job.name, job.system, m.description, m.license,
               m.homepage, m.maintainers, m.timeout, m.max_silent, job.is_aggregate, needs,
               parts)


async def ingest(conn: asyncpg.Connection, ev: Evaluation, jobs: list[JobRecord],
                 deps: Mapping[str, Collection[str]]) -> Counts:
    """Record a successful evaluation of `jobs`; `deps` maps a job's .drv to the job .drvs
    in its closure."""
    jobs = settle_aggregates(jobs)
    good = [j for j in jobs if j.error is None]
    failed = [j for j in jobs if j.error is not None]
    async with conn.transaction():
        await conn.execute(Q.evaluator_tune_ingest)
        await conn.execute(Q.evaluator_create_staging)
        await conn.execute(Q.evaluator_insert_evaluation, ev.id, ev.jobset_id, ev.commit_hash,
                           ev.inputs_hash, ev.flake_uri, ev.started_at)
        await conn.copy_records_to_table("evaluator_jobs", columns=STAGING_COLUMNS,
                                         records=_rows(good, deps))
        await conn.execute(Q.evaluator_insert_builds, ev.jobset_id, ev.project_id)
        await conn.execute(Q.evaluator_link_builds, ev.id)
        await conn.execute(Q.evaluator_insert_dependencies)
        if any(j.is_aggregate for j in good):
            await conn.execute(Q.evaluator_insert_constituents)
        await conn.execute(Q.evaluator_insert_job_errors, ev.id, [j.attr for j in failed],
                           [j.error for j in failed])
        await _insert_inputs(conn, ev)
        row = await conn.fetchrow(Q.evaluator_finish_evaluation, ev.id, len(failed))
        await conn.execute(Q.evaluator_jobset_succeeded, ev.jobset_id, ev.started_at)
        await conn.execute(Q.evaluator_notify, BUILDS_QUEUED, str(row["nr_new_builds"]))
        await conn.execute(Q.evaluator_notify, EVAL_CHANGED, str(ev.id))
    return Counts(**dict(row))


async def record_failure(conn: asyncpg.Connection, ev: Evaluation, message: str) -> None:
    """A failed evaluation: its row with the error, and the error on the jobset."""
    async with conn.transaction():
        await conn.execute(Q.evaluator_insert_failed_evaluation, ev.id, ev.jobset_id,
                           ev.commit_hash, ev.inputs_hash, ev.flake_uri, message, ev.started_at)
        await _insert_inputs(conn, ev)
        await conn.execute(Q.evaluator_jobset_failed, ev.jobset_id, message, ev.started_at)
        await conn.execute(Q.evaluator_notify, EVAL_CHANGED, str(ev.id))


async def _insert_inputs(conn: asyncpg.Connection, ev: Evaluation) -> None:
    if not ev.inputs:
        return
    cols = list(zip(*((i.name, i.type, i.uri, i.revision, i.value) for i in ev.inputs),
                    strict=True))
    await conn.execute(Q.evaluator_insert_inputs, ev.id, *map(list, cols))

