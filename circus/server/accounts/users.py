"""/api/v1/users (admin) and /api/v1/me: profile, password change, starred jobs."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from circus.server.accounts import auth
from circus.server.accounts import login as accounts
from circus.server.http import params, responses
from circus.server.http.errors import ApiError, bad_field, conflict, not_found
from circus.server.http.keys import CONTEXT
from circus.server.http.openapi import (
    AUTHENTICATED,
    BOOL,
    DELETED,
    INT,
    PAGE_QUERY,
    STR,
    TIME,
    doc,
    nullable,
    obj,
    page_of,
)
from circus.services import login as logins
from circus.services import passwords
from circus.store import sessions, starred, users

# The rule lives with the login operation (a name that cannot exist is never hashed).
USERNAME_RE = logins.USERNAME_RE
USERNAME = {"type": "string", "pattern": USERNAME_RE.pattern}
MAX_TEXT = 200

# A new password, as passwords.problem checks it; null: none (GitHub or LDAP only).
NEW_PASSWORD = {"type": "string", "minLength": passwords.MIN_LENGTH,
                "maxLength": passwords.MAX_LENGTH}
_USER_FIELDS = dict(username=USERNAME, email=nullable(STR), full_name=STR,
                    password=nullable(NEW_PASSWORD),
                    role=accounts.ROLE, enabled=BOOL)
USER_BODY = obj(required=("username",), **_USER_FIELDS)
USER_UPDATE = obj(required=(), **_USER_FIELDS)
ME_UPDATE = obj(required=(), email=nullable(STR), full_name=STR)
PASSWORD_BODY = obj(current_password=STR, new_password=NEW_PASSWORD)
STAR = obj(id=INT, jobset_id=INT, jobset=STR, project_id=INT, project=STR, job=STR,
           created_at=TIME)
STAR_BODY = obj(jobset_id=INT, job=STR)


def _role(body: dict[str, Any], default: Any) -> str:
    role: str = params.text(body, "role", default)
    if role not in auth.ROLES:
        raise bad_field("role", f"{role!r} is not a role (one of {', '.join(auth.ROLES)})")
    return role


def _email(body: dict[str, Any], default: str | None) -> str | None:
    email = params.text(body, "email", default, nullable=True)
    if email == "":
        return None
    if email is not None and (len(email) > MAX_TEXT or "@" not in email
                              or any(c.isspace() for c in email)):
        raise bad_field("email", f"{email!r} is not an email address")
    return email


def _short(body: dict[str, Any], field: str, default: str) -> str:
    value: str = params.text(body, field, default)
    if len(value) > MAX_TEXT:
        raise bad_field(field, f"must be at most {MAX_TEXT} characters")
    return value


async def _new_password(body: dict[str, Any], field: str) -> str | None:
    """The hash of `field` when the body sets it, else None."""
    password = params.text(body, field, None, nullable=True)
    if password is None:
        return None
    problem = passwords.problem(password)
    if problem:
        raise bad_field(field, problem)
    return await passwords.hash_async(password)


async def _user(pool: asyncpg.Pool, user_id: int) -> asyncpg.Record:
    row = await users.get(pool, user_id)
    if row is None:
        raise not_found(f"user {user_id}")
    return row


@doc("List users", response=page_of(accounts.USER), query=PAGE_QUERY,
     permission=auth.ADMIN, tags=("users",))
@auth.requires(auth.ADMIN)
async def list_users(request: web.Request) -> web.Response:
    page = params.page(request)
    pool = request.app[CONTEXT].pool
    items = await users.page(pool, page.limit, page.offset)
    total = await users.count(pool)
    return responses.ok(responses.page([accounts.user_json(r) for r in items], total,
                                       page.limit, page.offset))


@doc("Create a user", status=201, body=USER_BODY, response=accounts.USER,
     permission=auth.ADMIN, tags=("users",),
     description="Without a password the user can log in only through GitHub or LDAP.")
@auth.requires(auth.ADMIN)
async def create_user(request: web.Request) -> web.Response:
    body = await params.json_body(request)
    username = params.name(body, "username", pattern=USERNAME_RE)
    email = _email(body, None)
    full_name = _short(body, "full_name", "")
    role = _role(body, "read-only")
    enabled = params.boolean(body, "enabled", True)
    password_hash = await _new_password(body, "password")
    try:
        row = await users.insert(request.app[CONTEXT].pool, username, email=email,
                                 full_name=full_name, password_hash=password_hash,
                                 role=role, enabled=enabled)
    except asyncpg.UniqueViolationError:
        raise conflict(f"username: a user named {username!r} already exists") from None
    return responses.ok(accounts.user_json(row), status=201)


@doc("One user", response=accounts.USER, permission=auth.ADMIN, tags=("users",))
@auth.requires(auth.ADMIN)
async def get_user(request: web.Request) -> web.Response:
    user_id = params.path_id(request, what="user")
    return responses.ok(accounts.user_json(await _user(request.app[CONTEXT].pool, user_id)))


@doc("Update a user: the fields given change (a password resets it)", body=USER_UPDATE,
     response=accounts.USER, permission=auth.ADMIN, tags=("users",))
@auth.requires(auth.ADMIN)
async def update_user(request: web.Request) -> web.Response:
    pool = request.app[CONTEXT].pool
    user_id = params.path_id(request, what="user")
    body = await params.json_body(request)
    old = await _user(pool, user_id)
    username = params.name(body, "username", old["username"], pattern=USERNAME_RE)
    email = _email(body, old["email"])
    full_name = _short(body, "full_name", old["full_name"])
    role = _role(body, old["role"])
    enabled = params.boolean(body, "enabled", old["enabled"])
    password_hash = await _new_password(body, "password")
    try:
        async with pool.acquire() as conn, conn.transaction():
            # A new password, role or state ends the user's sessions (the trigger of
            # migration 0008), but not the admin's own when they edit themselves.
            await sessions.keep(conn, auth.principal(request).session_id)
            row = await users.update(conn, user_id, username=username, email=email,
                                     full_name=full_name, role=role, enabled=enabled,
                                     password_hash=password_hash)
    except asyncpg.UniqueViolationError:
        raise conflict(f"username: a user named {username!r} already exists") from None
    if row is None:
        raise not_found(f"user {user_id}")
    return responses.ok(accounts.user_json(row))


@doc("Delete a user (their sessions end)", response=DELETED, permission=auth.ADMIN,
     tags=("users",))
@auth.requires(auth.ADMIN)
async def delete_user(request: web.Request) -> web.Response:
    user_id = params.path_id(request, what="user")
    deleted = await users.delete(request.app[CONTEXT].pool, user_id)
    if deleted is None:
        raise not_found(f"user {user_id}")
    return responses.ok({"id": deleted, "deleted": True})


@doc("Who the caller is, their permissions and the session's CSRF token",
     response=accounts.ME, permission=AUTHENTICATED, tags=("me",))
@auth.requires_login
async def get_me(request: web.Request) -> web.Response:
    who = auth.principal(request)
    return responses.ok(await accounts.me_document(request.app[CONTEXT].pool, who))


@doc("Update one's own profile (email, full name)", body=ME_UPDATE, response=accounts.ME,
     permission=AUTHENTICATED, tags=("me",))
@auth.requires_user
async def update_me(request: web.Request) -> web.Response:
    pool = request.app[CONTEXT].pool
    who = auth.principal(request)
    body = await params.json_body(request)
    for field in ("username", "role", "enabled", "password"):
        if field in body:
            raise bad_field(field, "cannot be changed here (an admin changes it, or "
                                   "POST /api/v1/me/password for the password)")
    old = await _user(pool, who.user_id or 0)
    row = await users.update(pool, old["id"], username=old["username"],
                             email=_email(body, old["email"]),
                             full_name=_short(body, "full_name", old["full_name"]),
                             role=old["role"], enabled=old["enabled"])
    if row is None:
        raise not_found(f"user {old['id']}")
    return responses.ok(await accounts.me_document(pool, who))


@doc("Change one's own password (needs the current one)", body=PASSWORD_BODY,
     response=obj(password_changed=BOOL), permission=AUTHENTICATED, tags=("me",),
     description="Every other session of the account ends.")
@auth.requires_user
async def change_password(request: web.Request) -> web.Response:
    pool = request.app[CONTEXT].pool
    who = auth.principal(request)
    body = await params.json_body(request)
    current = params.text(body, "current_password")
    new_hash = await _new_password(body, "new_password")
    if new_hash is None:
        raise bad_field("new_password", "is required")
    stored = await users.password_hash(pool, who.user_id or 0)
    if stored is None:
        raise bad_field("current_password", "this account has no password: it logs in "
                                            "through GitHub or LDAP")
    try:
        good = await logins.check_password(pool, accounts.limits(request),
                                           accounts.client(request, body), who.name,
                                           stored, current)
    except logins.Refused as exc:
        return accounts.refusal(exc)
    if not good:
        raise ApiError(403, "current_password: wrong password")
    async with pool.acquire() as conn, conn.transaction():
        # Whoever else holds a session of this account loses it with the old password
        # (the trigger of migration 0008); this one stays.
        await sessions.keep(conn, who.session_id)
        await users.set_password(conn, who.user_id or 0, new_hash)
    return responses.ok({"password_changed": True})


@doc("One's starred jobs", response=page_of(STAR), query=PAGE_QUERY,
     permission=AUTHENTICATED, tags=("me",))
@auth.requires_user
async def list_starred(request: web.Request) -> web.Response:
    page = params.page(request)
    pool = request.app[CONTEXT].pool
    user_id = auth.principal(request).user_id or 0
    items = await starred.page(pool, user_id, page.limit, page.offset)
    total = await starred.count(pool, user_id)
    return responses.ok(responses.page(responses.rows(items), total, page.limit, page.offset))


@doc("Star a job (201; 200 when it was starred already)", status=201, body=STAR_BODY,
     response=STAR, permission=AUTHENTICATED, tags=("me",),
     extra={200: ("application/json", STAR, "already starred")})
@auth.requires_user
async def star_job(request: web.Request) -> web.Response:
    pool = request.app[CONTEXT].pool
    body = await params.json_body(request)
    jobset_id = params.integer(body, "jobset_id", 0, minimum=1, maximum=params.MAX_ID)
    if jobset_id == 0:
        raise bad_field("jobset_id", "is required")
    job = _short(body, "job", "")
    if not job:
        raise bad_field("job", "is required")
    found = await starred.add(pool, auth.principal(request).user_id or 0, jobset_id, job)
    if found is None:
        raise not_found(f"jobset {jobset_id}")
    row = await starred.get(pool, found["id"])
    if row is None:
        # Unstarred (or its jobset deleted) by another request in between.
        raise not_found(f"starred job {found['id']}")
    return responses.ok(dict(row), status=201 if found["created"] else 200)


@doc("Unstar a job", response=DELETED, permission=AUTHENTICATED, tags=("me",))
@auth.requires_user
async def unstar_job(request: web.Request) -> web.Response:
    star_id = params.path_id(request, what="starred job")
    deleted = await starred.delete(request.app[CONTEXT].pool, star_id,
                                   auth.principal(request).user_id or 0)
    if deleted is None:
        raise not_found(f"starred job {star_id}")
    return responses.ok({"id": deleted, "deleted": True})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/v1/users", list_users)
    router.add_post("/api/v1/users", create_user)
    router.add_get("/api/v1/users/{id}", get_user)
    router.add_put("/api/v1/users/{id}", update_user)
    router.add_delete("/api/v1/users/{id}", delete_user)
    router.add_get("/api/v1/me", get_me)
    router.add_put("/api/v1/me", update_me)
    router.add_post("/api/v1/me/password", change_password)
    router.add_get("/api/v1/me/starred-jobs", list_starred)
    router.add_post("/api/v1/me/starred-jobs", star_job)
    router.add_delete("/api/v1/me/starred-jobs/{id}", unstar_job)
