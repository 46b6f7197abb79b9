"""The notification queue: every server and runner process runs it. It turns new events
into deliveries (events.py), claims due deliveries with `SKIP LOCKED`, sends them, and
records each as done once, or tries again after `retry_poll_interval * 2^(attempt-1)`
seconds, `max_retry_attempts` times (none with `enable_retry_queue = false`), before
recording it failed. Woken by `circus_notifications`; the poll interval is the net.

A sender that dies mid-delivery leaves a claim whose lease runs out; another sender then
sends it again: at least once, recorded done once. Done and failed deliveries are
deleted after `retention_days`.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import structlog

from circus.app.config import NotificationsConfig
from circus.app.context import Context
from circus.db.bus import NOTIFICATIONS, Subscription
from circus.domain.errors import CircusError
from circus.notify import events, targets
from circus.notify.client import MAX_REDIRECTS, Client, DeliveryFailed
from circus.notify.settings import Settings
from circus.services import forge
from circus.services import notifications as project_notifications
from circus.store import notifications as rows

log = structlog.get_logger(__name__)

DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
CLAIM = 20
LONGEST_BACKOFF = 3600.0
HOUSEKEEPING_EVERY = 3600.0


def retry_in(cfg: NotificationsConfig, attempts: int) -> float:
    return min(LONGEST_BACKOFF, cfg.retry_poll_interval * 2.0 ** max(0, attempts - 1))


def lease_seconds(cfg: NotificationsConfig) -> float:
    """Longer than a delivery may take: every redirect's request, and some."""
    return float(cfg.http_timeout * (MAX_REDIRECTS + 1) + 5)


async def run(ctx: Context) -> None:
    cfg = ctx.config.notifications
    log.info("notification queue started", retry_poll_interval=cfg.retry_poll_interval,
             max_retry_attempts=cfg.max_retry_attempts, retry=cfg.enable_retry_queue)
    swept = 0.0
    with ctx.bus.subscribe(NOTIFICATIONS) as sub:
        async with Client(cfg.http_timeout, cfg.allow_private_targets) as http:
            while not ctx.stopping.is_set():
                wait = float(cfg.retry_poll_interval)
                try:
                    if time.monotonic() - swept > HOUSEKEEPING_EVERY:
                        await _housekeeping(ctx)
                        swept = time.monotonic()
                    wait = await _round(ctx, http)
                except DB_ERRORS as exc:
                    log.warning("notification queue: database error, retrying",
                                error=str(exc))
                await _wait(ctx, sub, wait)
    log.info("notification queue stopped")


async def _round(ctx: Context, http: Client) -> float:
    """Expand and send what is due; the seconds until something more is."""
    while await events.expand(ctx.pool, ctx.config):
        pass
    cfg = ctx.config.notifications
    while claimed := await rows.claim(ctx.pool, CLAIM, lease_seconds(cfg)):
        settings = await _settings_of(ctx, {task["project_id"] for task in claimed})
        await asyncio.gather(*(_deliver(ctx, http, task, settings[task["project_id"]])
                               for task in claimed))
    due = await rows.seconds_until_due(ctx.pool)
    return float(cfg.retry_poll_interval) if due is None else \
        max(0.05, min(due, cfg.retry_poll_interval))


async def _settings_of(ctx: Context,
                       project_ids: set[int]) -> dict[int, Settings | CircusError]:
    """Each project's settings, read once per claimed batch; a project whose secrets
    this host cannot open gets the error, which fails its deliveries only."""
    found: dict[int, Settings | CircusError] = {}
    for project_id in project_ids:
        try:
            found[project_id] = await project_notifications.effective(ctx.pool, ctx.config,
                                                                      project_id)
        except CircusError as exc:
            found[project_id] = exc
    return found


async def _deliver(ctx: Context, http: Client, task: asyncpg.Record,
                   settings: Settings | CircusError) -> None:
    cfg = ctx.config.notifications
    bound = log.bind(task_id=task["id"], target=task["target"],
                     project_id=task["project_id"], attempt=task["attempts"])
    try:
        if isinstance(settings, CircusError):
            raise settings
        await targets.send(task["target"], task["payload"], settings, http, cfg.http_timeout)
    except (DeliveryFailed, CircusError) as exc:
        await _attempt_failed(ctx, task, str(exc), bound)
        return
    except DB_ERRORS:
        raise
    except Exception as exc:  # a bug shown by one delivery must not stop the queue
        bound.exception("notification delivery crashed")
        await _attempt_failed(ctx, task, f"internal error: {exc!r}", bound)
        return
    if await rows.mark_done(ctx.pool, task["id"], task["attempts"]):
        bound.info("notification delivered")
    else:
        bound.warning("notification delivered after its claim ran out; another sender "
                      "may send it again")


async def _attempt_failed(ctx: Context, task: asyncpg.Record, error: str,
                          bound: structlog.typing.FilteringBoundLogger) -> None:
    cfg = ctx.config.notifications
    status = await rows.mark_attempt_failed(ctx.pool, task["id"], task["attempts"],
                                            retry_in(cfg, task["attempts"]), error)
    bound.warning("notification not delivered", error=error, now=status)


async def _housekeeping(ctx: Context) -> None:
    await rows.purge(ctx.pool, ctx.config.notifications.retention_days)
    await forge.sweep(ctx.pool, ctx.config)


async def _wait(ctx: Context, sub: Subscription, seconds: float) -> None:
    waiters = [asyncio.ensure_future(sub.wait(seconds)),
               asyncio.ensure_future(ctx.stopping.wait())]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
