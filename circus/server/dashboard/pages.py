"""The dashboard's read pages: home, projects, project, jobset, evaluations, evaluation,
builds, queue, channels, news, starred and metrics. Each reads the database through
the store's entity modules and renders a template; writes live in `forms`."""

from __future__ import annotations

import datetime
from typing import Any

from aiohttp import web

from circus.app.config import redact_url
from circus.domain.status import EVALUATION_STATUSES
from circus.notify import settings as notify_settings
from circus.notify.settings import SECRET_KEYS
from circus.server.accounts import auth
from circus.server.api.webhooks import webhook_json
from circus.server.dashboard import svg
from circus.server.dashboard.lists import STATUS_CHOICES, BuildFilter, build_page, filter_from
from circus.server.dashboard.view import (
    PAGE_SIZE,
    arg,
    filter_text,
    html_errors,
    page_offset,
    pager,
    redirect,
    render,
    viewer,
)
from circus.server.http import params
from circus.server.http.errors import ApiError, not_found, refusals
from circus.server.http.keys import CONTEXT
from circus.services import forge
from circus.services import notifications as notification_settings
from circus.store import build_list
from circus.store import build_queue as queue_rows
from circus.store import channels as channel_rows
from circus.store import evaluations as evaluation_rows
from circus.store import jobsets as jobset_rows
from circus.store import metrics as metric_rows
from circus.store import news as news_rows
from circus.store import projects as project_rows
from circus.store import starred as starred_rows

# Metrics periods: (label, hours back, date_trunc bucket).
PERIODS = {"day": (24, "hour"), "week": (24 * 7, "day"), "month": (24 * 30, "day"),
           "year": (24 * 365, "week")}


def _pool(request: web.Request) -> Any:
    return request.app[CONTEXT].pool


@html_errors
async def home(request: web.Request) -> web.StreamResponse:
    pool = _pool(request)
    counts = await metric_rows.home_counts(pool)
    projects = await project_rows.matching(pool, None, 10, 0)
    recent = await build_list.recent(pool, 10)
    running = await queue_rows.running(pool)
    evals = await evaluation_rows.page(pool, None, None, None, 8, 0)
    news = await news_rows.page(pool, 3, 0)
    return await render(request, "home.html", {
        "counts": counts, "projects": projects, "recent": recent, "running": running[:10],
        "evals": evals, "news": news, "live": True})


@html_errors
async def projects(request: web.Request) -> web.StreamResponse:
    pool = _pool(request)
    q = filter_text(request, "q")
    rows = await project_rows.matching(pool, q, PAGE_SIZE, page_offset(request))
    total = await project_rows.matching_count(pool, q)
    return await render(request, "projects.html",
                        {"projects": rows, "pager": pager(request, total), "q": q or ""})


async def project_row(request: web.Request, raw: str) -> Any:
    key_id = int(raw) if params.digits(raw) and int(raw) <= params.MAX_ID else None
    row = await project_rows.by_key(_pool(request), key_id, raw)
    if row is None:
        raise not_found(f"project {raw!r}")
    return row


@html_errors
async def project(request: web.Request) -> web.StreamResponse:
    pool = _pool(request)
    row = await project_row(request, arg(request, 0, "id", "project", "project-id"))
    jobsets = await jobset_rows.with_latest_evaluation(pool, row["id"], PAGE_SIZE,
                                                       page_offset(request))
    total = await jobset_rows.count(pool, row["id"])
    channels = await channel_rows.page(pool, row["id"], 20, 0)
    builds, _ = await build_page(pool, request, BuildFilter(project_id=row["id"]))
    return await render(request, "project.html", {
        "project": row, "jobsets": jobsets, "pager": pager(request, total),
        "channels": channels, "builds": builds[:10]})


@html_errors
async def notifications(request: web.Request) -> web.StreamResponse:
    row = await project_row(request, request.match_info["id"])
    return await notifications_page(request, row)


async def notifications_page(request: web.Request, row: Any,
                             created: tuple[Any, str] | None = None) -> web.Response:
    """A project's notifications page; `created` is a webhook just made and its secret,
    shown on this one answer (the POST's), never again."""
    ctx = request.app[CONTEXT]
    with refusals():
        shown = await notification_settings.shown(ctx.pool, ctx.config, row["id"])
        hooks = [webhook_json(r) for r in await forge.webhooks(ctx.pool, row["id"])]
    who = await viewer(request)
    config = ctx.config.notifications
    new_hook = None
    if created is not None:
        new_hook = {**webhook_json(created[0]), "secret": created[1]}
    return await render(request, "notifications.html", {
        "project": row, "shown": shown, "own": shown["settings"],
        "effective": shown["effective"], "notifiers": _notifiers(shown, config),
        "secret_keys": SECRET_KEYS, "secrets_set": set(shown["secrets_set"]),
        "webhooks": hooks, "new_hook": new_hook, "config": config,
        "forges": forge.FORGES, "status_forges": notify_settings.FORGES,
        "may_manage": who is not None and who.may(auth.needs("manage-notifications")),
        "may_hooks": who is not None and who.may(auth.needs("manage-webhooks")),
        "may_deliveries": who is not None and who.may(auth.ADMIN),
        "base_url": _base_url(request)})


def _notifiers(shown: dict[str, Any], config: Any) -> list[tuple[str, bool, str, str]]:
    """(notifier, on for this project, where its setting comes from, target) per notifier.

    Never a secret: the page is public, and a webhook URL is a credential (whoever has it
    can post). Servers' URLs are shown with any userinfo masked by circus.config."""
    own, secrets, on = shown["settings"], set(shown["secrets_set"]), shown["effective"]

    def source(state: bool, *keys: str) -> str:
        if not state:
            return ""
        return "project" if any(k in secrets or own.get(k) for k in keys) else "server"

    addresses = own.get("email_to_addresses") or []
    slack_failures = own.get("slack_on_failure_only", config.slack.on_failure_only)
    return [
        ("Generic webhook", on["webhook"], source(on["webhook"], "webhook_url"), ""),
        ("GitHub commit status", on["github"], source(on["github"], "github_token"), ""),
        ("Gitea / Forgejo commit status", on["gitea"],
         source(on["gitea"], "gitea_token", "gitea_url"),
         redact_url(own.get("gitea_url") or config.gitea_url or "")),
        ("GitLab commit status", on["gitlab"],
         source(on["gitlab"], "gitlab_token", "gitlab_url"),
         redact_url(own.get("gitlab_url") or config.gitlab_url or "")),
        ("Email", on["email"], source(on["email"], "email_to_addresses"),
         ", ".join(addresses)),
        ("Slack", on["slack"], source(on["slack"], "slack_webhook_url"),
         "failures only" if on["slack"] and slack_failures else ""),
    ]


async def _jobset_row(request: web.Request) -> Any:
    pool = _pool(request)
    project_name = arg(request, 0, "project", "project-id")
    jobset_name = arg(request, 1, "jobset", "jobset-id")
    row = await jobset_rows.by_names(pool, project_name, jobset_name)
    if row is None:
        raise not_found(f"jobset {project_name}:{jobset_name}")
    return row


@html_errors
async def jobset(request: web.Request) -> web.StreamResponse:
    pool = _pool(request)
    row = await _jobset_row(request)
    evals = await evaluation_rows.page(pool, None, row["id"], None, 10, 0)
    latest = evals[0] if evals else None
    builds: list[Any] = []
    build_pager = None
    if latest is not None:
        wanted = filter_from(request, jobset_id=row["id"], evaluation_id=latest["id"])
        builds, build_pager = await build_page(pool, request, wanted)
    inputs = await jobset_rows.inputs(pool, row["id"])
    who = await viewer(request)
    starred = set()
    if who is not None and who.user_id is not None:
        starred = {r["job"] for r in await starred_rows.page(pool, who.user_id, 500, 0)
                   if r["jobset_id"] == row["id"]}
    return await render(request, "jobset.html", {
        "jobset": row, "evals": evals, "latest": latest, "builds": builds,
        "pager": build_pager, "inputs": inputs, "statuses": STATUS_CHOICES,
        "starred": starred, "base_url": _base_url(request), "live": True})


def _base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


@html_errors
async def jobset_by_id(request: web.Request) -> web.StreamResponse:
    jobset_id = params.path_id(request, "id", "jobset")
    row = await jobset_rows.by_id(_pool(request), jobset_id)
    if row is None:
        raise not_found(f"jobset {jobset_id}")
    raise redirect(f"/jobset/{row['project']}/{row['name']}")


@html_errors
async def evaluations(request: web.Request) -> web.StreamResponse:
    pool = _pool(request)
    project_id = params.query_id(request, "project_id")
    jobset_id = params.query_id(request, "jobset_id")
    status = filter_text(request, "status")
    if status is not None and status not in EVALUATION_STATUSES:
        raise ApiError(400, f"status: one of {', '.join(EVALUATION_STATUSES)}")
    rows = await evaluation_rows.page(pool, project_id, jobset_id, status, PAGE_SIZE,
                                     page_offset(request))
    total = await evaluation_rows.count(pool, project_id, jobset_id, status)
    return await render(request, "evaluations.html", {
        "evals": rows, "pager": pager(request, total), "statuses": EVALUATION_STATUSES,
        "projects": await project_rows.names(pool), "project_id": project_id,
        "live": True})


@html_errors
async def evaluation(request: web.Request) -> web.StreamResponse:
    pool = _pool(request)
    raw = arg(request, 0, "id", "eval-id")
    if not params.digits(raw) or not 0 < int(raw) <= params.MAX_ID:
        raise not_found(f"evaluation {raw!r}")
    eval_id = int(raw)
    row = await evaluation_rows.get(pool, eval_id)
    if row is None:
        raise not_found(f"evaluation {eval_id}")
    wanted = filter_from(request, evaluation_id=eval_id)
    builds, build_pager = await build_page(pool, request, wanted)
    return await render(request, "evaluation.html", {
        "eval": row, "inputs": await evaluation_rows.inputs(pool, eval_id),
        "errors": await evaluation_rows.errors(pool, eval_id),
        "counts": await evaluation_rows.build_counts(pool, eval_id),
        "builds": builds, "pager": build_pager, "statuses": STATUS_CHOICES, "live": True})


@html_errors
async def builds_list(request: web.Request) -> web.StreamResponse:
    pool = _pool(request)
    wanted = filter_from(request)
    rows, build_pager = await build_page(pool, request, wanted)
    systems = [r["system"] for r in await metric_rows.systems(pool)]
    return await render(request, "builds.html", {
        "builds": rows, "pager": build_pager, "statuses": STATUS_CHOICES, "systems": systems,
        "projects": await project_rows.names(pool), "filter": wanted})


@html_errors
async def queue(request: web.Request) -> web.StreamResponse:
    pool = _pool(request)
    system = filter_text(request, "system")
    queued = await queue_rows.queued(pool, system, PAGE_SIZE, page_offset(request))
    total = await queue_rows.queued_count(pool, system)
    running = await queue_rows.running(pool)
    systems = await metric_rows.systems(pool)
    return await render(request, "queue.html", {
        "queued": queued, "running": running, "pager": pager(request, total),
        "systems": systems, "system": system or "", "live": True})


@html_errors
async def channels(request: web.Request) -> web.StreamResponse:
    pool = _pool(request)
    q = filter_text(request, "q")
    rows = await channel_rows.named_like(pool, q, PAGE_SIZE, page_offset(request))
    total = await channel_rows.named_like_count(pool, q)
    return await render(request, "channels.html",
                        {"channels": rows, "pager": pager(request, total), "q": q or ""})


@html_errors
async def channel(request: web.Request) -> web.StreamResponse:
    channel_id = params.path_id(request, "id", "channel")
    row = await channel_rows.with_names(_pool(request), channel_id)
    if row is None:
        raise not_found(f"channel {channel_id}")
    return await render(request, "channel.html",
                        {"channel": row, "base_url": _base_url(request)})


@html_errors
async def news(request: web.Request) -> web.StreamResponse:
    pool = _pool(request)
    rows = await news_rows.page(pool, PAGE_SIZE, page_offset(request))
    total = await news_rows.count(pool)
    return await render(request, "news.html", {"items": rows, "pager": pager(request, total)})


@html_errors
async def starred(request: web.Request) -> web.StreamResponse:
    who = await viewer(request)
    if who is None or who.user_id is None:
        return await render(request, "starred.html", {"rows": [], "pager": None,
                                                      "need_login": True})
    pool = _pool(request)
    rows = await starred_rows.with_latest_builds(pool, who.user_id, PAGE_SIZE,
                                                page_offset(request))
    total = await starred_rows.count(pool, who.user_id)
    return await render(request, "starred.html",
                        {"rows": rows, "pager": pager(request, total), "need_login": False})


def _label(when: Any, bucket: str) -> str:
    return str(when.astimezone(datetime.UTC).strftime("%H:%M" if bucket == "hour" else "%m-%d"))


def _bucket_labels(hours: int, bucket: str) -> list[str]:
    """Every bucket of the period, oldest first, so quiet hours show as gaps, not as
    missing columns (the query only returns buckets that have builds)."""
    now = datetime.datetime.now(datetime.UTC)
    if bucket == "hour":
        start, step = now.replace(minute=0, second=0, microsecond=0), datetime.timedelta(hours=1)
    else:
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        step = datetime.timedelta(days=1)
        if bucket == "week":
            start -= datetime.timedelta(days=start.weekday())
            step = datetime.timedelta(weeks=1)
    count = max(1, int(datetime.timedelta(hours=hours) / step))
    return [_label(start - step * i, bucket) for i in reversed(range(count))]


def _filled(rows: list[Any], hours: int, bucket: str,
            values: Any) -> list[svg.Bucket]:
    found = {_label(r["time"], bucket): values(r) for r in rows}
    labels = _bucket_labels(hours, bucket)
    # A bucket the clock does not produce (another time zone's midnight) is kept too.
    labels += [label for label in found if label not in labels]
    return [svg.Bucket(label, found.get(label, {})) for label in labels]


@html_errors
async def metrics(request: web.Request) -> web.StreamResponse:
    pool = _pool(request)
    period = request.query.get("period", "week")
    if period not in PERIODS:
        raise ApiError(400, f"period: one of {', '.join(PERIODS)}")
    hours, bucket = PERIODS[period]
    project_id = params.query_id(request, "project_id")
    counts = await metric_rows.series(pool, "builds", bucket, hours, project_id)
    durations = await metric_rows.series(pool, "durations", bucket, hours, project_id)
    count_plot = svg.stacked_bars(
        "Builds finished",
        _filled(counts, hours, bucket,
                lambda r: {"succeeded": r["succeeded"], "failed": r["failed"]}),
        ("succeeded", "failed"))
    duration_plot = svg.lines(
        "Build duration (successful builds)",
        _filled(durations, hours, bucket,
                lambda r: {"p50": r["p50_seconds"], "p95": r["p95_seconds"],
                           "max": r["max_seconds"]}),
        ("p50", "p95", "max"), unit="s")
    totals = {"total": sum(r["total"] for r in counts),
              "succeeded": sum(r["succeeded"] for r in counts),
              "failed": sum(r["failed"] for r in counts)}
    return await render(request, "metrics.html", {
        "count_plot": count_plot, "duration_plot": duration_plot, "period": period,
        "periods": PERIODS, "totals": totals, "project_id": project_id,
        "projects": await project_rows.names(pool),
        "systems": await metric_rows.systems(pool)})
