"""/api/v1/builds/{id}/products and .../products/{nr}/download.

A download never reads outside the product: the product itself must lie inside one of
the build's outputs (a build declares its products in a file it wrote, so it could name
any path), a `path` inside a directory product may not be absolute or contain `..`
(400), and the file it names, with every symlink resolved, must still be inside the
product (404 otherwise)."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import structlog
from aiohttp import web

from circus.db.queries import Q
from circus.server import params, responses
from circus.server.errors import bad_field, not_found
from circus.server.keys import CONTEXT
from circus.server.openapi import INT, PAGE_QUERY, STR, doc, nullable, obj, page_of, query

log = structlog.get_logger(__name__)

PRODUCT = obj(product_nr=INT, type=STR, subtype=STR, name=STR, path=STR, default_path=STR,
              file_size=nullable(INT), sha256=nullable(STR))


@doc("A build's products (files it offers for download)", response=page_of(PRODUCT),
     query=PAGE_QUERY, tags=("builds",))
async def list_products(request: web.Request) -> web.Response:
    build_id = params.path_id(request, "id", "build")
    page = params.page(request)
    pool = request.app[CONTEXT].pool
    if await pool.fetchval(Q.api_build_exists, build_id) is None:
        raise not_found(f"build {build_id}")
    rows = responses.rows(await pool.fetch(Q.api_build_products, build_id))
    return responses.ok(responses.page(rows[page.offset:page.offset + page.limit], len(rows),
                                       page.limit, page.offset))


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def _relative(raw: str) -> PurePosixPath:
    if "\x00" in raw:
        raise bad_field("path", "must not contain NUL characters")
    rel = PurePosixPath(raw)
    if rel.is_absolute():
        raise bad_field("path", "must be relative to the product")
    if ".." in rel.parts:
        raise bad_field("path", "must not contain '..'")
    return rel


def resolve_download(product_path: str, outputs: list[str], default_path: str,
                     requested: str | None) -> Path:
    """The real file to send, or an ApiError; see the module docstring."""
    roots = [Path(os.path.realpath(o)) for o in outputs]
    product = Path(os.path.realpath(product_path))
    if not any(_inside(product, root) for root in roots):
        log.warning("product outside the build's outputs refused", path=product_path)
        raise not_found("product file")
    if not product.exists():
        raise not_found("product file (garbage collected?)")
    rel = requested if requested not in (None, "") else (default_path or None)
    if product.is_dir():
        if rel is None:
            raise bad_field("path", "is required for a directory product")
        target = Path(os.path.realpath(product / _relative(rel)))
        if not _inside(target, product):
            log.warning("download outside the product refused", product=str(product),
                        path=rel)
            raise not_found(f"{rel!r} in the product")
    else:
        if requested not in (None, ""):
            raise bad_field("path", "the product is a single file")
        target = product
    if not target.is_file():
        raise not_found(f"{rel!r} in the product (not a file)")
    return target


@doc("Download a build product; `path` picks a file inside a directory product",
     content_type="application/octet-stream", response={"type": "string", "format": "binary"},
     path={"nr": {"type": "integer", "minimum": 0}}, tags=("builds",),
     query={"path": query(STR, "a file inside a directory product (relative, no '..')")})
async def download_product(request: web.Request) -> web.StreamResponse:
    build_id = params.path_id(request, "id", "build")
    product_nr = int(request.match_info["nr"]) if request.match_info["nr"].isdigit() else -1
    if not 0 <= product_nr < 2**31:
        raise not_found(f"product {request.match_info['nr']!r}")
    pool = request.app[CONTEXT].pool
    row = await pool.fetchrow(Q.api_build_product, build_id, product_nr)
    if row is None:
        raise not_found(f"product {product_nr} of build {build_id}")
    outputs = [r["path"] for r in await pool.fetch(Q.api_build_outputs, build_id)]
    target = resolve_download(row["path"], outputs, row["default_path"],
                              request.query.get("path"))
    return web.FileResponse(target, headers={
        "Content-Type": "application/octet-stream",
        "Content-Disposition": f'attachment; filename="{_quoted(target.name)}"'})


def _quoted(name: str) -> str:
    return "".join(c if c.isprintable() and c not in '"\\' else "_" for c in name)


def add_routes(router: web.UrlDispatcher) -> None:
    base = r"/api/v1/builds/{id:\d+}/products"
    router.add_get(base, list_products)
    router.add_get(base + r"/{nr:\d+}/download", download_product)
