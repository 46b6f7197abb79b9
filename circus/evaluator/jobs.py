"""The per-job record both evaluators (ours and nix-eval-jobs) produce."""

from __future__ import annotations

from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

# What our walker puts in a job it caught failing; replaced by nix's message when we can.
CAUGHT = "evaluation failed (throw or assert)"


@attrs.frozen
class JobMeta:
    description: str = ""
    license: str = ""
    homepage: str = ""
    maintainers: str = ""
    timeout: int | None = None
    max_silent: int | None = None


@attrs.frozen
class JobRecord:
    attr: str
    name: str = ""
    system: str = ""
    # The derivation's requiredSystemFeatures: only a machine with them all builds it.
    required_features: list[str] = attrs.Factory(list)
    drv_path: str = ""
    outputs: dict[str, str] = attrs.Factory(dict)
    meta: JobMeta = attrs.Factory(JobMeta)
    is_aggregate: bool = False
    # Derivation paths or names of other jobs of the same evaluation.
    constituents: list[str] = attrs.Factory(list)
    error: str | None = None
    # The attribute path as a list, for re-evaluating this job alone.
    attr_path: list[str] = attrs.Factory(list)


def _converter() -> cattrs.Converter:
    conv = cattrs.Converter()
    conv.register_structure_hook(JobMeta, make_dict_structure_fn(
        JobMeta, conv, max_silent=override(rename="maxSilent")))
    conv.register_structure_hook(JobRecord, make_dict_structure_fn(
        JobRecord, conv, drv_path=override(rename="drvPath"),
        required_features=override(rename="requiredSystemFeatures"),
        is_aggregate=override(rename="isAggregate"), attr_path=override(rename="attrPath")))
    return conv


converter = _converter()


def from_walker(item: dict[str, Any]) -> JobRecord:
    if item.get("error") is True:
        item = {**item, "error": CAUGHT}
    return converter.structure(item, JobRecord)


def from_eval_jobs(item: dict[str, Any]) -> JobRecord:
    """A nix-eval-jobs line: meta values are raw Nix values, not our strings."""
    meta = item.get("meta") or {}
    # With --constituents: derivations in "constituents", job names in "namedConstituents".
    constituents = [*(item.get("constituents") or []), *(item.get("namedConstituents") or [])]
    return JobRecord(
        attr=item["attr"],
        name=item.get("name", ""),
        system=item.get("system", ""),
        drv_path=item.get("drvPath", ""),
        outputs={k: v for k, v in (item.get("outputs") or {}).items() if v},
        meta=JobMeta(
            description=meta_text(meta.get("description")),
            license=meta_text(meta.get("license")),
            homepage=meta_text(meta.get("homepage")),
            maintainers=meta_text(meta.get("maintainers")),
            timeout=_int(meta.get("timeout")),
            max_silent=_int(meta.get("maxSilent")),
        ),
        is_aggregate="constituents" in item or "namedConstituents" in item,
        constituents=list(constituents),
        error=item.get("error"),
        attr_path=list(item.get("attrPath") or []),
    )


def meta_text(value: Any) -> str:
    """The same flattening walk.nix does: lists joined, attrsets by their best name."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ", ".join(t for t in (meta_text(v) for v in value) if t)
    if isinstance(value, dict):
        for key in ("spdxId", "shortName", "fullName", "email", "github", "name"):
            if isinstance(text := value.get(key), str):
                return text
        return ""
    return str(value)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None

