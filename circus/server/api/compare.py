"""GET /api/v1/evaluations/{id}/compare: what changed since the previous evaluation of
the same jobset (or since `?with=<id>`): new jobs, removed jobs, and changed jobs (the
same job with another derivation or another status)."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from circus.domain import status as buildstatus
from circus.server.http import params, responses
from circus.server.http.errors import not_found
from circus.server.http.keys import CONTEXT
from circus.server.http.openapi import INT, STR, arr, doc, nullable, obj, query
from circus.store import evaluations

JOB = obj(job=STR, build_id=INT, drv_path=STR, status=STR)
CHANGE = obj(job=STR, before=JOB, after=JOB, changed=arr(STR))
COMPARISON = obj(evaluation_id=INT, previous_id=nullable(INT), new=arr(JOB),
                 removed=arr(JOB), changed=arr(CHANGE), unchanged=INT)


async def _jobs(pool: asyncpg.Pool, evaluation_id: int) -> dict[str, dict[str, Any]]:
    jobs = {}
    for row in await evaluations.jobs(pool, evaluation_id):
        jobs[row["job"]] = {"job": row["job"], "build_id": row["build_id"],
                            "drv_path": row["drv_path"],
                            "status": buildstatus.name(row["state"], row["buildstatus"])}
    return jobs


def compare(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]
            ) -> dict[str, Any]:
    new = [after[j] for j in sorted(after.keys() - before.keys())]
    removed = [before[j] for j in sorted(before.keys() - after.keys())]
    changed, unchanged = [], 0
    for job in sorted(after.keys() & before.keys()):
        fields = [f for f in ("drv_path", "status") if before[job][f] != after[job][f]]
        if fields:
            changed.append({"job": job, "before": before[job], "after": after[job],
                            "changed": fields})
        else:
            unchanged += 1
    return {"new": new, "removed": removed, "changed": changed, "unchanged": unchanged}


@doc("Compare an evaluation with the previous one of its jobset (or with `with`)",
     response=COMPARISON, tags=("evaluations",),
     query={"with": query({"type": "integer", "minimum": 1},
                          "the evaluation to compare with instead of the previous one")})
async def compare_evaluation(request: web.Request) -> web.Response:
    evaluation_id = params.path_id(request, "id", "evaluation")
    pool = request.app[CONTEXT].pool
    if not await evaluations.exists(pool, evaluation_id):
        raise not_found(f"evaluation {evaluation_id}")
    other = params.query_id(request, "with")
    if other is None:
        other = await evaluations.previous_id(pool, evaluation_id)
    elif not await evaluations.exists(pool, other):
        raise not_found(f"evaluation {other}")
    before = await _jobs(pool, other) if other is not None else {}
    body = {"evaluation_id": evaluation_id, "previous_id": other}
    body.update(compare(before, await _jobs(pool, evaluation_id)))
    return responses.ok(body)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get(r"/api/v1/evaluations/{id:\d+}/compare", compare_evaluation)
