"""An evaluation's jobs made into the rows store/ingest writes in one transaction:
aggregates settled, dependencies and constituents as the numbers of other rows."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any

import asyncpg
import attrs

from circus.evaluator.jobs import JobRecord
from circus.store import ingest as evaluation_rows
from circus.store.ingest import Counts, Evaluation

__all__ = ["Counts", "Evaluation", "ingest", "record_failure", "settle_aggregates"]


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
    return await evaluation_rows.write(conn, ev, _rows(good, deps),
                                       any(j.is_aggregate for j in good),
                                       [(j.attr, j.error or "") for j in failed])


async def record_failure(conn: asyncpg.Connection, ev: Evaluation, message: str) -> None:
    """A failed evaluation: its row with the error, and the error on the jobset."""
    await evaluation_rows.write_failure(conn, ev, message)
