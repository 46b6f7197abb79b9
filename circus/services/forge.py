"""Webhooks from forges, the same on every front end (`/api/v1/webhooks/...`, Hydra's
`/api/push-github` and `/api/push-gitea`, the project's webhook settings).

A project has at most one webhook per forge, holding a secret that Circus generates,
shows once, and stores sealed (services/sealed). A delivery is believed only when its
signature verifies in constant time: GitHub's `X-Hub-Signature-256` (HMAC-SHA256 of the
body, "sha256=" + hex), Gitea's `X-Gitea-Signature` (the same HMAC, hex), Forgejo's
`X-Forgejo-Signature` or Gitea's, GitLab's `X-Gitlab-Token` (the secret itself).

Each delivery is recorded once by its id: the same delivery twice triggers once. A push
asks the jobsets that follow the pushed branch to evaluate now, and the evaluation keeps
the delivery's row id. A pull request, on a project that builds them, becomes a hidden
jobset `pr-<number>` made from the jobset that follows its base branch; it evaluates the
forge's ref of the request's head (`refs/pull/N/head`, GitLab's
`refs/merge-requests/N/head`), so no fork URL is ever fetched, and it is disabled when
the request closes and deleted `webhooks.pull_request_retention_days` later. A request
from a fork is refused unless the project allows fork requests: its code would run on
our builders.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as tokens
from collections.abc import Mapping, Sequence
from typing import Literal

import asyncpg
import attrs
import structlog

from circus.app.config import Config
from circus.domain.errors import CircusError, Conflict, InvalidValue, NotFound
from circus.services import projects, sealed
from circus.services.login import Principal
from circus.store import webhooks as rows

log = structlog.get_logger(__name__)

FORGES = ("github", "gitea", "forgejo", "gitlab")
SECRET_BYTES = 32


@attrs.frozen
class Push:
    branch: str
    commit: str
    default_branch: str | None = None


@attrs.frozen
class PullRequest:
    number: int
    action: Literal["open", "update", "close"]
    ref: str  # the forge's ref of the head, in the base repository
    base_branch: str
    title: str = ""
    from_fork: bool = False


class BadSignature(CircusError):
    """A delivery whose signature no webhook secret verifies: a front end answers 401."""


@attrs.frozen
class Outcome:
    """What a delivery did: `accepted` false when it was ignored (with `reason`)."""

    accepted: bool
    delivery_id: int | None = None
    duplicate: bool = False
    jobsets: tuple[str, ...] = ()
    reason: str = ""


def signature_headers(forge: str) -> tuple[str, ...]:
    """The headers, in order of preference, that carry the forge's signature."""
    return {"github": ("X-Hub-Signature-256",), "gitea": ("X-Gitea-Signature",),
            "forgejo": ("X-Forgejo-Signature", "X-Gitea-Signature"),
            "gitlab": ("X-Gitlab-Token",)}[forge]


def verify(forge: str, secret: str, body: bytes, headers: Mapping[str, str]) -> bool:
    """True when the delivery carries the forge's signature of `body` under `secret`."""
    given = next((headers[h] for h in signature_headers(forge) if h in headers), None)
    if given is None:
        return False
    if forge == "gitlab":
        expected = secret
    else:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if forge == "github":
            expected = "sha256=" + expected
    return hmac.compare_digest(given.strip().encode(), expected.encode())


async def secret_of(pool: asyncpg.Pool, config: Config, project_id: int,
                    forge: str) -> str | None:
    """The project's secret for the forge; None when it has no such webhook."""
    stored = await rows.sealed_secret(pool, project_id, _forge(forge))
    return None if stored is None else sealed.unseal(config, stored)


async def create_webhook(pool: asyncpg.Pool, config: Config, who: Principal,
                         project_id: int, forge: str) -> tuple[asyncpg.Record, str]:
    """The new webhook and its secret, which is never shown again."""
    projects.authorize(who, "manage-webhooks")
    await projects.existing(pool, project_id)
    secret = tokens.token_hex(SECRET_BYTES)
    row = await rows.create(pool, project_id, _forge(forge), sealed.seal(config, secret))
    if row is None:
        raise Conflict(f"project {project_id} has a {forge} webhook already; delete it "
                       "to make a new secret")
    log.info("webhook created", project_id=project_id, forge=forge, by=who.name)
    return row, secret


async def webhooks(pool: asyncpg.Pool, project_id: int) -> list[asyncpg.Record]:
    await projects.existing(pool, project_id)
    return await rows.of_project(pool, project_id)


async def delete_webhook(pool: asyncpg.Pool, who: Principal, project_id: int,
                         webhook_id: int) -> None:
    projects.authorize(who, "manage-webhooks")
    if not await rows.delete(pool, project_id, webhook_id):
        raise NotFound(f"project {project_id} has no webhook {webhook_id}")
    log.info("webhook deleted", project_id=project_id, webhook_id=webhook_id, by=who.name)


async def receive(pool: asyncpg.Pool, project_id: int, forge: str, delivery: str,
                  event: str, change: Push | PullRequest) -> Outcome:
    """Act on a verified delivery, once per delivery id."""
    project = await projects.existing(pool, project_id)
    if isinstance(change, PullRequest):
        refused = _pull_request_refused(project, change)
        if refused:
            return Outcome(accepted=False, reason=refused)
    async with pool.acquire() as conn, conn.transaction():
        delivery_id = await rows.record_delivery(conn, project_id, forge, delivery, event)
        if delivery_id is None:
            return Outcome(accepted=True, duplicate=True,
                           reason=f"delivery {delivery} was received before")
        if isinstance(change, Push):
            jobsets = await rows.request_for_push(
                conn, project_id, change.branch, change.branch == change.default_branch,
                delivery_id)
        else:
            jobsets = await _pull_request(conn, project_id, change, delivery_id)
    log.info("webhook delivery", project_id=project_id, forge=forge, delivery=delivery,
             forge_event=event, jobsets=jobsets)
    return Outcome(accepted=True, delivery_id=delivery_id, jobsets=tuple(jobsets))


async def receive_for_repository(pool: asyncpg.Pool, config: Config, forge: str,
                                 urls: Sequence[str], body: bytes,
                                 headers: Mapping[str, str], delivery: str, event: str,
                                 change: Push | PullRequest) -> list[str]:
    """Hydra's push-github/push-gitea: the delivery names a repository rather than a
    project. Each project on that repository whose webhook secret verifies the signature
    takes it; "project:jobset" of the jobsets triggered. BadSignature when projects were
    found and none verifies."""
    candidates = await rows.projects_by_repository(pool, urls, forge)
    verified = [c for c in candidates if c["secret"] is not None
                and verify(forge, sealed.unseal(config, c["secret"]), body, headers)]
    if candidates and not verified:
        raise BadSignature(f"{' or '.join(signature_headers(forge))}: no {forge} webhook "
                           "secret of a project on this repository verifies the delivery")
    triggered: list[str] = []
    for project in verified:
        outcome = await receive(pool, project["id"], forge, delivery, event, change)
        triggered += [f"{project['name']}:{name}" for name in outcome.jobsets]
    return sorted(triggered)


def _pull_request_refused(project: asyncpg.Record, change: PullRequest) -> str:
    if not project["pull_requests"]:
        return f"project {project['name']} does not build pull requests"
    if change.from_fork and not project["fork_pull_requests"]:
        return (f"pull request {change.number} comes from a fork, and project "
                f"{project['name']} does not build those")
    return ""


async def _pull_request(conn: asyncpg.Connection, project_id: int, change: PullRequest,
                        delivery_id: int) -> list[str]:
    name = f"pr-{change.number}"
    if change.action == "close":
        closed = await rows.close_pull_request_jobset(conn, project_id, change.number)
        return [closed] if closed else []
    template = await rows.pull_request_template(conn, project_id, change.base_branch)
    if template is None:
        raise Conflict(f"project {project_id} has no jobset to make {name} from")
    made = await rows.upsert_pull_request_jobset(
        conn, template, name, f"Pull request {change.number}: {change.title}"[:200],
        change.ref, change.number, delivery_id)
    if made is None:
        raise Conflict(f"jobset {name} exists and is not pull request {change.number}'s")
    return [name]


async def sweep(pool: asyncpg.Pool, config: Config) -> None:
    """Delete jobsets of requests closed longer than the retention, and old deliveries."""
    days = config.webhooks.pull_request_retention_days
    gone = await rows.purge_pull_request_jobsets(pool, days)
    await rows.purge_deliveries(pool, max(days, config.notifications.retention_days))
    if gone:
        log.info("closed pull request jobsets deleted", jobsets=gone, retention_days=days)


def _forge(forge: str) -> str:
    if forge not in FORGES:
        raise InvalidValue("forge", f"expected one of {', '.join(FORGES)}")
    return forge


