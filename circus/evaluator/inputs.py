"""Jobset inputs: what an evaluation was made from, its hash, and the Nix arguments
they become for a legacy (non-flake) jobset."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

import attrs

from circus.evaluator.nixeval import nix_string
from circus.services import sources


@attrs.frozen
class EvalInput:
    """One row of `evaluation_inputs`."""

    name: str
    type: str
    uri: str = ""
    revision: str = ""
    value: str = ""


@attrs.frozen
class JobsetInput:
    """One row of `jobset_inputs`; `path` is set once a git input is checked out."""

    name: str
    type: str
    value: str
    path: str | None = None
    revision: str = ""

    @property
    def git_url(self) -> str:
        return self.value.split()[0] if self.value.split() else ""

    @property
    def git_branch(self) -> str | None:
        parts = self.value.split()
        return parts[1] if len(parts) > 1 else None


def inputs_hash(commit: str, expression: str, flake: bool,
                inputs: Iterable[JobsetInput]) -> str:
    """Equal hashes mean an evaluation would see exactly the same inputs."""
    data = {
        "commit": commit,
        "expression": expression,
        "flake": flake,
        "inputs": sorted([i.name, i.type, i.value, i.revision] for i in inputs),
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def nix_args(inputs: Iterable[JobsetInput]) -> list[str]:
    """`--argstr`/`--arg` flags for a legacy expression."""
    args: list[str] = []
    for item in inputs:
        if item.type == "string":
            args += ["--argstr", item.name, item.value]
        elif item.type == "boolean":
            truth = item.value.strip().lower() in ("1", "true", "yes", "on")
            args += ["--arg", item.name, "true" if truth else "false"]
        elif item.type == "nix":
            args += ["--arg", item.name, item.value]
        else:  # path, or a git input's checkout
            args += ["--arg", item.name, f"/. + {nix_string(item.path or item.value)}"]
    return args


def allowed_paths(inputs: Iterable[JobsetInput]) -> list[str]:
    """Paths restricted evaluation must let the expression read."""
    return [item.path or item.value for item in inputs if item.type in ("path", "git")]


def check_paths(inputs: Iterable[JobsetInput], policy: sources.Policy) -> None:
    """Every path input inside `evaluator.allowed_path_inputs`, checked right before it
    becomes `-I name=path`, a path restricted evaluation lets the expression read."""
    for item in inputs:
        if item.type == "path":
            sources.check_path_input(item.value, policy, f"inputs.{item.name}")


def recorded(inputs: Iterable[JobsetInput]) -> list[EvalInput]:
    """The rows of `evaluation_inputs`, which anyone may read: credentials masked."""
    out = []
    for item in inputs:
        if item.type == "git":
            out.append(EvalInput(item.name, "git", uri=sources.redact(item.git_url),
                                 revision=item.revision, value=item.git_branch or ""))
        else:
            out.append(EvalInput(item.name, item.type, value=sources.redact(item.value)))
    return out
