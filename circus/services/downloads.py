"""A build product's file, for every front end that serves one (`/api/v1`'s download,
Hydra's `/build/{id}/download/{nr}/{path}`, the dashboard's links to the former).

A download never reads outside the product, by the rule of circus/nix/products.py that the
runner's scan follows too: the product must lie inside one of the build's outputs, whose
root is the output's store path itself (an output that is a symlink offers nothing), and
every symlink on the way is followed only while it stays inside. A `path` inside a
directory product may not be absolute or contain `..` (InvalidValue: 400); a file it names
that leaves the product, or is not a regular file, is NotFound (and logged).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import asyncpg
import structlog

from circus.domain.errors import InvalidValue, NotFound
from circus.nix.products import Escape, is_regular, locate, resolve_inside
from circus.store import builds

log = structlog.get_logger(__name__)


async def product_file(pool: asyncpg.Pool, build_id: int, product_nr: int,
                       requested: str | None) -> Path:
    """The real file to send for product `product_nr` of the build (`requested` picks
    one inside a directory product)."""
    row = await builds.product(pool, build_id, product_nr)
    if row is None:
        raise NotFound(f"product {product_nr} of build {build_id} not found")
    outputs = [r["path"] for r in (await builds.outputs(pool, [build_id]))[build_id]]
    return resolve(row["path"], outputs, row["default_path"], requested)


def resolve(product_path: str, outputs: list[str], default_path: str,
            requested: str | None) -> Path:
    """The file inside the located product; see the module docstring."""
    try:
        product = locate(product_path, outputs)
        if product is None:
            raise NotFound("product file (garbage collected?) not found")
        target = _target(product, default_path, requested)
    except Escape as exc:
        log.warning("product download refused", product=product_path, path=requested,
                    reason=str(exc))
        raise NotFound("the file in the product (it leaves the build's outputs) "
                       "not found") from None
    if target is None or not is_regular(target):
        raise NotFound(f"{requested or default_path or 'the file'!r} in the product "
                       "(missing or not a file) not found")
    return target


def _relative(raw: str) -> PurePosixPath:
    if "\x00" in raw:
        raise InvalidValue("path", "must not contain NUL characters")
    rel = PurePosixPath(raw)
    if rel.is_absolute():
        raise InvalidValue("path", "must be relative to the product")
    if ".." in rel.parts:
        raise InvalidValue("path", "must not contain '..'")
    return rel


def _target(product: Path, default_path: str, requested: str | None) -> Path | None:
    """The file to send inside a located product; raises Escape when it would leave it."""
    if not product.is_dir():
        if requested:
            raise InvalidValue("path", "the product is a single file")
        return product
    if requested:
        return resolve_inside(product, _relative(requested))
    if not default_path:
        raise InvalidValue("path", "is required for a directory product")
    return resolve_inside(product, default_path)
