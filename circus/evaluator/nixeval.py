"""Circus's own evaluator: `circus/nix/walk.nix` applied to the jobs with `nix eval`
(flakes) or `nix-instantiate --eval` (legacy files), one process per walk.

A `throw`/`assert` in a job is caught by the walker; that job is then evaluated alone,
strictly, to keep Nix's message. An error tryEval cannot catch kills the whole walk: we
then walk each branch separately, splitting down to the jobs, so the good ones still build.
"""

from __future__ import annotations

import asyncio
import json

import attrs
import structlog

from circus.app.paths import NIX_DIR
from circus.domain.errors import CircusError
from circus.evaluator.jobs import CAUGHT, JobRecord, from_walker
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


def walker_argv(target: Target, only: list[str], *, strict: bool = False,
                names: bool = False) -> list[str]:
    opts = (f"{{ only = [ {' '.join(nix_string(n) for n in only)} ]; "
            f"strict = {str(strict).lower()}; names = {str(names).lower()}; }}")
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


async def evaluate(target: Target) -> list[JobRecord]:
    """Every job of `target`; failing jobs come back with their error."""
    limit = asyncio.Semaphore(PARALLEL)
    done = await child.run(walker_argv(target, []))
    if done.ok:
        records = [from_walker(item) for item in json.loads(done.stdout)]
    else:
        message = nix_message(done.stderr)
        log.info("the walk died; evaluating branch by branch", error=message.splitlines()[0])
        records = await _split(target, [], message, limit)
    return await _explain(target, records, limit)


async def _split(target: Target, path: list[str], message: str,
                 limit: asyncio.Semaphore) -> list[JobRecord]:
    """Walk each child of `path` apart; a leaf that still fails keeps `message`."""
    async with limit:
        listed = await child.run(walker_argv(target, path, names=True))
    children = json.loads(listed.stdout) if listed.ok else None
    if children is None:
        if not path:
            raise EvalError(message)
        return [JobRecord(attr=".".join(path), error=message, attr_path=path)]
    groups = await asyncio.gather(*(_subtree(target, [*path, c], limit) for c in children))
    return [record for group in groups for record in group]


async def _subtree(target: Target, path: list[str],
                   limit: asyncio.Semaphore) -> list[JobRecord]:
    async with limit:
        done = await child.run(walker_argv(target, path))
    if done.ok:
        return [from_walker(item) for item in json.loads(done.stdout)]
    return await _split(target, path, nix_message(done.stderr), limit)


async def _explain(target: Target, records: list[JobRecord],
                   limit: asyncio.Semaphore) -> list[JobRecord]:
    """Replace the walker's placeholder with Nix's message, for the first few."""
    caught = [i for i, r in enumerate(records) if r.error == CAUGHT][:MAX_EXPLAINED]

    async def explain(index: int) -> None:
        record = records[index]
        async with limit:
            done = await child.run(walker_argv(target, record.attr_path, strict=True))
        if not done.ok:
            records[index] = attrs.evolve(record, error=nix_message(done.stderr))

    await asyncio.gather(*(explain(i) for i in caught))
    return records
