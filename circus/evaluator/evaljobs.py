"""`nix-eval-jobs`, used instead of our walker when it is on PATH: it evaluates in
parallel workers, restarts a worker past its memory limit, and prints one JSON line per
job as it is done (the same records our walker streams). Nix 2.8 here is too old for it,
so this path is tested with a recorded sample of its output (tests/unit)."""

from __future__ import annotations

import json
import shutil

from circus.evaluator.jobs import from_eval_jobs
from circus.evaluator.nixeval import EvalError, Target, nix_message
from circus.evaluator.workers import Emit, Limits
from circus.proc import child
from circus.proc.nix import FEATURES


def available() -> bool:
    return shutil.which("nix-eval-jobs") is not None


def argv(target: Target, limits: Limits) -> list[str]:
    common = ["--workers", str(limits.workers), "--max-memory-size", str(limits.max_memory_mb),
              "--meta", "--constituents",
              "--option", FEATURES[0].removeprefix("--"), FEATURES[1], *target.options]
    if target.flake_url is not None:
        return ["nix-eval-jobs", *common, "--flake", f"{target.flake_url}#{target.attr}"]
    search = [flag for path in target.search_path for flag in ("-I", path)]
    return ["nix-eval-jobs", *common, *target.args, *search, target.file or ""]


async def stream(target: Target, limits: Limits, emit: Emit,
                 program: list[str] | None = None) -> None:
    """Each job to `emit` as nix-eval-jobs prints it; EvalError when it failed before
    printing any. `program` replaces the argv (a recorded sample, in tests)."""
    printed = 0

    def line(text: str) -> None:
        nonlocal printed
        if text.strip():
            emit(from_eval_jobs(json.loads(text)))
            printed += 1

    done = await child.run(program or argv(target, limits), name="nix-eval-jobs",
                           on_stdout_line=line)
    if not done.ok and not printed:
        raise EvalError(nix_message(done.stderr))
