"""The one way Circus starts a child process, waits for it and stops it.

Every child runs in its own process group (a new session), so stopping it reaches what it
started too: Nix's helpers and builders, git's transports. It is stopped as a group when
its time limit passes or the task awaiting it is cancelled: SIGTERM first, so Nix can
stop its builders and remove its temporary roots, then SIGKILL once `KILL_GRACE` is over
for whatever is left of the group. Its output is read whole, or stderr line by line for a
caller that streams it (a build log).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import attrs
import structlog

from circus.domain.errors import CircusError

log = structlog.get_logger(__name__)

LineSink = Callable[[str], None]

# How long a child's group gets between SIGTERM and SIGKILL.
KILL_GRACE = 0.7
# The longest line a streaming reader accepts (Nix's internal-json lines can be long).
LINE_LIMIT = 1 << 24
# How much of stderr an error message quotes, and how many streamed lines are kept for it.
TAIL_CHARS = 2000
TAIL_LINES = 20


def _tail(stderr: str) -> str:
    text = stderr.strip()
    return text if len(text) <= TAIL_CHARS else "…" + text[-TAIL_CHARS:]


class ChildError(CircusError):
    """A child process failed: it exited non-zero when the caller checked its status.
    The message names the command and quotes the end of its stderr."""

    def __init__(self, command: str, returncode: int, stderr: str) -> None:
        tail = _tail(stderr)
        super().__init__(f"{command} exited with status {returncode}"
                         + (f": {tail}" if tail else ""))
        self.command = command
        self.returncode = returncode
        self.stderr = stderr


class ChildTimeout(ChildError):
    """The child ran past its time limit; its process group was stopped."""

    def __init__(self, command: str, seconds: float, stderr: str = "") -> None:
        CircusError.__init__(self, f"{command} timed out after {seconds:g} s")
        self.command = command
        self.returncode = -signal.SIGKILL
        self.stderr = stderr
        self.seconds = seconds


@attrs.frozen
class Result:
    command: str
    returncode: int
    stdout: bytes
    # Whole, or the last TAIL_LINES lines when the caller streamed it.
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    def check(self) -> Result:
        if not self.ok:
            raise ChildError(self.command, self.returncode, self.stderr)
        return self


def describe(argv: Sequence[str]) -> str:
    """The command's name for messages: the program alone (its arguments may be huge, as
    the evaluator's walker, or hold a URL's credentials)."""
    return os.path.basename(argv[0]) if argv else "?"


async def run(argv: Sequence[str], *, name: str | None = None, limit: float | None = None,
              cwd: str | Path | None = None, env: Mapping[str, str] | None = None,
              stdout: bool = True, on_stderr_line: LineSink | None = None,
              on_stdout_line: LineSink | None = None,
              on_start: Callable[[int], None] | None = None, check: bool = False) -> Result:
    """Run `argv` to completion with stdin closed, reading its output.

    `env` is the child's whole environment (None: ours, NIX_CONFIG included);
    `on_stderr_line` and `on_stdout_line` receive the output line by line as it arrives
    (a streamed stdout is not returned); `on_start` the child's
    pid once it runs (to watch its memory); `stdout=False` discards
    stdout; `check` raises ChildError on a non-zero exit. Past `limit` seconds the group
    is stopped and ChildTimeout raised; cancelling the awaiting task stops it as well.
    """
    command = name or describe(argv)
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, env=None if env is None else dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE if stdout else asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, start_new_session=True, limit=LINE_LIMIT)
    if on_start is not None:
        on_start(proc.pid)
    scope = asyncio.timeout(limit)
    try:
        async with scope:
            out, err = await _read(proc, on_stderr_line, on_stdout_line)
            returncode = await proc.wait()
    except BaseException as exc:
        await stop(proc)
        if isinstance(exc, TimeoutError) and scope.expired():
            raise ChildTimeout(command, limit or 0) from None
        raise
    result = Result(command, returncode, out, err)
    return result.check() if check else result


async def _read(proc: asyncio.subprocess.Process, on_line: LineSink | None,
                on_stdout_line: LineSink | None) -> tuple[bytes, str]:
    assert proc.stderr is not None
    # gather, not a TaskGroup: a reader's error keeps its own type (no ExceptionGroup);
    # the other reader ends at EOF once the caller has stopped the child.
    out = (_nothing() if proc.stdout is None else proc.stdout.read() if on_stdout_line is None
           else _streamed(proc.stdout, on_stdout_line))
    return await asyncio.gather(out, _whole(proc.stderr) if on_line is None
                                else _lines(proc.stderr, on_line))


async def _streamed(stream: asyncio.StreamReader, on_line: LineSink) -> bytes:
    await _lines(stream, on_line)
    return b""


async def _nothing() -> bytes:
    return b""


async def _whole(stream: asyncio.StreamReader) -> str:
    return (await stream.read()).decode("utf-8", "replace")


async def _lines(stream: asyncio.StreamReader, on_line: LineSink) -> str:
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    while raw := await stream.readline():
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        tail.append(line)
        on_line(line)
    return "\n".join(tail)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # Gone already, or a member running as another user (a Nix build user): nothing to do.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def stop(proc: asyncio.subprocess.Process) -> None:
    """Stop the child's process group: SIGTERM, then SIGKILL for what remains after
    KILL_GRACE (at once when the child itself is gone: only its descendants are left)."""
    try:
        if proc.returncode is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                async with asyncio.timeout(KILL_GRACE):
                    await asyncio.shield(proc.wait())
            except TimeoutError:
                log.warning("child did not stop on SIGTERM; killing its group", pid=proc.pid)
    finally:
        _signal_group(proc.pid, signal.SIGKILL)
    await asyncio.shield(proc.wait())


def spawn_reader(argv: Sequence[str]) -> subprocess.Popen[bytes]:
    """A child whose unbuffered stdout a thread reads as it is produced (a NAR dump).
    Stop it with `kill_now`."""
    return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, bufsize=0, start_new_session=True)


def kill_now(popen: subprocess.Popen[bytes]) -> None:
    """SIGKILL a reader's group at once: it only reads, so it has nothing to clean up, and
    its stop must not keep the event loop waiting for a grace period."""
    _signal_group(popen.pid, signal.SIGKILL)


def run_sync(argv: Sequence[str], *, name: str | None = None, limit: float | None = None,
             cwd: str | Path | None = None, check: bool = False) -> Result:
    """`run` for code outside the event loop (the demo's setup before it starts one)."""
    command = name or describe(argv)
    popen = subprocess.Popen(list(argv), cwd=cwd, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)
    try:
        out, err = popen.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        _stop_sync(popen)
        raise ChildTimeout(command, limit or 0) from None
    except BaseException:
        _stop_sync(popen)
        raise
    result = Result(command, popen.returncode, out, err.decode("utf-8", "replace"))
    return result.check() if check else result


def _stop_sync(popen: subprocess.Popen[bytes]) -> None:
    try:
        if popen.poll() is None:
            _signal_group(popen.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(KILL_GRACE)
    finally:
        _signal_group(popen.pid, signal.SIGKILL)
    popen.communicate()
