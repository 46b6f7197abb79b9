"""What a build's outputs say about themselves, in Hydra's `nix-support/` conventions:
`hydra-build-products` (files to offer for download), `hydra-metrics` (numbers to
chart) and `failed` (the build ran but reports failure: "failed with output").

The build's author wrote every byte of its outputs: any file in them may be a symlink to
anywhere on the host, and `hydra-build-products` may name any path. So nothing here (nor
the server's product download, which uses the same functions) follows a path blindly:
the root of an output is its store path `/nix/store/<hash>-<name>` itself, never what it
resolves to; `resolve_inside` walks a path from there one component at a time, following
a symlink only while its target stays inside; `open_regular` opens regular files only, so
a FIFO or a device is never read.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import attrs
import structlog

from circus.nix.pathinfo import STORE_DIR

log = structlog.get_logger(__name__)

# Hydra's own pattern: type, subtype, a path (quoted when it has spaces), an optional default.
_PRODUCT = re.compile(r'^([\w-]+)\s+([\w-]+)\s+("[^"]*"|\S+)(?:\s+(\S+))?\s*$')
_METRIC = re.compile(r"^(\S+)\s+(\S+)(?:\s+(\S+))?\s*$")
# Linux's MAXSYMLINKS: more links than this in one path is a loop.
_MAX_LINKS = 40
# A nix-support file is a few lines; a bigger one is cut here rather than held in memory.
_SUPPORT_LIMIT = 1 << 20


class Escape(Exception):
    """A path that would leave the output (or product) it must stay inside."""


def _mode(path: Path) -> int | None:
    """lstat's mode, or None when the path does not exist (or cannot be a path)."""
    try:
        return os.lstat(path).st_mode
    except (OSError, ValueError):
        return None


def _within(path: PurePosixPath, root: PurePosixPath | Path) -> bool:
    return path == root or path.is_relative_to(root)


def output_root(path: str) -> Path | None:
    """`path` as the root of an output when it is a store path, else None."""
    root = Path(PurePosixPath(path))
    if str(root.parent) != STORE_DIR or root.name in ("", ".", ".."):
        return None
    return root


def resolve_inside(root: Path, rel: str | PurePosixPath) -> Path | None:
    """Where `root/rel` really is, with no symlink left below `root`; None if it does not
    exist. Raises Escape when `root` is a symlink, or a `..` or a symlink's target would
    leave `root` (checked at each step, as the kernel would resolve it)."""
    if stat.S_ISLNK(_mode(root) or 0):
        raise Escape(f"{root} is a symlink")
    if PurePosixPath(rel).is_absolute():
        raise Escape(f"{rel} is not relative to {root}")
    pending, current, links = list(reversed(PurePosixPath(rel).parts)), root, 0
    while pending:
        part = pending.pop()
        if part == "..":
            if current == root:
                raise Escape(f"'..' leaves {root}")
            current = current.parent
            continue
        candidate = current / part
        mode = _mode(candidate)
        if mode is None:
            return None
        if not stat.S_ISLNK(mode):
            current = candidate
            continue
        links += 1
        if links > _MAX_LINKS:
            raise Escape(f"too many symlinks below {root}")
        target = PurePosixPath(os.readlink(candidate))
        if target.is_absolute():
            if not _within(target, root):
                raise Escape(f"{candidate} points to {target}, outside {root}")
            current, target = root, target.relative_to(root)
        pending.extend(reversed(target.parts))
    return current


def locate(path: str, outputs: Iterable[str]) -> Path | None:
    """Where the product named `path` really is (None if missing). Raises Escape unless
    it lies inside one of `outputs` by resolve_inside's rule."""
    wanted = PurePosixPath(path)
    for root in filter(None, map(output_root, outputs)):
        if wanted.is_absolute() and _within(wanted, root):
            return resolve_inside(root, wanted.relative_to(root))
    raise Escape(f"{path} is not inside the build's outputs")


def is_regular(path: Path) -> bool:
    return stat.S_ISREG(_mode(path) or 0)


def open_regular(path: Path) -> BinaryIO | None:
    """`path` opened for reading if it is a regular file, else None. O_NOFOLLOW: never
    through a symlink; O_NONBLOCK: opening a FIFO must not wait for a writer."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


@attrs.define
class Product:
    type: str
    subtype: str
    name: str
    path: str
    default_path: str = ""
    file_size: int | None = None
    sha256: str | None = None


@attrs.define
class Metric:
    name: str
    value: float
    unit: str = ""


def parse_products(text: str) -> list[Product]:
    """Lines `type subtype path [defaultPath]`; malformed lines are skipped (and logged).
    Parsing only: nothing is looked up, so the paths are still the build's claims."""
    found = []
    for line in text.splitlines():
        if not line.strip():
            continue
        match = _PRODUCT.match(line.strip())
        if match is None:
            log.warning("ignoring malformed hydra-build-products line", line=line)
            continue
        kind, subtype, raw_path, default = match.groups()
        path = raw_path.strip('"')
        found.append(Product(kind, subtype, PurePosixPath(path).name, path, default or ""))
    return found


def parse_metrics(text: str) -> list[Metric]:
    """Lines `name value [unit]`; a value that is not a finite number is skipped."""
    found: dict[str, Metric] = {}
    for line in text.splitlines():
        match = _METRIC.match(line.strip())
        if match is None:
            continue
        name, raw, unit = match.groups()
        try:
            value = float(raw)
        except ValueError:
            log.warning("ignoring hydra-metrics line with a non-numeric value", line=line)
            continue
        if math.isfinite(value):
            found[name] = Metric(name, value, unit or "")
    return list(found.values())


def _file_facts(path: Path) -> tuple[int | None, str | None]:
    """Size and sha256 of a regular file (a directory product has neither)."""
    handle = open_regular(path)
    if handle is None:
        return None, None
    digest, size = hashlib.sha256(), 0
    with handle:
        while block := handle.read(1 << 20):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def _checked(product: Product, outputs: Iterable[str]) -> Product | None:
    """The product with its facts if it lies inside the outputs; None (logged) if not."""
    try:
        found = locate(product.path, outputs)
    except Escape as exc:
        log.warning("ignoring a product outside the build's outputs", path=product.path,
                    reason=str(exc))
        return None
    if found is None:
        log.warning("ignoring a product that does not exist", path=product.path)
        return None
    size, sha = _file_facts(found)
    return attrs.evolve(product, file_size=size, sha256=sha)


def _support(output: str, name: str) -> Path | None:
    """`nix-support/<name>` of an output, if it is there and inside the output."""
    root = output_root(output)
    if root is None:
        return None
    try:
        return resolve_inside(root, f"nix-support/{name}")
    except Escape as exc:
        log.warning("ignoring nix-support file outside its output", output=output,
                    file=name, reason=str(exc))
        return None


def _support_text(output: str, name: str) -> str | None:
    found = _support(output, name)
    handle = None if found is None else open_regular(found)
    if handle is None:
        return None
    with handle:
        data = handle.read(_SUPPORT_LIMIT + 1)
    if len(data) > _SUPPORT_LIMIT:
        log.warning("nix-support file too large; reading its start only", output=output,
                    file=name, limit=_SUPPORT_LIMIT)
    return data[:_SUPPORT_LIMIT].decode(errors="replace")


def _is_directory_output(path: str) -> bool:
    # lstat: an output that is a symlink (even to a directory) is not a directory product.
    root = output_root(path)
    return root is not None and stat.S_ISDIR(_mode(root) or 0)


def products_of(outputs: dict[str, str]) -> list[Product]:
    """Declared products of all outputs that lie inside them, else one `nix-build`
    product per output that is a directory."""
    declared: list[Product] = []
    for path in outputs.values():
        text = _support_text(path, "hydra-build-products")
        if text is not None:
            declared.extend(parse_products(text))
    if declared:
        checked = (_checked(product, outputs.values()) for product in declared)
        return [product for product in checked if product is not None]
    return [
        Product("nix-build", "" if name == "out" else name, _name_without_hash(path), path)
        for name, path in sorted(outputs.items())
        if _is_directory_output(path)
    ]


def _name_without_hash(path: str) -> str:
    """`dep` for /nix/store/<hash>-dep, as Hydra names an output's default product."""
    return PurePosixPath(path).name.split("-", 1)[-1]


def metrics_of(outputs: dict[str, str]) -> list[Metric]:
    found: dict[str, Metric] = {}
    for path in outputs.values():
        text = _support_text(path, "hydra-metrics")
        for metric in parse_metrics(text or ""):
            found[metric.name] = metric
    return list(found.values())


def failed_with_output(outputs: dict[str, str]) -> bool:
    return any(_support(path, "failed") is not None for path in outputs.values())
