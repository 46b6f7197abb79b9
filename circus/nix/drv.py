"""Reading input derivations straight from `.drv` files (ATerm), and which jobs of an
evaluation each job's derivation closure reaches first.

Reading the files ourselves is far faster than one `nix-store -q` per job: a closure is
walked once and shared by every job that contains it.
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable
from pathlib import Path

# An inputDrvs entry: ("/nix/store/…drv",["out"]). Inside an escaped env string the quote
# would be preceded by a backslash, so this matches the structure only.
_INPUT_DRV = re.compile(rb'\("(/nix/store/[^"\\]+\.drv)",\[')


def input_drvs(drv_path: str) -> list[str]:
    """The derivations `drv_path` takes inputs from (empty when the file is missing)."""
    try:
        data = Path(drv_path).read_bytes()
    except OSError:
        return []
    return [m.decode() for m in _INPUT_DRV.findall(data)]


def nearest_jobs(job_drvs: Iterable[str]) -> dict[str, frozenset[str]]:
    """For each job derivation, the job derivations in its closure that no other job of
    that closure leads to. Their own dependencies follow transitively, so this is the
    whole closure's ordering with far fewer rows: a nixpkgs job has hundreds of jobs in
    its closure but a handful nearest."""
    jobs = set(job_drvs)
    return Closures().nearest(jobs, jobs)


class Closures:
    """The derivation graph read so far, each `.drv` file once: an evaluation whose jobs
    arrive in batches asks for the nearest jobs of each batch against the jobs known."""

    def __init__(self) -> None:
        self._inputs: dict[str, list[str]] = {}

    def known(self, drv_path: str) -> bool:
        """Whether `drv_path` was met in a closure walked before."""
        return drv_path in self._inputs

    def inputs(self, drv_path: str) -> list[str]:
        found = self._inputs.get(drv_path)
        if found is None:
            found = self._inputs[drv_path] = input_drvs(drv_path)
        return found

    def nearest(self, roots: Iterable[str],
                jobs: Container[str]) -> dict[str, frozenset[str]]:
        """`nearest_jobs` of `roots`, where `jobs` are the job derivations."""
        below: dict[str, frozenset[str]] = {}
        roots = list(roots)
        for root in roots:
            self._fill(root, jobs, below)
        return {d: below[d] for d in roots}

    def _fill(self, root: str, jobs: Container[str],
              below: dict[str, frozenset[str]]) -> None:
        """Post-order walk without recursion: closures of nixpkgs are deeper than the
        stack."""
        if root in below:
            return
        stack: list[tuple[str, list[str] | None]] = [(root, None)]
        while stack:
            drv, inputs = stack.pop()
            if drv in below:
                continue
            if inputs is None:
                inputs = self.inputs(drv)
                stack.append((drv, inputs))
                # A job input ends the walk there: the union needs only what is below
                # the others (re-walking earlier jobs would make each batch cost them all).
                stack.extend((i, None) for i in inputs if i not in below and i not in jobs)
                continue
            below[drv] = _union(inputs, jobs, below)


def _union(inputs: list[str], jobs: Container[str],
           below: dict[str, frozenset[str]]) -> frozenset[str]:
    """The nearest jobs through `inputs`: a job input stops the walk there."""
    direct = [i for i in inputs if i in jobs]
    sets = [below[i] for i in inputs if i not in jobs]
    if not direct and len(sets) == 1:
        return sets[0]  # share the child's set: most derivations add no job of their own
    out: set[str] = set(direct)
    for s in sets:
        out.update(s)
    return frozenset(out)
