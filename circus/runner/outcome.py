"""What the runner knows about a build: the claimed row, and how its build ended."""

from __future__ import annotations

from typing import Any

import attrs

from circus.nix.build import Step
from circus.nix.products import Metric, Product
from circus.runner.remote import Machine


@attrs.define
class ClaimedBuild:
    id: int
    job: str
    drv_path: str
    system: str
    jobset: str
    project: str
    timeout: int | None = None
    max_silent: int | None = None
    is_aggregate: bool = False
    attempts: int = 1
    # The build whose failure of the same derivation the failed-paths cache remembers.
    failed_in: int | None = None
    # The remote builder it runs on (None: this runner's own Nix).
    machine: Machine | None = None

    @classmethod
    def from_row(cls, row: Any, machine: Machine | None = None) -> ClaimedBuild:
        fields = {a.name for a in attrs.fields(cls)} - {"machine"}
        return cls(**{k: row[k] for k in fields}, machine=machine)


@attrs.define
class Outcome:
    status: int
    error: str | None = None
    outputs: dict[str, str] = attrs.Factory(dict)
    steps: list[Step] = attrs.Factory(list)
    products: list[Product] = attrs.Factory(list)
    metrics: list[Metric] = attrs.Factory(list)
    # The machine failed, not the build: it is retried, and ends as
    # BuildStatus.ABORTED at most.
    infrastructure: bool = False
