"""/api/v1/news: announcements shown on the dashboard."""

from __future__ import annotations

import structlog
from aiohttp import web

from circus.server.accounts import auth
from circus.server.http import params, responses
from circus.server.http.errors import bad_field, not_found
from circus.server.http.keys import CONTEXT
from circus.server.http.openapi import DELETED, INT, PAGE_QUERY, STR, TIME, doc, obj, page_of
from circus.store import news

log = structlog.get_logger(__name__)

TITLE_MAX = 200
NEWS = obj(id=INT, title=STR, content=STR, author=STR, created_at=TIME)
NEWS_BODY = obj(required=("title",), title={"type": "string", "minLength": 1,
                                             "maxLength": TITLE_MAX}, content=STR)


@doc("List news items, newest first", response=page_of(NEWS), query=PAGE_QUERY,
     tags=("news",))
async def list_news(request: web.Request) -> web.Response:
    page = params.page(request)
    pool = request.app[CONTEXT].pool
    items = await news.page(pool, page.limit, page.offset)
    total = await news.count(pool)
    return responses.ok(responses.page(responses.rows(items), total, page.limit, page.offset))


@doc("Post a news item", status=201, response=NEWS, body=NEWS_BODY, permission=auth.ADMIN,
     tags=("news",))
@auth.requires(auth.ADMIN)
async def create_news(request: web.Request) -> web.Response:
    body = await params.json_body(request)
    title = params.text(body, "title").strip()
    if not title or len(title) > TITLE_MAX:
        raise bad_field("title", f"must be 1 to {TITLE_MAX} characters")
    content = params.text(body, "content", "")
    who = auth.principal(request)
    row = await news.insert(request.app[CONTEXT].pool, title, content, who.name)
    log.info("news posted", news_id=row["id"], author=who.name)
    return responses.ok(dict(row), status=201)


@doc("Delete a news item", response=DELETED, permission=auth.ADMIN, tags=("news",))
@auth.requires(auth.ADMIN)
async def delete_news(request: web.Request) -> web.Response:
    news_id = params.path_id(request, "id", "news item")
    if not await news.delete(request.app[CONTEXT].pool, news_id):
        raise not_found(f"news item {news_id}")
    return responses.ok({"id": news_id, "deleted": True})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/v1/news", list_news)
    router.add_post("/api/v1/news", create_news)
    router.add_delete(r"/api/v1/news/{id:\d+}", delete_news)
