"""`POST /api/v1/webhooks/{project_id}/github|gitea|forgejo|gitlab`: a forge tells of a
push or a pull request. No API key: the delivery's signature under the project's webhook
secret is its authentication (services/forge says how each forge signs).

Answers: 202 accepted (with the jobsets it triggered), 200 for an event Circus ignores
(a ping, a tag, a request the project does not build) or a delivery received before,
401 for a missing or wrong signature, 404 for a project or webhook that does not exist,
400 for a body that is not the forge's JSON, 413 past `webhooks.max_body_size`, 429
past `webhooks.rate_limit_per_minute` verified deliveries of one project.
"""

from __future__ import annotations

import math
from typing import Any

import structlog
from aiohttp import web

from circus.server.http import params, responses
from circus.server.http.errors import ApiError, refusals
from circus.server.http.keys import CONTEXT
from circus.server.http.openapi import BOOL, INT, STR, arr, doc, obj
from circus.server.http.safety import RateLimiter
from circus.services import forge, forge_events

log = structlog.get_logger(__name__)

LIMITER = web.AppKey("webhook_rate_limiter", RateLimiter)
OUTCOME = obj(accepted=BOOL, duplicate=BOOL, delivery=STR, event=STR, jobsets=arr(STR),
              reason=STR)


async def read_verified(request: web.Request, project_id: int, forge_name: str,
                        secret: str | None) -> tuple[bytes, dict[str, Any]]:
    """The body, once its size and then its signature are right, and its JSON object."""
    limit = request.app[CONTEXT].config.webhooks.max_body_size
    body = await params.sized_body(request, limit, "webhooks.max_body_size")
    if secret is None:
        raise ApiError(404, f"project {project_id} has no {forge_name} webhook")
    if not forge.verify(forge_name, secret, body, request.headers):
        names = " or ".join(forge.signature_headers(forge_name))
        raise ApiError(401, f"{names}: missing, or not this webhook's signature")
    return body, await params.json_body(request)


def _rate_limit(request: web.Request, project_id: int) -> None:
    per_minute = request.app[CONTEXT].config.webhooks.rate_limit_per_minute
    wait = request.app[LIMITER].take(str(project_id))
    if wait > 0:
        raise ApiError(429, f"project {project_id}: more than {per_minute} webhook "
                            "deliveries a minute (webhooks.rate_limit_per_minute)",
                       retry_after=max(1, math.ceil(wait)))


@doc("A forge's webhook delivery: a push triggers the jobsets of the pushed branch, a "
     "pull request its own jobset", status=202, response=OUTCOME,
     body={"type": "object"}, tags=("webhooks",),
     path={"project_id": INT, "forge": {"type": "string", "enum": list(forge.FORGES),
                                        "example": "github"}},
     extra={200: ("application/json", OUTCOME, "ignored, or received before")},
     description="Authenticated by the forge's signature under the project's webhook "
                 "secret: X-Hub-Signature-256 (GitHub), X-Gitea-Signature (Gitea), "
                 "X-Forgejo-Signature (Forgejo), X-Gitlab-Token (GitLab).")
async def receive(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    project_id = params.path_id(request, "project_id", "project")
    forge_name = request.match_info["forge"]
    with refusals():
        secret = await forge.secret_of(ctx.pool, ctx.config, project_id, forge_name)
    raw, body = await read_verified(request, project_id, forge_name, secret)
    # Counted once verified: unsigned requests cannot use up a project's deliveries.
    _rate_limit(request, project_id)
    with refusals():
        event = forge_events.event_name(forge_name, request.headers)
        delivery = forge_events.delivery_id(forge_name, request.headers, raw)
        change = forge_events.change_of(forge_name, event, body)
        if change is None:
            reason = "ping" if forge_events.is_ping(forge_name, event) else \
                f"{event} events trigger nothing"
            return _answer(200, delivery, event, forge.Outcome(accepted=False, reason=reason))
        outcome = await forge.receive(ctx.pool, project_id, forge_name, delivery, event,
                                      change)
    status = 202 if outcome.accepted and not outcome.duplicate else 200
    return _answer(status, delivery, event, outcome)


def _answer(status: int, delivery: str, event: str, outcome: forge.Outcome) -> web.Response:
    return responses.ok({"accepted": outcome.accepted, "duplicate": outcome.duplicate,
                         "delivery": delivery, "event": event,
                         "jobsets": list(outcome.jobsets), "reason": outcome.reason},
                        status=status)




def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/api/v1/webhooks/{project_id}/{forge:github|gitea|forgejo|gitlab}",
                    receive)


def setup(app: web.Application) -> None:
    """One bucket per project for this server process."""
    per_minute = app[CONTEXT].config.webhooks.rate_limit_per_minute
    app[LIMITER] = RateLimiter(per_minute / 60.0, float(per_minute))
