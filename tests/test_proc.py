"""circus.proc.child, the one way Circus runs a child: a timeout or a cancelled caller
stops the child's whole process group (a grandchild too, even one that ignores SIGTERM),
and a failure names the command and quotes its stderr. Real processes, no Nix."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from circus.proc import child, git

# sh starts a grandchild `sleep`, writes both pids, and waits for it.
SPAWNS_GRANDCHILD = 'sleep 300 & echo "$$ $!" > "$1"; wait'


def _alive(pid: int) -> bool:
    """Running (a zombie left for init to reap counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _gone(pids: list[int], within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while any(_alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _pids(path: Path, within: float = 5.0) -> list[int]:
    """The pids the script wrote (waiting for it to write them, in a thread)."""
    deadline = time.monotonic() + within
    while not path.exists() or len(path.read_text().split()) < 2:
        assert time.monotonic() < deadline, "the script never wrote its pids"
        time.sleep(0.01)
    return [int(p) for p in path.read_text().split()]


def _argv(script: str, pidfile: Path) -> list[str]:
    return ["sh", "-c", script, "sh", str(pidfile)]


async def test_a_timeout_stops_the_child_and_its_grandchild(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    with pytest.raises(child.ChildTimeout, match=r"^sleeper timed out after 0\.5 s$"):
        await child.run(_argv(SPAWNS_GRANDCHILD, pidfile), name="sleeper", limit=0.5)
    pids = _pids(pidfile)
    assert len(pids) == 2
    assert _gone(pids)


async def test_cancelling_the_caller_stops_the_child_and_its_grandchild(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    task = asyncio.ensure_future(child.run(_argv(SPAWNS_GRANDCHILD, pidfile)))
    pids = await asyncio.to_thread(_pids, pidfile)
    assert all(_alive(p) for p in pids)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _gone(pids)


async def test_a_group_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    started = time.monotonic()
    with pytest.raises(child.ChildTimeout):
        await child.run(_argv("trap '' TERM; " + SPAWNS_GRANDCHILD, pidfile), limit=0.3)
    assert time.monotonic() - started >= 0.3 + child.KILL_GRACE
    assert _gone(_pids(pidfile))


async def test_a_checked_failure_names_the_command_and_its_stderr() -> None:
    argv = ["sh", "-c", "echo starting >&2; echo 'error: no such thing' >&2; exit 3"]
    with pytest.raises(child.ChildError) as caught:
        await child.run(argv, name="nix path-info", check=True)
    assert str(caught.value) == ("nix path-info exited with status 3: starting\n"
                                 "error: no such thing")
    assert caught.value.returncode == 3
    unchecked = await child.run(argv)
    assert (unchecked.ok, unchecked.command, unchecked.returncode) == (False, "sh", 3)


async def test_stderr_streams_line_by_line_and_stdout_is_read_whole() -> None:
    lines: list[str] = []
    done = await child.run(["sh", "-c", "echo one >&2; printf 'out'; echo two >&2"],
                           on_stderr_line=lines.append, check=True)
    assert lines == ["one", "two"]
    assert (done.stdout, done.stderr) == (b"out", "one\ntwo")


def test_the_blocking_variant_stops_the_group_on_timeout(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    with pytest.raises(child.ChildTimeout):
        child.run_sync(_argv(SPAWNS_GRANDCHILD, pidfile), limit=0.5)
    assert _gone(_pids(pidfile))


def test_git_messages_name_the_subcommand_not_the_options() -> None:
    assert git.command(("-C", "/srv/clone", "fetch", "--quiet", "--", "https://x")) == "git fetch"
    assert git.command(("--git-dir=/c", "--work-tree=/w", "checkout", "-f")) == "git checkout"
    assert git.command(()) == "git"
