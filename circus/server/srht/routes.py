"""`/api/jobs…`: builds.sr.ht's legacy jobs API (the seed `builds-srht-legacy-api.md`),
answered as builds.sr.ht answers: paginated lists `{next, results, total,
results_per_page}` from `?start=<id>`, jobs with their tasks and log URLs, the manifest
as text, artifacts. Logs (`setup_log`, each task's `log`) are Circus URLs: the text so
far, or `…/stream` for server-sent events while the job runs."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from aiohttp import web
from aiohttp_sse import sse_response

from circus.domain import bus, manifest, status
from circus.domain.errors import InvalidValue, NotFound
from circus.server.http import params, responses
from circus.server.http.keys import CONTEXT
from circus.server.http.openapi import INT, STR, TIME, arr, doc, nullable, obj
from circus.server.srht.envelope import READ, WRITE, caller, scoped
from circus.services import srht_jobs

STATUS = {"type": "string", "enum": list(status.SRHT_JOB_STATUSES)}
TASK = obj(name=STR, status={"type": "string", "enum": list(status.SRHT_TASK_STATUSES)},
           log=STR)
JOB = obj(id=INT, status=STATUS, setup_log=STR, tasks=arr(TASK), note=nullable(STR),
          tags=arr(STR), runner=nullable(STR), owner=obj(canonical_name=STR, name=STR),
          created=TIME, updated=TIME)
# sr.ht's error envelope.
ERRORS = obj(errors=arr(obj(reason=STR, field=STR, required=("reason",))))
ARTIFACT = obj(id=INT, created=TIME, path=STR, name=STR, url=STR, size=INT)


def _page(results: list[Any], next_id: int | None, total: int) -> dict[str, Any]:
    return {"next": next_id, "results": results, "total": total,
            "results_per_page": srht_jobs.PER_PAGE}


def _base(request: web.Request, job_id: int) -> str:
    return f"{request.url.origin()}/api/jobs/{job_id}"


def job_json(request: web.Request, job: asyncpg.Record,
             tasks: list[asyncpg.Record]) -> dict[str, Any]:
    base = _base(request, job["id"])
    return {"id": job["id"], "status": job["status"], "setup_log": f"{base}/log/0",
            "tasks": [{"name": t["name"], "status": t["status"],
                       "log": f"{base}/log/{t['nr']}"} for t in tasks],
            "note": job["note"], "tags": list(job["tags"]), "runner": job["runner_id"],
            "owner": {"canonical_name": f"~{job['owner_name']}", "name": job["owner_name"]},
            "created": job["created_at"], "updated": job["updated_at"]}


def _start(request: web.Request) -> int | None:
    raw = request.query.get("start")
    if raw is None:
        return None
    if not params.digits(raw):
        raise InvalidValue("start", "must be a job id")
    return int(raw)


@doc("builds.sr.ht: the jobs one may see, newest first", response=obj(
    next=nullable(INT), results=arr(JOB), total=INT, results_per_page=INT), tags=("srht",),
     error_schema=ERRORS,
     query={"start": {"schema": INT, "description": "the first job id of the page"}})
@scoped(READ)
async def list_jobs(request: web.Request) -> web.Response:
    found = await srht_jobs.page(request.app[CONTEXT].pool, caller(request), _start(request))
    return responses.ok(_page([job_json(request, j, found.tasks[j["id"]]) for j in found.jobs],
                              found.next, found.total))


@doc("builds.sr.ht: submit a job (a YAML manifest)", response=obj(id=INT),
     body={**obj(required=("manifest",),
                 manifest={"type": "string", "minLength": 1,
                           "maxLength": manifest.MAX_MANIFEST},
                 note={"type": "string", "maxLength": manifest.MAX_NOTE},
                 tags={**arr({"type": "string", "pattern": f"^{manifest.TAG_RE.pattern}$"}),
                       "maxItems": manifest.MAX_TAGS},
                 execute={"type": "boolean"}, secrets={"type": "boolean"})},
     tags=("srht",), error_schema=ERRORS)
@scoped(WRITE)
async def submit_job(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    body = await params.json_body(request)
    job_id = await srht_jobs.submit(ctx.pool, ctx.config, caller(request), body)
    return responses.ok({"id": job_id})


async def _job(request: web.Request) -> asyncpg.Record:
    return await srht_jobs.visible(request.app[CONTEXT].pool, caller(request),
                                   params.path_id(request, what="job"))


@doc("builds.sr.ht: one job", response=JOB, tags=("srht",), error_schema=ERRORS, path={"id": INT})
@scoped(READ)
async def get_job(request: web.Request) -> web.Response:
    job = await _job(request)
    tasks = await srht_jobs.tasks(request.app[CONTEXT].pool, job["id"])
    return responses.ok(job_json(request, job, tasks))


@doc("builds.sr.ht: a job's manifest as submitted", content_type="text/plain",
     response=STR, tags=("srht",), error_schema=ERRORS, path={"id": INT})
@scoped(READ)
async def get_manifest(request: web.Request) -> web.Response:
    return web.Response(text=(await _job(request))["manifest"], content_type="text/plain")


@doc("builds.sr.ht: a job's artifacts", response=obj(
    next=nullable(INT), results=arr(ARTIFACT), total=INT, results_per_page=INT),
     tags=("srht",), error_schema=ERRORS, path={"id": INT})
@scoped(READ)
async def list_artifacts(request: web.Request) -> web.Response:
    job_id = params.path_id(request, what="job")
    found = await srht_jobs.artifacts(request.app[CONTEXT].pool, caller(request), job_id)
    base = _base(request, job_id)
    return responses.ok(_page([{
        "id": a["id"], "created": a["created_at"], "path": a["path"], "name": a["name"],
        "url": f"{base}/artifacts/{a['id']}/{a['name']}", "size": a["size"]} for a in found],
        None, len(found)))


@doc("builds.sr.ht: an artifact's bytes", content_type="application/octet-stream",
     response={"type": "string", "format": "binary"}, tags=("srht",), error_schema=ERRORS,
     path={"id": INT, "artifact": INT, "name": STR})
@scoped(READ)
async def download_artifact(request: web.Request) -> web.StreamResponse:
    pool = request.app[CONTEXT].pool
    found = await srht_jobs.artifact(pool, caller(request), params.path_id(request, what="job"),
                                     params.path_id(request, "artifact", "artifact"))
    resp = web.StreamResponse(headers={
        "Content-Type": "application/octet-stream", "Content-Length": str(found["size"]),
        # Never rendered by the browser on our origin: a job chose these bytes.
        "Content-Disposition": "attachment", "X-Content-Type-Options": "nosniff"})
    await resp.prepare(request)
    async for piece in srht_jobs.artifact_pieces(pool, found["id"]):
        await resp.write(piece)
    await resp.write_eof()
    return resp


@doc("builds.sr.ht: start a job submitted with execute=false", response=obj(),
     tags=("srht",), error_schema=ERRORS, path={"id": INT})
@scoped(WRITE)
async def start_job(request: web.Request) -> web.Response:
    await srht_jobs.start(request.app[CONTEXT].pool, caller(request),
                          params.path_id(request, what="job"))
    return responses.ok({})


@doc("builds.sr.ht: cancel a job that has not ended (a running one is killed)",
     response=obj(), tags=("srht",), error_schema=ERRORS, path={"id": INT})
@scoped(WRITE)
async def cancel_job(request: web.Request) -> web.Response:
    await srht_jobs.cancel(request.app[CONTEXT].pool, caller(request),
                           params.path_id(request, what="job"))
    return responses.ok({})


def _task(request: web.Request) -> int:
    """The task's number in the job (0: setup)."""
    raw = request.match_info["task"]
    if not params.digits(raw) or len(raw) > 5:
        raise NotFound(f"task {raw} not found")
    return int(raw)


@doc("builds.sr.ht: a task's log so far (task 0: setup)", content_type="text/plain",
     response=STR, tags=("srht",), error_schema=ERRORS, path={"id": INT, "task": INT})
@scoped(READ)
async def get_log(request: web.Request) -> web.Response:
    job = await _job(request)
    pool, task, seq = request.app[CONTEXT].pool, _task(request), -1
    text: list[str] = []
    while chunks := await srht_jobs.log_after(pool, job["id"], task, seq):
        text.extend(data for _, data in chunks)
        seq = chunks[-1][0]
    return web.Response(text="".join(text), content_type="text/plain")


@doc("builds.sr.ht: a task's log, live (server-sent events; `done` when the job ends)",
     content_type="text/event-stream", response=STR, tags=("srht",), error_schema=ERRORS,
     path={"id": INT, "task": INT})
@scoped(READ)
async def stream_log(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    job = await _job(request)
    task, seq = _task(request), -1
    with ctx.bus.subscribe(bus.SRHT_LOG, bus.SRHT_JOB_CHANGED) as sub:
        async with sse_response(request) as sse:
            while sse.is_connected():
                chunks = await srht_jobs.log_after(ctx.pool, job["id"], task, seq)
                for seq, data in chunks:
                    await sse.send(data.removesuffix("\n"), id=str(seq))
                if chunks:
                    continue
                job = await srht_jobs.visible(ctx.pool, caller(request), job["id"])
                if job["status"] in status.SRHT_JOB_ENDED:
                    await sse.send(json.dumps({"id": job["id"], "status": job["status"]}),
                                   event="done")
                    break
                await sub.wait(timeout=5)
        return sse


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/jobs", list_jobs)
    router.add_post("/api/jobs", submit_job)
    router.add_get("/api/jobs/{id}", get_job)
    router.add_get("/api/jobs/{id}/manifest", get_manifest)
    router.add_get("/api/jobs/{id}/artifacts", list_artifacts)
    router.add_get("/api/jobs/{id}/artifacts/{artifact}/{name}", download_artifact)
    router.add_post("/api/jobs/{id}/start", start_job)
    router.add_post("/api/jobs/{id}/cancel", cancel_job)
    router.add_get("/api/jobs/{id}/log/{task}", get_log)
    router.add_get("/api/jobs/{id}/log/{task}/stream", stream_log)
