"""What a build's outputs say about themselves, in Hydra's `nix-support/` conventions:
`hydra-build-products` (files to offer for download), `hydra-metrics` (numbers to
chart) and `failed` (the build ran but reports failure: "failed with output").
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

import attrs
import structlog

log = structlog.get_logger(__name__)

# Hydra's own pattern: type, subtype, a path (quoted when it has spaces), an optional default.
_PRODUCT = re.compile(r'^([\w-]+)\s+([\w-]+)\s+("[^"]*"|\S+)(?:\s+(\S+))?\s*$')
_METRIC = re.compile(r"^(\S+)\s+(\S+)(?:\s+(\S+))?\s*$")


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


def _file_facts(path: Path) -> tuple[int | None, str | None]:
    if not path.is_file():
        return None, None
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return path.stat().st_size, digest.hexdigest()


def parse_products(text: str) -> list[Product]:
    """Lines `type subtype path [defaultPath]`; malformed lines are skipped (and logged)."""
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
        size, sha = _file_facts(Path(path))
        found.append(Product(kind, subtype, Path(path).name, path, default or "", size, sha))
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


def _support(output: str, name: str) -> Path:
    return Path(output) / "nix-support" / name


def products_of(outputs: dict[str, str]) -> list[Product]:
    """Declared products of all outputs, else one `nix-build` product per directory output."""
    declared: list[Product] = []
    for path in outputs.values():
        spec = _support(path, "hydra-build-products")
        if spec.is_file():
            declared.extend(parse_products(spec.read_text(errors="replace")))
    if declared:
        return declared
    return [
        Product("nix-build", "" if name == "out" else name, Path(path).name, path)
        for name, path in sorted(outputs.items())
        if Path(path).is_dir()
    ]


def metrics_of(outputs: dict[str, str]) -> list[Metric]:
    found: dict[str, Metric] = {}
    for path in outputs.values():
        spec = _support(path, "hydra-metrics")
        if spec.is_file():
            for metric in parse_metrics(spec.read_text(errors="replace")):
                found[metric.name] = metric
    return list(found.values())


def failed_with_output(outputs: dict[str, str]) -> bool:
    return any(_support(path, "failed").exists() for path in outputs.values())
