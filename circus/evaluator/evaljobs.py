"""`nix-eval-jobs`, used instead of our walker when it is on PATH: it evaluates in
parallel workers and prints one JSON record per job, the same records we produce."""

from __future__ import annotations

import json
import os
import shutil

from circus.evaluator.jobs import JobRecord, from_eval_jobs
from circus.evaluator.nixeval import EvalError, Target, nix_message
from circus.proc import child
from circus.proc.nix import FEATURES


def available() -> bool:
    return shutil.which("nix-eval-jobs") is not None


def argv(target: Target) -> list[str]:
    common = ["--workers", str(max(1, (os.cpu_count() or 2) - 1)), "--meta",
              "--constituents", "--option", FEATURES[0].removeprefix("--"), FEATURES[1],
              *target.options]
    if target.flake_url is not None:
        return ["nix-eval-jobs", *common, "--flake", f"{target.flake_url}#{target.attr}"]
    search = [flag for path in target.search_path for flag in ("-I", path)]
    return ["nix-eval-jobs", *common, *target.args, *search, target.file or ""]


async def evaluate(target: Target) -> list[JobRecord]:
    done = await child.run(argv(target))
    records = [from_eval_jobs(json.loads(line)) for line in done.stdout.splitlines()
               if line.strip()]
    if not done.ok and not records:
        raise EvalError(nix_message(done.stderr))
    return records
