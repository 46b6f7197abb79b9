"""Circus's own evaluator: `circus/nix/walk.nix` applied to the jobs with `nix eval`
(flakes) or `nix-instantiate --eval` (legacy files); circus.evaluator.workers runs it.

A `throw`/`assert` in a job is caught by the walker; that job is then evaluated alone,
strictly, to keep Nix's message (`explain`).
"""

from __future__ import annotations

import asyncio

import attrs
import structlog

from circus.app.paths import NIX_DIR
from circus.domain.errors import CircusError
from circus.evaluator.jobs import CAUGHT, JobRecord
from circus.proc import child
from circus.proc.nix import legacy, nix

log = structlog.get_logger(__name__)

WALKER = (NIX_DIR / "walk.nix").read_text()
# Failing jobs explained one by one cost a Nix start each; beyond this they keep CAUGHT.
MAX_EXPLAINED = 100
PARALLEL = 2
MAX_MESSAGE = 8000


class EvalError(CircusError):
    """The evaluation as a whole failed; the message is Nix's."""


@attrs.frozen
class Target:
    """What to evaluate, and the Nix flags every call carries."""

    # Flake jobsets: `git+file://…?ref=…&rev=…` and the attribute (`hydraJobs`).
    flake_url: str | None = None
    attr: str = "hydraJobs"
    # Legacy jobsets: the file inside the checkout, and its arguments.
    file: str | None = None
    args: tuple[str, ...] = ()
    search_path: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


def nix_string(text: str) -> str:
    escaped = (text.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
               .replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t"))
    return f'"{escaped}"'


def nix_list(items: list[str]) -> str:
    return f"[ {' '.join(nix_string(n) for n in items)} ]"


def walker_argv(target: Target, only: list[str], *, strict: bool = False,
                tag: str | None = None, shard: int = 0,
                shards: int = 1, after: list[str] | None = None) -> list[str]:
    """The walk of `target` (walk.nix says what each option does)."""
    stream = (f"tag = {nix_string(tag)}; shard = {shard}; shards = {shards}; "
              f"after = {'null' if after is None else nix_list(after)}; " if tag else "")
    opts = (f"{{ only = {nix_list(only)}; strict = {str(strict).lower()}; "
            f"{stream}}}")
    walker = f"({WALKER}) {opts}"
    if target.flake_url is not None:
        return nix("eval", "--json", f"{target.flake_url}#{target.attr}", "--apply", walker,
                   *target.options)
    call = (f"let f = import (/. + {nix_string(target.file or '')}); "
            "fa = builtins.functionArgs f; in if builtins.isFunction f "
            "then f (if fa == { } then args else builtins.intersectAttrs fa args) else f")
    search = [flag for path in target.search_path for flag in ("-I", path)]
    return legacy("nix-instantiate", "--eval", "--strict", "--json", "--read-write-mode",
                  "-E", f"{{ ... }}@args: {walker} ({call})", *target.args, *search,
                  *target.options)


def nix_message(stderr: str) -> str:
    """Nix's error without its warnings and the --show-trace hint."""
    lines = [line for line in stderr.splitlines()
             if not line.startswith("warning:") and "--show-trace" not in line]
    text = "\n".join(lines).strip() or "nix failed without a message"
    return text[:MAX_MESSAGE]


async def explain(target: Target, records: list[JobRecord]) -> list[JobRecord]:
    """Replace the walker's placeholder with Nix's message, for the first few."""
    limit = asyncio.Semaphore(PARALLEL)
    caught = [i for i, r in enumerate(records) if r.error == CAUGHT][:MAX_EXPLAINED]

    async def one(index: int) -> None:
        record = records[index]
        async with limit:
            done = await child.run(walker_argv(target, record.attr_path, strict=True))
        if not done.ok:
            records[index] = attrs.evolve(record, error=nix_message(done.stderr))

    await asyncio.gather(*(one(i) for i in caught))
    return records
