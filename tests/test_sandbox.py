"""circus.proc.sandbox, an untrusted job in bubblewrap: it sees its home and nothing of
the host's state, writes nowhere else, cannot see or signal host processes, and a time
limit, a cancel or a cancelled caller kills it whole (a background child too). Real bwrap,
real bash; the job's host identity is root unless `host_user` says otherwise."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from circus.proc import sandbox

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")

PATH = ("/usr/bin", "/bin")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    place = tmp_path / "home"
    place.mkdir()
    return place


def _box(home: Path, **changes: object) -> sandbox.Sandbox:
    return sandbox.Sandbox(home=home, path=PATH, env={"FOO": "bar baz"}, **changes)  # type: ignore[arg-type]


async def _run(box: sandbox.Sandbox, script: str, *, limit: float = 30,
               **kwargs: object) -> tuple[sandbox.Result, list[str]]:
    lines: list[str] = []
    result = await sandbox.run(box, ["/bin/bash", "-c", script], lines.append,
                               timeout=limit, **kwargs)  # type: ignore[arg-type]
    return result, lines


def _marker() -> str:
    """A `sleep` argument no other process has: 1000 seconds and a unique fraction."""
    return f"1000.{uuid.uuid4().int % 10**9:09d}"


def _on_host(path: str) -> bool:
    return Path(path).exists()


def _survivors(marker: str) -> list[int]:
    """Host pids of processes whose command line holds `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline.split(b"\0"):
                found.append(int(entry.name))
    return found


async def test_the_job_sees_its_home_hostname_pid_namespace_and_only_its_env(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIRCUS_SANDBOX_LEAK", "host secret")
    script = ('echo "home=$HOME pwd=$PWD user=$USER id=$(id -u):$(id -g) name=$(whoami)"; '
              'echo written > ~/x; echo "host=$(hostname)"; echo "pid=$$"; '
              'echo "foo=$FOO"; echo "leak=${CIRCUS_SANDBOX_LEAK-unset}"; '
              'echo "path=$PATH term=$TERM lang=$LANG"; '
              "echo names $(env | cut -d= -f1 | sort)")
    result, lines = await _run(_box(home), script)
    assert result == sandbox.Result(exit_code=0, timed_out=False, cancelled=False)
    assert lines[:7] == ["home=/home/build pwd=/home/build user=build id=1000:1000 name=build",
                         "host=build", "pid=2", "foo=bar baz", "leak=unset",
                         "path=/usr/bin:/bin term=dumb lang=C.UTF-8",
                         lines[6]]
    names = set(lines[6].split()[1:])
    assert names <= {"HOME", "USER", "PATH", "TERM", "LANG", "FOO", "PWD", "SHLVL", "_"}
    assert {"HOME", "USER", "PATH", "TERM", "LANG", "FOO"} <= names
    assert (home / "x").read_text() == "written\n"
    # Owned by root on the host: uid 1000 inside is mapped onto the caller's uid.
    assert (home / "x").stat().st_uid == os.getuid()


async def test_the_job_cannot_read_the_state_directory_root_or_nix_var(
        home: Path, tmp_path: Path) -> None:
    secret = tmp_path / "state" / "secret"
    secret.parent.mkdir()
    secret.write_text("the database password\n")
    script = (f"cat {secret}; echo rc=$?; ls /root; echo rc=$?; ls /nix/var; echo rc=$?; "
              "ls /var /run /sys; echo rc=$?; ls /nix; cat /etc/ssl/private/* ; echo rc=$?")
    result, lines = await _run(_box(home), script)
    assert result.exit_code == 0
    assert not any("database password" in line for line in lines)
    assert f"cat: {secret}: No such file or directory" in lines
    assert "ls: cannot access '/root': No such file or directory" in lines
    assert "ls: cannot access '/nix/var': No such file or directory" in lines
    assert "ls: cannot access '/var': No such file or directory" in lines
    assert "ls: cannot access '/run': No such file or directory" in lines
    assert "ls: cannot access '/sys': No such file or directory" in lines
    assert [line for line in lines if line.startswith("rc=")] == ["rc=1", "rc=2", "rc=2",
                                                                   "rc=2", "rc=1"]
    assert "store" in lines and "var" not in lines


async def test_the_job_writes_nowhere_but_its_home_and_a_private_tmp(home: Path) -> None:
    name = f"circus-sandbox-{uuid.uuid4().hex}"
    script = ("for f in /nix/store/x /usr/x /etc/x /x /home/x /etc/passwd; do "
              "touch $f 2>/dev/null; echo \"$f rc=$?\"; done; "
              "v=$(cat /proc/sys/kernel/printk_ratelimit); "
              "(echo $v > /proc/sys/kernel/printk_ratelimit) 2>/dev/null; echo sysctl rc=$?; "
              f"echo private > /tmp/{name} && cat /tmp/{name}")
    result, lines = await _run(_box(home), script)
    assert result.exit_code == 0
    assert lines == ["/nix/store/x rc=1", "/usr/x rc=1", "/etc/x rc=1", "/x rc=1",
                     "/home/x rc=1", "/etc/passwd rc=1", "sysctl rc=1", "private"]
    assert not _on_host(f"/tmp/{name}")
    assert not _on_host("/nix/store/x")


async def test_a_timeout_kills_the_job_and_its_background_child(home: Path) -> None:
    marker = _marker()
    started = time.monotonic()
    result, lines = await _run(_box(home), f"sleep {marker} & echo started; sleep 100",
                               limit=1)
    assert result == sandbox.Result(exit_code=None, timed_out=True, cancelled=False)
    assert time.monotonic() - started < 5
    assert lines == ["started"]
    # At once: run() returns only once the namespace is empty.
    assert _survivors(marker) == []


async def test_a_detached_child_dies_with_the_job_that_exits(home: Path) -> None:
    marker = _marker()
    result, _ = await _run(_box(home), f"setsid sleep {marker} >/dev/null 2>&1 < /dev/null & "
                                       "trap '' TERM HUP; exit 0")
    assert result.exit_code == 0
    assert _survivors(marker) == []


async def test_cancel_kills_the_job_whole(home: Path) -> None:
    marker = _marker()
    cancel = asyncio.Event()
    running = asyncio.Event()

    def on_line(line: str) -> None:
        if line == "started":
            running.set()

    task = asyncio.ensure_future(sandbox.run(
        _box(home), ["/bin/bash", "-c", f"sleep {marker} & echo started; sleep 100"],
        on_line, timeout=60, cancel=cancel))
    await asyncio.wait_for(running.wait(), 10)
    assert len(_survivors(marker)) == 1
    cancel.set()
    result = await asyncio.wait_for(task, 10)
    assert result == sandbox.Result(exit_code=None, timed_out=False, cancelled=True)
    assert _survivors(marker) == []


async def test_a_cancelled_caller_kills_the_job_too(home: Path) -> None:
    marker = _marker()
    running = asyncio.Event()

    async def on_line(line: str) -> None:
        if line == "started":
            running.set()

    task = asyncio.ensure_future(sandbox.run(
        _box(home), ["/bin/bash", "-c", f"sleep {marker} & echo started; sleep 100"],
        on_line, timeout=60))
    await asyncio.wait_for(running.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _survivors(marker) == []


async def test_an_already_set_cancel_starts_nothing(home: Path) -> None:
    cancel = asyncio.Event()
    cancel.set()
    result, _ = await _run(_box(home), "touch ~/ran", cancel=cancel)
    assert result == sandbox.Result(exit_code=None, timed_out=False, cancelled=True)
    assert not (home / "ran").exists()


async def test_a_long_line_arrives_in_pieces_and_the_exit_code_is_kept(home: Path) -> None:
    script = ("head -c 1048576 /dev/zero | tr '\\0' a; echo; "
              "printf '\\xc3\\xa9%.0s' $(seq 40000); echo; echo done >&2; exit 3")
    result, lines = await _run(_box(home), script)
    assert result.exit_code == 3
    assert lines[-1] == "done"
    pieces = lines[:-1]
    assert all(len(piece.encode()) <= sandbox.PIECE for piece in pieces)
    joined = "".join(pieces)
    assert joined == "a" * 1048576 + "\u00e9" * 40000
    assert len(pieces) == 16 + 2  # 1 MiB in 64 KiB pieces, 80000 bytes in two
    assert "\ufffd" not in joined  # never cut inside a character


async def test_stdin_reaches_the_job(home: Path) -> None:
    lines: list[str] = []
    result = await sandbox.run(_box(home), ["/bin/bash", "-s"], lines.append, timeout=30,
                               stdin=b"read -r word; echo got $word; exit 4\nfirst\n")
    assert (result.exit_code, lines) == (4, ["got first"])


async def test_the_job_cannot_see_or_signal_host_processes(home: Path) -> None:
    script = (f"kill -0 {os.getpid()} 2>/dev/null; echo kill rc=$?; "
              "echo pids $(ls /proc | grep -E '^[0-9]+$')")
    result, lines = await _run(_box(home), script)
    assert result.exit_code == 0
    assert lines[0] == "kill rc=1"
    pids = [int(p) for p in lines[1].split()[1:]]
    # bwrap's init, bash, and the subshell listing /proc (and grep, if it has started).
    assert 1 in pids and 2 in pids and len(pids) <= 5 and max(pids) < 20


async def test_without_share_net_only_loopback_exists(home: Path) -> None:
    result, lines = await _run(_box(home, share_net=False),
                               "tail -n +3 /proc/net/dev | cut -d: -f1")
    assert (result.exit_code, [line.strip() for line in lines]) == (0, ["lo"])
    assert "--unshare-net" in sandbox.argv(_box(home, share_net=False), ["true"])
    assert "--unshare-net" not in sandbox.argv(_box(home), ["true"])


def test_the_command_line_keeps_the_host_out(home: Path) -> None:
    args = sandbox.argv(_box(home, ro_binds=(Path("/opt/tools"),)), ["make", "check"])
    for flag in ("--unshare-user", "--disable-userns", "--unshare-pid", "--unshare-ipc",
                 "--unshare-uts", "--unshare-cgroup-try", "--die-with-parent",
                 "--new-session", "--clearenv"):
        assert flag in args
    assert args[args.index("--cap-drop") + 1] == "ALL"
    assert args[-3:] == ["--", "make", "check"]
    joined = " ".join(args)
    assert "--ro-bind /nix/store /nix/store" in joined
    assert "--ro-bind /opt/tools /opt/tools" in joined
    assert f"--bind {home} /home/build" in joined
    for hidden in ("/nix/var", "/var", "/root", "/run", "/etc/ssl/private"):
        assert f" {hidden} " not in f" {joined} "
    with pytest.raises(ValueError):
        sandbox.argv(_box(home), [])
    with pytest.raises(ValueError):
        sandbox.argv(sandbox.Sandbox(home=home, path=("bin:/x",), env={}), ["true"])


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory an unprivileged user can pass through (pytest's are root's, 0700)."""
    place = Path(tempfile.mkdtemp(prefix="circus-sandbox-"))
    place.chmod(0o711)
    try:
        yield place
    finally:
        shutil.rmtree(place)


@pytest.mark.skipif(os.getuid() != 0, reason="runs bwrap as another user")
async def test_a_host_user_makes_the_job_nobody_special_on_the_host(open_dir: Path) -> None:
    home = open_dir / "home"
    home.mkdir()
    os.chown(home, 65534, 65534)
    root_only = open_dir / "root-only"
    root_only.write_text("root's\n")
    root_only.chmod(0o600)
    box = _box(home, host_user=(65534, 65534), ro_binds=(root_only,))
    result, lines = await _run(box, f"id -u; echo x > ~/x; cat {root_only}; echo rc=$?")
    assert result.exit_code == 0
    assert lines == ["1000", f"cat: {root_only}: Permission denied", "rc=1"]
    assert (home / "x").stat().st_uid == 65534
    # The same bind as root's job: readable, which is why nothing secret is bound.
    result, lines = await _run(_box(home, ro_binds=(root_only,)), f"cat {root_only}")
    assert (result.exit_code, lines) == (0, ["root's"])
