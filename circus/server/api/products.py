"""/api/v1/builds/{id}/products and .../products/{nr}/download (the dashboard links here).

What a download may read is services/downloads' rule, the same for Hydra's download URL.
"""

from __future__ import annotations

import structlog
from aiohttp import web

from circus.server.http import params, responses
from circus.server.http.errors import not_found, refusals
from circus.server.http.keys import CONTEXT
from circus.server.http.openapi import INT, PAGE_QUERY, STR, doc, nullable, obj, page_of, query
from circus.services import downloads
from circus.store import builds

log = structlog.get_logger(__name__)

PRODUCT = obj(product_nr=INT, type=STR, subtype=STR, name=STR, path=STR, default_path=STR,
              file_size=nullable(INT), sha256=nullable(STR))


@doc("A build's products (files it offers for download)", response=page_of(PRODUCT),
     query=PAGE_QUERY, tags=("builds",))
async def list_products(request: web.Request) -> web.Response:
    build_id = params.path_id(request, "id", "build")
    page = params.page(request)
    pool = request.app[CONTEXT].pool
    if not await builds.exists(pool, build_id):
        raise not_found(f"build {build_id}")
    rows = responses.rows((await builds.products(pool, [build_id]))[build_id])
    return responses.ok(responses.page(rows[page.offset:page.offset + page.limit], len(rows),
                                       page.limit, page.offset))


@doc("Download a build product; `path` picks a file inside a directory product",
     content_type="application/octet-stream", response={"type": "string", "format": "binary"},
     path={"nr": {"type": "integer", "minimum": 0}}, tags=("builds",),
     query={"path": query(STR, "a file inside a directory product (relative, no '..')")})
async def download_product(request: web.Request) -> web.StreamResponse:
    build_id = params.path_id(request, "id", "build")
    product_nr = int(request.match_info["nr"]) if params.digits(request.match_info["nr"]) else -1
    if not 0 <= product_nr < 2**31:
        raise not_found(f"product {request.match_info['nr']!r}")
    with refusals():
        target = await downloads.product_file(request.app[CONTEXT].pool, build_id,
                                              product_nr, request.query.get("path"))
    return web.FileResponse(target, headers={
        "Content-Type": "application/octet-stream",
        "Content-Disposition": f'attachment; filename="{_quoted(target.name)}"'})


def _quoted(name: str) -> str:
    return "".join(c if c.isprintable() and c not in '"\\' else "_" for c in name)


def add_routes(router: web.UrlDispatcher) -> None:
    base = r"/api/v1/builds/{id:\d+}/products"
    router.add_get(base, list_products)
    router.add_get(base + r"/{nr:\d+}/download", download_product)
