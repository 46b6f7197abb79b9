"""/api/v1/api-keys (admin): create (the raw key is shown once), list, delete.

Only the SHA-256 of a key is stored, so a lost key cannot be shown again: delete it and
create another. A deleted key fails its very next request, sessions opened with it too.
"""

from __future__ import annotations

from aiohttp import web

from circus.server.accounts import auth
from circus.server.http import params, responses
from circus.server.http.errors import bad_field, not_found
from circus.server.http.keys import CONTEXT
from circus.server.http.openapi import (
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
from circus.services.apikeys import hash_key, new_key
from circus.store import apikeys

MAX_NAME = 100

API_KEY = obj(id=INT, name=STR, role=STR, declarative=BOOL, created_at=TIME,
              last_used_at=nullable(TIME))
NEW_KEY = obj(**API_KEY["properties"], key=STR)
# The name is stripped, then 1 to 100 characters: at least one that is not a space.
KEY_BODY = obj(required=("name",), name={"type": "string", "maxLength": 100,
                                         "pattern": r"\S"},
               role={"type": "string", "enum": list(auth.ROLES)})


@doc("List API keys (never the keys themselves)", response=page_of(API_KEY),
     query=PAGE_QUERY, permission=auth.ADMIN, tags=("api-keys",))
@auth.requires(auth.ADMIN)
async def list_keys(request: web.Request) -> web.Response:
    page = params.page(request)
    pool = request.app[CONTEXT].pool
    items = await apikeys.page(pool, page.limit, page.offset)
    total = await apikeys.count(pool)
    return responses.ok(responses.page(responses.rows(items), total, page.limit, page.offset))


@doc("Create an API key: the answer holds the key, shown this once", status=201,
     body=KEY_BODY, response=NEW_KEY, permission=auth.ADMIN, tags=("api-keys",))
@auth.requires(auth.ADMIN)
async def create_key(request: web.Request) -> web.Response:
    body = await params.json_body(request)
    name = params.text(body, "name").strip()
    if not name or len(name) > MAX_NAME:
        raise bad_field("name", f"must be 1 to {MAX_NAME} characters")
    role = params.text(body, "role", "read-only")
    if role not in auth.ROLES:
        raise bad_field("role", f"{role!r} is not a role (one of {', '.join(auth.ROLES)})")
    key = new_key()
    row = await apikeys.insert(request.app[CONTEXT].pool, name, hash_key(key), role)
    return responses.ok({**dict(row), "key": key}, status=201)


@doc("Delete an API key: it stops working at once", response=DELETED,
     permission=auth.ADMIN, tags=("api-keys",))
@auth.requires(auth.ADMIN)
async def delete_key(request: web.Request) -> web.Response:
    key_id = params.path_id(request, what="API key")
    deleted = await apikeys.delete(request.app[CONTEXT].pool, key_id)
    if deleted is None:
        raise not_found(f"API key {key_id}")
    return responses.ok({"id": deleted, "deleted": True})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/v1/api-keys", list_keys)
    router.add_post("/api/v1/api-keys", create_key)
    router.add_delete("/api/v1/api-keys/{id}", delete_key)
