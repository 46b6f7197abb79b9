"""Running git and nix as child processes that die with the evaluation.

A child gets its own process group so that a timeout or a cancelled evaluation kills it
and whatever it started (nix spawns helpers); nothing outlives the evaluation.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence

import attrs


class ProcTimeout(Exception):
    """The child ran past its time limit and was killed."""

    def __init__(self, argv: Sequence[str], seconds: float) -> None:
        super().__init__(f"{argv[0]} timed out after {seconds:g} s")
        self.seconds = seconds


@attrs.frozen
class Completed:
    returncode: int
    stdout: bytes
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


async def run(argv: Sequence[str], *, limit: float | None = None,
              cwd: str | None = None, env: Mapping[str, str] | None = None) -> Completed:
    """Run `argv` to completion; kill its process group on timeout or cancellation.
    `env`: the child's whole environment (None: ours)."""
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True,
        env=None if env is None else dict(env),
    )
    try:
        async with asyncio.timeout(limit):
            out, err = await proc.communicate()
    except TimeoutError:
        raise ProcTimeout(argv, limit or 0) from None
    finally:
        if proc.returncode is None:
            _kill(proc)
            with contextlib.suppress(ProcessLookupError):
                await asyncio.shield(proc.wait())
    return Completed(proc.returncode or 0, out, err.decode(errors="replace"))


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
