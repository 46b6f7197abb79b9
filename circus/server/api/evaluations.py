"""/api/v1/evaluations: list, detail, and asking for an evaluation now."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from circus.domain.status import EVALUATION_STATUSES
from circus.server.accounts import auth
from circus.server.http import params, responses
from circus.server.http.errors import ApiError, bad_field, not_found, refusals
from circus.server.http.keys import CONTEXT
from circus.server.http.openapi import (
    INT,
    PAGE_QUERY,
    STR,
    TIME,
    arr,
    doc,
    nullable,
    obj,
    page_of,
    query,
)
from circus.services import evaluations as evaluation_requests
from circus.store import evaluations
from circus.store import jobsets as jobset_store

EVALUATION = obj(
    id=INT, jobset_id=INT, jobset=STR, project_id=INT, project=STR, status=STR,
    commit_hash=STR, inputs_hash=STR, flake_uri=STR, error_message=nullable(STR),
    nr_jobs=INT, nr_builds=INT, nr_new_builds=INT, nr_job_errors=INT, created_at=TIME,
    started_at=TIME, finished_at=nullable(TIME), webhook_delivery_id=nullable(INT),
    webhook_forge=nullable(STR), webhook_delivery=nullable(STR))
EVALUATION_DETAIL = {**EVALUATION, "properties": {
    **EVALUATION["properties"],
    "inputs": arr(obj(name=STR, type=STR, uri=STR, revision=STR, value=STR)),
    "errors": arr(obj(job=STR, error_message=STR)),
    "builds": obj(total=INT, new=INT, queued=INT, running=INT, succeeded=INT, failed=INT)}}


def _status_filter(request: web.Request) -> str | None:
    status = params.query_text(request, "status")
    if status is not None and status not in EVALUATION_STATUSES:
        raise bad_field("status", f"must be one of {', '.join(EVALUATION_STATUSES)}, "
                                  f"got {status!r}")
    return status


@doc("List evaluations, newest first", response=page_of(EVALUATION), tags=("evaluations",),
     query={**PAGE_QUERY, "project_id": query({"type": "integer", "minimum": 1}),
            "jobset_id": query({"type": "integer", "minimum": 1}),
            "status": query({"type": "string", "enum": list(EVALUATION_STATUSES)})})
async def list_evaluations(request: web.Request) -> web.Response:
    page = params.page(request)
    filters = (params.query_id(request, "project_id"), params.query_id(request, "jobset_id"),
               _status_filter(request))
    pool = request.app[CONTEXT].pool
    items = await evaluations.page(pool, *filters, page.limit, page.offset)
    total = await evaluations.count(pool, *filters)
    return responses.ok(responses.page(responses.rows(items), total, page.limit, page.offset))


@doc("One evaluation with its inputs, errors and build counts", response=EVALUATION_DETAIL,
     tags=("evaluations",))
async def get_evaluation(request: web.Request) -> web.Response:
    evaluation_id = params.path_id(request, "id", "evaluation")
    pool = request.app[CONTEXT].pool
    row = await evaluations.get(pool, evaluation_id)
    if row is None:
        raise not_found(f"evaluation {evaluation_id}")
    body = dict(row)
    body["inputs"] = responses.rows(await evaluations.inputs(pool, evaluation_id))
    body["errors"] = responses.rows(await evaluations.errors(pool, evaluation_id))
    body["builds"] = dict(await evaluations.build_counts(pool, evaluation_id))
    return responses.ok(body)


async def _trigger_target(request: web.Request, body: dict[str, Any]) -> int:
    """The jobset to evaluate: `jobset_id`, or `project` and `jobset` names."""
    pool = request.app[CONTEXT].pool
    for field in ("project", "jobset"):  # wrong types are refused even beside jobset_id
        if field in body:
            params.text(body, field)
    if "jobset_id" in body:
        jobset_id = params.integer(body, "jobset_id", 0, minimum=1, maximum=params.MAX_ID)
        return jobset_id
    if "project" in body or "jobset" in body:
        project = params.text(body, "project")
        jobset = params.text(body, "jobset")
        found = await jobset_store.id_by_names(pool, project, jobset)
        if found is None:
            raise not_found(f"jobset {project}:{jobset}")
        return found
    raise ApiError(400, "jobset_id: is required (or project and jobset names)")


@doc("Ask for an evaluation of a jobset now (by `jobset_id`, or `project` and `jobset`)",
     status=202, permission=auth.TRIGGER, tags=("evaluations",),
     body={**obj(required=(), jobset_id={"type": "integer", "minimum": 1,
                                         "maximum": params.MAX_ID},
                 project=STR, jobset=STR),
           "anyOf": [{"required": ["jobset_id"]}, {"required": ["project", "jobset"]}]},
     response=obj(jobset_id=INT, project_id=INT, jobset=STR, trigger_time=TIME,
                  triggered={"type": "boolean"}))
@auth.requires(auth.TRIGGER)
async def trigger(request: web.Request) -> web.Response:
    body = await params.json_body(request)
    jobset_id = await _trigger_target(request, body)
    with refusals():
        row = await evaluation_requests.request(request.app[CONTEXT].pool, jobset_id)
    return responses.ok({"jobset_id": row["id"], "project_id": row["project_id"],
                         "jobset": row["name"], "trigger_time": row["trigger_time"],
                         "triggered": True}, status=202)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/v1/evaluations", list_evaluations)
    router.add_post("/api/v1/evaluations/trigger", trigger)
    router.add_get(r"/api/v1/evaluations/{id:\d+}", get_evaluation)
