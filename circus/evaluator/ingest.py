"""An evaluation's jobs written while it runs: each batch becomes builds (claimable once
its transaction commits) with the dependencies on the jobs known so far; aggregates and
job errors wait for the end, when every job is known.

A batch can reveal that a job of an earlier batch depends on one of its jobs (a closure
walked before contains it). That earlier build may already be running, and then Nix
builds the dependency as part of it; the dependency row is still added at the end, so a
build that has not started waits as it should.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator

import asyncpg
import attrs

from circus.evaluator.jobs import JobRecord
from circus.nix.drv import Closures
from circus.store import ingest as evaluation_rows
from circus.store.ingest import Counts, Evaluation

__all__ = ["Counts", "Evaluation", "Ingest", "record_failure", "settle_aggregates"]


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


def _rows(batch: list[JobRecord]) -> Iterator[tuple[object, ...]]:
    for n, job in enumerate(batch):
        m = job.meta
        yield (n, job.attr, job.drv_path, job.name, job.system, m.description, m.license,
               m.homepage, m.maintainers, m.timeout, m.max_silent, job.is_aggregate,
               job.required_features)


@attrs.define
class Ingest:
    """One running evaluation's jobs, as they come."""

    pool: asyncpg.Pool
    ev: Evaluation
    closures: Closures = attrs.Factory(Closures)
    # Every good job so far, and the builds they became.
    jobs: list[JobRecord] = attrs.Factory(list)
    build_of_job: dict[str, int] = attrs.Factory(dict)
    builds_of_drv: dict[str, list[int]] = attrs.Factory(dict)
    new: set[int] = attrs.Factory(set)
    held: list[JobRecord] = attrs.Factory(list)  # aggregates, until every job is known
    failed: list[JobRecord] = attrs.Factory(list)
    # A batch held a job that an earlier batch's closure contained.
    late: bool = False
    # Taken over from a dead evaluator, whose batches may have written some pairs.
    taken_over: bool = False

    async def add(self, records: list[JobRecord]) -> None:
        """Write one batch: its builds and their dependencies, in one transaction."""
        batch: list[JobRecord] = []
        for record in records:
            if record.error is not None:
                self.failed.append(record)
            elif record.is_aggregate:
                self.held.append(record)
            else:
                batch.append(record)
        if not batch:
            return
        self.late = self.late or any(self.closures.known(j.drv_path) for j in batch)
        async with self.pool.acquire() as conn, conn.transaction():
            self._record(batch, await evaluation_rows.insert_jobs(
                conn, self.ev, _rows(batch), taken_over=self.taken_over))
            pairs = await asyncio.to_thread(self._dependencies, batch)
            await evaluation_rows.insert_dependencies(conn, pairs, fresh=not self.taken_over)
            await evaluation_rows.announce_queued(conn, len(batch))

    async def finish(self, failed: list[JobRecord]) -> Counts:
        """The last batch: aggregates, late dependencies, `failed` as job errors."""
        settled = settle_aggregates([*self.jobs, *self.held])[len(self.jobs):]
        held = [a for a in settled if a.error is None]
        # Workers above the level they split at all walk it: one error can come twice.
        failed = list({j.attr: j for j in [*failed, *(a for a in settled if a.error)]}.values())
        async with self.pool.acquire() as conn, conn.transaction():
            if held:
                self._record(held, await evaluation_rows.insert_jobs(
                    conn, self.ev, _rows(held), taken_over=self.taken_over))
                await evaluation_rows.insert_constituents(conn, self._constituents(held))
            if self.late or held:
                everything = self.jobs if self.late else held
                pairs = await asyncio.to_thread(self._dependencies, everything)
                if self.late:
                    await evaluation_rows.prune_dependencies(
                        conn, self._new_of(j for j in self.jobs if not j.is_aggregate),
                        list(self.build_of_job.values()), pairs)
                await evaluation_rows.insert_dependencies(conn, pairs)
            if held:
                await evaluation_rows.announce_queued(conn, len(held))
            return await evaluation_rows.finish(conn, self.ev,
                                                [(j.attr, j.error or "") for j in failed])

    def _record(self, batch: list[JobRecord], built: list[asyncpg.Record]) -> None:
        for row in built:
            job, build_id = batch[row["n"]], row["build_id"]
            self.build_of_job[job.attr] = build_id
            self.builds_of_drv.setdefault(job.drv_path, []).append(build_id)
            if row["is_new"]:
                self.new.add(build_id)
        self.jobs.extend(batch)

    def _dependencies(self, batch: list[JobRecord]) -> list[tuple[int, int]]:
        """(build, dependency) for `batch`: the builds of the nearest jobs in its closures.
        Two reused builds had theirs recorded by the evaluation that made them."""
        # The dict itself as the job set: a copy per batch costs O(jobs) each time.
        nearest = self.closures.nearest((j.drv_path for j in batch), self.builds_of_drv)
        pairs: set[tuple[int, int]] = set()
        for job in batch:
            build = self.build_of_job[job.attr]
            for dep_drv in nearest[job.drv_path]:
                for dep in self.builds_of_drv[dep_drv]:
                    if dep != build and (build in self.new or dep in self.new):
                        pairs.add((build, dep))
        return sorted(pairs)

    def _new_of(self, jobs: Iterable[JobRecord]) -> list[int]:
        """The builds of `jobs` made by this evaluation; an aggregate's would lose the
        pairs onto its constituents."""
        return sorted({b for j in jobs if (b := self.build_of_job[j.attr]) in self.new})

    def _constituents(self, aggregates: list[JobRecord]) -> list[tuple[int, int]]:
        return sorted({(self.build_of_job[a.attr], self.build_of_job[c])
                       for a in aggregates for c in a.constituents
                       if c in self.build_of_job and self.build_of_job[c]
                       != self.build_of_job[a.attr]})


async def record_failure(conn: asyncpg.Connection, ev: Evaluation, message: str) -> None:
    """A failed evaluation: its row with the error, and the error on the jobset."""
    await evaluation_rows.write_failure(conn, ev, message)
