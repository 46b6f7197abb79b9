"""Asking for an evaluation now — `POST /api/v1/evaluations/trigger`, Hydra's `/api/push`
and the dashboard's button — the same on every front end: the jobset's trigger time is
set and the evaluator is woken when the transaction commits. The permission is
`eval-jobset` (domain/roles), checked by each front end before it calls."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import structlog

from circus.domain.errors import NotFound
from circus.store import jobsets

log = structlog.get_logger(__name__)


async def request(pool: asyncpg.Pool, jobset_id: int) -> asyncpg.Record:
    """(id, project_id, name, trigger_time) of the jobset now due; NotFound if none."""
    row = await jobsets.request_evaluation(pool, jobset_id)
    if row is None:
        raise NotFound(f"jobset {jobset_id} not found")
    log.info("evaluation requested", jobset_id=jobset_id, jobset=row["name"])
    return row


async def request_by_labels(pool: asyncpg.Pool, labels: Sequence[str]) -> list[str]:
    """Those of the 'project:jobset' labels that name a jobset, each now due, sorted."""
    triggered = sorted(await jobsets.request_evaluations(pool, labels))
    log.info("evaluations requested", jobsets=triggered)
    return triggered
