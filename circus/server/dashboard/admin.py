"""The admin pages: system status, API keys, remote builders (/admin), user
management (/users) and notification deliveries (/admin/notifications), with their
forms. Readable by admins only: the server refuses the page, not just hides its
buttons."""

from __future__ import annotations

import asyncpg
import structlog
from aiohttp import web

from circus.server.accounts import auth
from circus.server.accounts.users import USERNAME_RE
from circus.server.dashboard.forms import form_fields
from circus.server.dashboard.view import (
    PAGE_SIZE,
    filter_text,
    html_errors,
    page_offset,
    pager,
    redirect,
    render,
)
from circus.server.http import params
from circus.server.http.errors import bad_field, conflict, not_found, refusals
from circus.server.http.keys import CONTEXT
from circus.services import builders, notifications, passwords
from circus.services.apikeys import hash_key, new_key
from circus.store import apikeys
from circus.store import metrics as metric_rows
from circus.store import projects as project_rows
from circus.store import users as user_rows

log = structlog.get_logger(__name__)


async def _admin_page(request: web.Request, new_key_text: str | None = None,
                      new_key_name: str | None = None) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    pool = ctx.pool
    system = await metric_rows.system_status(pool)
    keys = await apikeys.page(pool, PAGE_SIZE, page_offset(request))
    total = await apikeys.count(pool)
    remote = await builders.listing(pool)
    _, failed = await notifications.tasks(pool, "failed", None, 1, 0)
    return await render(request, "admin.html", {
        "system": system, "keys": keys, "pager": pager(request, total), "roles": auth.ROLES,
        "builders": remote, "new_key": new_key_text, "new_key_name": new_key_name,
        "instance": ctx.instance, "failed_deliveries": failed})


@html_errors
@auth.requires(auth.ADMIN)
async def admin(request: web.Request) -> web.StreamResponse:
    return await _admin_page(request)


@html_errors
@auth.requires(auth.ADMIN)
async def create_key(request: web.Request) -> web.StreamResponse:
    data = await form_fields(request)
    name = data.get("name", "").strip()
    if not name or len(name) > 100:
        raise bad_field("name", "must be 1 to 100 characters")
    role = data.get("role", "read-only")
    if role not in auth.ROLES:
        raise bad_field("role", f"{role!r} is not a role (one of {', '.join(auth.ROLES)})")
    key = new_key()
    await apikeys.insert(request.app[CONTEXT].pool, name, hash_key(key), role)
    log.info("API key created from the dashboard", name=name, role=role)
    # Shown this once, on this answer: it is stored only as its hash.
    return await _admin_page(request, key, name)


@html_errors
@auth.requires(auth.ADMIN)
async def delete_key(request: web.Request) -> web.StreamResponse:
    key_id = params.path_id(request, "id", "API key")
    if await apikeys.delete(request.app[CONTEXT].pool, key_id) is None:
        raise not_found(f"API key {key_id}")
    raise redirect("/admin", "API key deleted.")


@html_errors
@auth.requires(auth.ADMIN)
async def users(request: web.Request) -> web.StreamResponse:
    pool = request.app[CONTEXT].pool
    rows = await user_rows.page(pool, PAGE_SIZE, page_offset(request))
    total = await user_rows.count(pool)
    return await render(request, "users.html", {"users": rows, "pager": pager(request, total),
                                                "roles": auth.ROLES})


def _role(data: dict[str, str]) -> str:
    role = data.get("role", "read-only")
    if role not in auth.ROLES:
        raise bad_field("role", f"{role!r} is not a role (one of {', '.join(auth.ROLES)})")
    return role


@html_errors
@auth.requires(auth.ADMIN)
async def create_user(request: web.Request) -> web.StreamResponse:
    data = await form_fields(request)
    username = params.name(data, "username", pattern=USERNAME_RE)
    email = data.get("email", "").strip() or None
    if email is not None and "@" not in email:
        raise bad_field("email", f"{email!r} is not an email address")
    password_hash = None
    if data.get("password"):
        problem = passwords.problem(data["password"])
        if problem:
            raise bad_field("password", problem)
        password_hash = await passwords.hash_async(data["password"])
    try:
        await user_rows.insert(request.app[CONTEXT].pool, username, email=email,
                               full_name=data.get("full_name", ""),
                               password_hash=password_hash, role=_role(data), enabled=True)
    except asyncpg.UniqueViolationError:
        raise conflict(f"username: a user named {username!r} already exists") from None
    log.info("user created from the dashboard", username=username)
    raise redirect("/users", f"User {username} created.")


@html_errors
@auth.requires(auth.ADMIN)
async def update_user(request: web.Request) -> web.StreamResponse:
    user_id = params.path_id(request, "id", "user")
    data = await form_fields(request)
    pool = request.app[CONTEXT].pool
    old = await user_rows.get(pool, user_id)
    if old is None:
        raise not_found(f"user {user_id}")
    enabled = data.get("enabled") in ("on", "true", "1")
    await user_rows.update(pool, user_id, username=old["username"], email=old["email"],
                           full_name=old["full_name"], role=_role(data), enabled=enabled)
    raise redirect("/users", f"User {old['username']} updated.")


@html_errors
@auth.requires(auth.ADMIN)
async def delete_user(request: web.Request) -> web.StreamResponse:
    user_id = params.path_id(request, "id", "user")
    if await user_rows.delete(request.app[CONTEXT].pool, user_id) is None:
        raise not_found(f"user {user_id}")
    raise redirect("/users", "User deleted.")


@html_errors
@auth.requires(auth.ADMIN)
async def notification_tasks(request: web.Request) -> web.StreamResponse:
    """The newest notification deliveries, filtered by state and project."""
    pool = request.app[CONTEXT].pool
    status = filter_text(request, "status")
    project_id = params.query_id(request, "project_id")
    with refusals():
        rows, total = await notifications.tasks(pool, status, project_id, PAGE_SIZE,
                                                page_offset(request))
    projects = await project_rows.names(pool)
    return await render(request, "notification_tasks.html", {
        "tasks": rows, "pager": pager(request, total), "statuses": notifications.TASK_STATUSES,
        "projects": projects, "project_names": {p["id"]: p["name"] for p in projects},
        "project_id": project_id})


@html_errors
@auth.requires(auth.ADMIN)
async def retry_notification_task(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    task_id = params.path_id(request, "id", "notification task")
    with refusals():
        await notifications.retry(ctx.pool, ctx.config, auth.principal(request), task_id)
    raise redirect("/admin/notifications", f"Delivery {task_id} queued again.")
