"""A project's notification settings and the delivery queue, as every front end sees
them: `/api/v1/projects/{id}/notifications`, the project's notifications page,
`/api/v1/admin/notification-tasks` and the dashboard's queue view.

Secrets (tokens, webhook URLs) are sealed with services/sealed before they are stored
and are only ever shown as set or not set.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import structlog

from circus.app.config import Config
from circus.domain.errors import Conflict, InvalidValue, NotFound
from circus.domain.status import NOTIFICATION_STATUSES
from circus.notify import settings as notify_settings
from circus.notify.settings import SECRET_KEYS, Settings
from circus.services import projects, sealed
from circus.services.login import Principal
from circus.store import notifications as rows

log = structlog.get_logger(__name__)

TASK_STATUSES = NOTIFICATION_STATUSES


async def own_settings(conn: asyncpg.Pool | asyncpg.Connection, config: Config,
                       project_id: int) -> dict[str, Any]:
    """The project's own settings with its secrets opened."""
    row = await rows.project_settings(conn, project_id)
    if row is None:
        return {}
    own = dict(row["settings"])
    if row["secrets"] is not None:
        own.update(json.loads(sealed.unseal(config, row["secrets"])))
    return own


async def effective(conn: asyncpg.Pool | asyncpg.Connection, config: Config,
                    project_id: int) -> Settings:
    return Settings.of(config, await own_settings(conn, config, project_id))


async def shown(pool: asyncpg.Pool, config: Config, project_id: int) -> dict[str, Any]:
    """The project's settings as anyone may see them: each secret only as set or not,
    with what the global configuration gives."""
    await projects.existing(pool, project_id)
    own = await own_settings(pool, config, project_id)
    result = Settings.of(config, own)
    return {
        "project_id": project_id,
        "settings": {k: v for k, v in own.items() if k not in SECRET_KEYS},
        "secrets_set": sorted(k for k in SECRET_KEYS if own.get(k)),
        "effective": {
            "commit_status": result.commit_status,
            "forge": result.forge, "repository": result.repository,
            "webhook": bool(result.webhook_url), "slack": bool(result.slack_webhook_url),
            "email": bool(result.smtp_host and result.email_to_addresses),
            "github": bool(result.github_token), "gitea": bool(result.gitea_token),
            "gitlab": bool(result.gitlab_token),
        },
    }


async def update(pool: asyncpg.Pool, config: Config, who: Principal, project_id: int,
                 changes: dict[str, Any]) -> dict[str, Any]:
    """Merge `changes` into the project's settings (null removes a key)."""
    projects.authorize(who, "manage-notifications")
    try:
        notify_settings.check(changes)
    except ValueError as exc:
        field, _, problem = str(exc).partition(": ")
        raise InvalidValue(field, problem) from None
    await projects.existing(pool, project_id)
    async with pool.acquire() as conn, conn.transaction():
        own = await own_settings(conn, config, project_id)
        own.update(changes)
        own = {k: v for k, v in own.items() if v is not None}
        plain = {k: v for k, v in own.items() if k not in SECRET_KEYS}
        hidden = {k: v for k, v in own.items() if k in SECRET_KEYS}
        locked = sealed.seal(config, json.dumps(hidden)) if hidden else None
        await rows.put_project_settings(conn, project_id, plain, locked)
    log.info("project notification settings changed", project_id=project_id,
             keys=sorted(changes), by=who.name)
    return await shown(pool, config, project_id)


async def tasks(pool: asyncpg.Pool, status: str | None, project_id: int | None, limit: int,
                offset: int) -> tuple[list[asyncpg.Record], int]:
    if status is not None and status not in TASK_STATUSES:
        raise InvalidValue("status", f"expected one of {', '.join(TASK_STATUSES)}")
    return (await rows.page(pool, status, project_id, limit, offset),
            await rows.count(pool, status, project_id))


async def retry(pool: asyncpg.Pool, config: Config, who: Principal,
                task_id: int) -> asyncpg.Record:
    """A failed delivery, queued again with fresh attempts."""
    projects.authorize(who, "manage-notifications")
    task = await rows.get(pool, task_id)
    if task is None:
        raise NotFound(f"notification task {task_id} not found")
    if task["status"] != "failed":
        raise Conflict(f"notification task {task_id} is {task['status']}; only a failed "
                       "one is retried")
    if task["superseded_by"] is not None:
        raise Conflict(f"notification task {task_id} is superseded by task "
                       f"{task['superseded_by']}, already sent: sending it now would "
                       "overwrite a newer status")
    row = await rows.retry(pool, task_id, config.notifications.max_retry_attempts + 1)
    if row is None:
        raise Conflict(f"notification task {task_id} changed meanwhile; reload it")
    log.info("notification task retried", task_id=task_id, by=who.name)
    return row


