"""/api/v1/builds/{id}/products and .../products/{nr}/download.

A download never reads outside the product, by the rule of circus/nix/products.py that the
runner's scan follows too: the product must lie inside one of the build's outputs, whose
root is the output's store path itself (an output that is a symlink offers nothing), and
every symlink on the way is followed only while it stays inside. A `path` inside a
directory product may not be absolute or contain `..` (400); a file it names that leaves
the product, or is not a regular file, is 404 (and logged).

This is the only product download: the dashboard links here, Hydra's API has none.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import structlog
from aiohttp import web

from circus.nix.products import Escape, is_regular, locate, resolve_inside
from circus.server.http import params, responses
from circus.server.http.errors import bad_field, not_found
from circus.server.http.keys import CONTEXT
from circus.server.http.openapi import INT, PAGE_QUERY, STR, doc, nullable, obj, page_of, query
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


def _relative(raw: str) -> PurePosixPath:
    if "\x00" in raw:
        raise bad_field("path", "must not contain NUL characters")
    rel = PurePosixPath(raw)
    if rel.is_absolute():
        raise bad_field("path", "must be relative to the product")
    if ".." in rel.parts:
        raise bad_field("path", "must not contain '..'")
    return rel


def _target(product: Path, default_path: str, requested: str | None) -> Path | None:
    """The file to send inside a located product; raises Escape when it would leave it."""
    if not product.is_dir():
        if requested:
            raise bad_field("path", "the product is a single file")
        return product
    if requested:
        return resolve_inside(product, _relative(requested))
    if not default_path:
        raise bad_field("path", "is required for a directory product")
    return resolve_inside(product, default_path)


def resolve_download(product_path: str, outputs: list[str], default_path: str,
                     requested: str | None) -> Path:
    """The real file to send, or an ApiError; see the module docstring."""
    try:
        product = locate(product_path, outputs)
        if product is None:
            raise not_found("product file (garbage collected?)")
        target = _target(product, default_path, requested)
    except Escape as exc:
        log.warning("product download refused", product=product_path, path=requested,
                    reason=str(exc))
        raise not_found("the file in the product (it leaves the build's outputs)") from None
    if target is None or not is_regular(target):
        raise not_found(f"{requested or default_path or 'the file'!r} in the product "
                        "(missing or not a file)")
    return target


@doc("Download a build product; `path` picks a file inside a directory product",
     content_type="application/octet-stream", response={"type": "string", "format": "binary"},
     path={"nr": {"type": "integer", "minimum": 0}}, tags=("builds",),
     query={"path": query(STR, "a file inside a directory product (relative, no '..')")})
async def download_product(request: web.Request) -> web.StreamResponse:
    build_id = params.path_id(request, "id", "build")
    product_nr = int(request.match_info["nr"]) if params.digits(request.match_info["nr"]) else -1
    if not 0 <= product_nr < 2**31:
        raise not_found(f"product {request.match_info['nr']!r}")
    pool = request.app[CONTEXT].pool
    row = await builds.product(pool, build_id, product_nr)
    if row is None:
        raise not_found(f"product {product_nr} of build {build_id}")
    outputs = [r["path"] for r in (await builds.outputs(pool, [build_id]))[build_id]]
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
