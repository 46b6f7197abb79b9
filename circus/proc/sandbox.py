"""An untrusted shell job (a builds.sr.ht task: code from anyone who can submit a job) run
inside bubblewrap, its output streamed line by line, stopped as a whole at its time limit
or when it is cancelled.

What the job sees is built from nothing (bwrap's root is an empty tmpfs) and only what is
listed here is added to it:

- `/usr` (and the `/bin`, `/sbin`, `/lib`, `/lib64` links or directories beside it) and
  `/nix/store`, read-only. Not `/nix/var`: no Nix daemon socket, no Nix database.
- From `/etc`, read-only, only what name resolution, TLS and the dynamic loader read
  (`ETC`); not `/etc/ssl/private`. `/etc/passwd` and `/etc/group` are generated (user
  "build", uid 1000) and handed to bwrap through pipes, so nothing is written on disk.
- `--proc /proc` (a procfs of the job's own PID namespace), then `/proc/sys` bound
  read-only over it: the job's process counts as host root for the kernel's sysctl
  permission check (see "Who the job is" below), and a writable `/proc/sys` would let it
  set kernel.core_pattern, a way out to host root. bwrap itself already covers
  `/proc/sysrq-trigger`, `/proc/irq` and `/proc/bus`.
- `--dev /dev` (null, zero, full, random, urandom, tty, a private devpts and /dev/shm),
  `--tmpfs /tmp` (private, gone with the job), the job's home read-write at /home/build,
  the caller's `ro_binds`, and then `--remount-ro /`: the root tmpfs (so `/etc`, `/home`,
  `/` itself) cannot be written either.

So the Circus state directory, /root, /var, /run, /sys and the host's /nix/var do not
exist for the job. The other flags:

- `--unshare-pid`: the job sees and signals only its own processes (`kill` of a host pid
  finds nothing); `--unshare-ipc`: no host SysV IPC or POSIX message queues;
  `--unshare-uts` with `--hostname`: its hostname is its own; `--unshare-cgroup-try`: the
  host's cgroup paths are hidden; `--unshare-net` unless `share_net` (sources are cloned
  from the network, so the default shares it: see "Who the job is").
- `--unshare-user --uid 1000 --gid 1000`: the job runs in a user namespace of its own as
  uid 1000 ("build"), not root; `--cap-drop ALL`: no capability in it either (bwrap would
  keep none for a non-zero uid anyway: this makes it explicit); `--disable-userns`: it
  cannot make a nested user namespace, where it would hold every capability again (the
  way to mount, to remount our read-only binds, and a large kernel attack surface).
- `--new-session`: the job is not in our terminal's session, so it cannot push input
  into it with TIOCSTI.
- `--die-with-parent`: bwrap and everything under it get SIGKILL when the process that
  started it (this one; strictly, its thread running the event loop) dies.
- `--clearenv`: none of our environment (NIX_CONFIG, database URLs, tokens) reaches the
  job; it gets HOME, USER, PATH, TERM=dumb, LANG=C.UTF-8 and `Sandbox.env`.

Who the job is. bwrap started by root maps the job's uid 1000 onto the caller's uid, so
by default (`host_user=None`, Circus running as root) the files it writes in its home are
owned by root on the host, and it can change every file the runner put there (cloned
sources). The kernel sees the job as uid 0 without any capability: that passes every
check that only compares uids, which is why nothing secret may be bound in (a root-only
file in a bind is readable, `/etc/ssl/private` is left out) and why `/proc/sys` is bound
read-only. With `share_net` it also reaches the host's loopback services and its
abstract unix sockets, whose peer credentials say uid 0: a service there that trusts
root would trust the job. `share_net=False` closes that; `host_user=(uid, gid)` closes
the whole class: bwrap runs as that unprivileged host user, so the job is nobody special
to the host kernel, but then the home and every directory above it must be reachable by
that user, and the home writable by it (the runner's files in it owned by it).

Stopping it. bwrap forks the PID namespace's init (bwrap's reaper, pid 1 inside) and the
job (pid 2). Our child, the outer bwrap, leads its own process group
(`start_new_session=True`); the init and the job have their own sessions. The outer bwrap
reports the init's host pid on `--info-fd` before the init may go on, and that pid is
held as a pidfd (checked against the namespace id bwrap reports, so a reused pid is never
signalled). At the end, whatever the way (the job's exit, the time limit, `cancel`, an
error in the caller's line sink, the awaiting task cancelled), the outer bwrap's group is
sent SIGKILL and the init too, through its pidfd. When the init of a PID namespace dies
the kernel kills every process in the namespace and the init's exit completes only once
all of them are gone, so the pidfd turning readable means nothing of the job survives,
whatever it did (double forks, setsid, closed stdout, ignored signals). Without the
pidfd (bwrap killed before it reported) the init still gets SIGKILL from
`--die-with-parent` as soon as the outer bwrap dies. The outer bwrap is then awaited, so
no zombie is left, and the reader and stdin tasks are ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import attrs
import structlog

from circus.proc import child

log = structlog.get_logger(__name__)

LineSink = Callable[[str], Awaitable[None] | None]

HOME = "/home/build"
USER = "build"
UID = 1000
GID = 1000
# The longest piece of a line handed to the sink: a longer line arrives cut into pieces,
# so a job printing gigabytes without a newline is never buffered whole.
PIECE = 64 * 1024
# How long the teardown waits for the namespace to empty, for bwrap's report on its info
# pipe, and for the output left in the pipe after a kill to be delivered.
REAP_SECONDS = 10.0
INFO_SECONDS = 5.0
DRAIN_SECONDS = 2.0

# The system beside /usr: symlinks into it on a merged-/usr system, directories elsewhere.
SYSTEM_DIRS = ("/bin", "/sbin", "/lib", "/lib64")
# What of /etc the job may read, where it exists: name resolution, TLS certificates, the
# dynamic loader's cache, Debian's alternatives (/usr/bin/awk points there), the zone.
ETC = ("/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/host.conf",
       "/etc/gai.conf", "/etc/services", "/etc/protocols", "/etc/ssl/certs",
       "/etc/ssl/openssl.cnf", "/etc/ca-certificates", "/etc/pki/tls/certs",
       "/etc/pki/ca-trust", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
       "/etc/alternatives", "/etc/localtime")
PASSWD = (f"{USER}:x:{UID}:{GID}:{USER}:{HOME}:/bin/bash\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
GROUP = f"{USER}:x:{GID}:\nnogroup:x:65534:\n"


@attrs.frozen
class Sandbox:
    # A host directory: the job's home, read-write at /home/build.
    home: Path
    # PATH inside, in order (Nix store bin dirs, /usr/bin, /bin).
    path: tuple[str, ...]
    # Variables for the job besides HOME, USER, PATH, TERM and LANG (it may override them).
    env: Mapping[str, str]
    # Host paths shown read-only at the same place.
    ro_binds: tuple[Path, ...] = ()
    hostname: str = "build"
    share_net: bool = True
    # (uid, gid) of an unprivileged host user to run bwrap as; None: as ourselves (root).
    host_user: tuple[int, int] | None = None


@attrs.frozen
class Result:
    # The job's exit status (128 + n for a job killed by signal n); None when it was
    # stopped here (timed out or cancelled). bwrap's own failure is 1, its message in
    # the output.
    exit_code: int | None
    timed_out: bool
    cancelled: bool


def bwrap() -> str:
    """The bwrap executable, from our PATH."""
    found = shutil.which("bwrap")
    if found is None:
        raise FileNotFoundError("bwrap (bubblewrap) is not installed")
    return found


def _check(sandbox: Sandbox, command: Sequence[str]) -> None:
    if not command:
        raise ValueError("empty command")
    for entry in sandbox.path:
        if not entry.startswith("/") or ":" in entry:
            raise ValueError(f"PATH entry {entry!r} is not an absolute path without ':'")
    for name in sandbox.env:
        if not name or "=" in name:
            raise ValueError(f"invalid environment variable name {name!r}")
    for bind in sandbox.ro_binds:
        if not bind.is_absolute():
            raise ValueError(f"read-only bind {bind} is not an absolute path")


def argv(sandbox: Sandbox, command: Sequence[str], *, info_fd: int | None = None,
         passwd_fd: int | None = None, group_fd: int | None = None) -> list[str]:
    """The bwrap command line running `command` in `sandbox`.

    `info_fd` is passed as bwrap's --info-fd, `passwd_fd` and `group_fd` (readable ends
    holding the files' text) become /etc/passwd and /etc/group; without them the job has
    neither file. `run` passes all three.
    """
    _check(sandbox, command)
    args = [bwrap(),
            "--unshare-user", "--uid", str(UID), "--gid", str(GID), "--disable-userns",
            "--cap-drop", "ALL",
            "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            *(() if sandbox.share_net else ("--unshare-net",)),
            "--hostname", sandbox.hostname,
            "--die-with-parent", "--new-session"]
    if info_fd is not None:
        args += ["--info-fd", str(info_fd)]
    args += ["--ro-bind", "/usr", "/usr"]
    for place in SYSTEM_DIRS:
        if os.path.islink(place):
            args += ["--symlink", os.readlink(place), place]
        elif os.path.isdir(place):
            args += ["--ro-bind", place, place]
    args += ["--ro-bind", "/nix/store", "/nix/store"]
    for place in ETC:
        args += ["--ro-bind-try", place, place]
    for fd, place in ((passwd_fd, "/etc/passwd"), (group_fd, "/etc/group")):
        if fd is not None:
            args += ["--perms", "0644", "--ro-bind-data", str(fd), place]
    args += ["--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys",
             "--dev", "/dev", "--tmpfs", "/tmp",
             "--bind", str(sandbox.home.absolute()), HOME]
    # Last, so neither /tmp's tmpfs nor the home hides one.
    for bind in sandbox.ro_binds:
        args += ["--ro-bind", str(bind), str(bind)]
    args += ["--remount-ro", "/", "--chdir", HOME]
    env = {"HOME": HOME, "USER": USER, "PATH": ":".join(sandbox.path), "TERM": "dumb",
           "LANG": "C.UTF-8", **sandbox.env}
    args.append("--clearenv")
    for name, value in env.items():
        args += ["--setenv", name, value]
    return [*args, "--", *command]


class _Init:
    """The PID namespace's init, held as a pidfd: killing it empties the namespace, and
    the pidfd turns readable once the namespace is empty."""

    def __init__(self, pid: int, pidfd: int) -> None:
        self.pid = pid
        self.pidfd = pidfd

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)

    async def gone(self) -> None:
        loop = asyncio.get_running_loop()
        exited = loop.create_future()

        def readable() -> None:
            if not exited.done():
                exited.set_result(None)

        loop.add_reader(self.pidfd, readable)
        try:
            await exited
        finally:
            loop.remove_reader(self.pidfd)

    def close(self) -> None:
        os.close(self.pidfd)


def _hold(pid: int, namespace: int) -> _Init | None:
    """A pidfd for `pid` if it still is the init of the PID namespace `namespace`."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    try:
        # Read after opening, and confirmed alive after reading: the link read is the
        # pidfd's process, so a pid reused by another process is never held.
        same = os.readlink(f"/proc/{pid}/ns/pid") == f"pid:[{namespace}]"
        signal.pidfd_send_signal(pidfd, 0)
    except (OSError, ProcessLookupError):
        same = False
    if not same:
        os.close(pidfd)
        return None
    return _Init(pid, pidfd)


async def _init_of(pipe: BinaryIO) -> _Init | None:
    """The namespace's init from bwrap's --info-fd report (read to its end: bwrap closes
    it once written, the job never holds it)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), pipe)
    try:
        raw = await reader.read()
    finally:
        transport.close()
    if not raw:
        return None
    try:
        info = json.loads(raw)
        return _hold(int(info["child-pid"]), int(info["pid-namespace"]))
    except (ValueError, KeyError, TypeError):
        log.warning("unreadable bwrap info", info=raw[:200].decode("ascii", "replace"))
        return None


def _cut(pending: bytearray) -> int:
    """Where to cut an overlong line: at PIECE bytes, or before a UTF-8 character that
    would straddle the cut."""
    at = PIECE
    while at > PIECE - 3 and pending[at] & 0xC0 == 0x80:
        at -= 1
    return at if pending[at] & 0xC0 != 0x80 else PIECE


async def _deliver(on_line: LineSink, raw: bytes | bytearray) -> None:
    done = on_line(raw.decode("utf-8", "replace"))
    if done is not None:
        await done


async def _pump(stream: asyncio.StreamReader, on_line: LineSink) -> None:
    """The job's output, line by line (without the line end), a line over PIECE bytes in
    pieces of at most PIECE bytes; at most about two pieces are ever held."""
    pending = bytearray()
    while chunk := await stream.read(PIECE):
        pending += chunk
        while True:
            end = pending.find(b"\n", 0, PIECE + 1)
            if end >= 0:
                line = pending[:end]
                await _deliver(on_line, line[:-1] if line.endswith(b"\r") else line)
                del pending[:end + 1]
            elif len(pending) > PIECE:
                at = _cut(pending)
                await _deliver(on_line, pending[:at])
                del pending[:at]
            else:
                break
    if pending:
        await _deliver(on_line, pending)


async def _feed(stream: asyncio.StreamWriter, data: bytes) -> None:
    # The job may exit (or close its stdin) without reading it all.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stream.write(data)
        await stream.drain()
    stream.close()


async def _discard(stream: asyncio.StreamReader) -> None:
    while await stream.read(PIECE):
        pass


async def _ended(task: asyncio.Future[None] | None, seconds: float) -> None:
    """`task` given up to `seconds` to end, then cancelled; it has ended on return."""
    if task is None:
        return
    if not task.done() and seconds > 0:
        await asyncio.wait([task], timeout=seconds)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


def _pipe_with(text: str) -> int:
    """The readable end of a pipe holding `text` (short: it fits in the pipe)."""
    readable, writable = os.pipe()
    try:
        os.write(writable, text.encode())
    finally:
        os.close(writable)
    return readable


async def run(sandbox: Sandbox, command: Sequence[str], on_line: LineSink, *,
              timeout: float, stdin: bytes | None = None,  # noqa: ASYNC109
              cancel: asyncio.Event | None = None) -> Result:
    """Run `command` in `sandbox`; its stdout and stderr, merged, go to `on_line` line by
    line (awaited when it returns an awaitable: a slow sink slows the job, never
    buffers). `stdin` is written to the job's stdin (else it is /dev/null). Past `timeout`
    seconds or once `cancel` is set the job is killed; cancelling the awaiting task kills
    it too. Nothing of the job is running when this returns or raises.
    """
    if cancel is not None and cancel.is_set():
        return Result(exit_code=None, timed_out=False, cancelled=True)
    info_read, info_write = os.pipe()
    passed = (info_write, _pipe_with(PASSWD), _pipe_with(GROUP))
    uid, gid = sandbox.host_user or (None, None)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv(sandbox, command, info_fd=passed[0], passwd_fd=passed[1],
                  group_fd=passed[2]),
            stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env={},
            start_new_session=True, pass_fds=passed, user=uid, group=gid,
            extra_groups=None if sandbox.host_user is None else [])
    except BaseException:
        os.close(info_read)
        raise
    finally:
        for fd in passed:
            os.close(fd)
    assert proc.stdout is not None
    info = os.fdopen(info_read, "rb", buffering=0)  # closed after the teardown
    init = asyncio.ensure_future(_init_of(info))
    pump = asyncio.ensure_future(_pump(proc.stdout, on_line))
    feed = (None if stdin is None or proc.stdin is None
            else asyncio.ensure_future(_feed(proc.stdin, stdin)))
    stop = None if cancel is None else asyncio.ensure_future(cancel.wait())
    drain = False
    try:
        finished = asyncio.ensure_future(_finished(proc, pump))
        try:
            done, _ = await asyncio.wait([finished, *([stop] if stop else [])],
                                         timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            finished.cancel()
        if finished in done:
            return Result(exit_code=finished.result(), timed_out=False, cancelled=False)
        drain = True
        cancelled = stop is not None and stop in done
        log.info("sandbox stopped", pid=proc.pid,
                 reason="cancelled" if cancelled else "timed out")
        return Result(exit_code=None, timed_out=not cancelled, cancelled=cancelled)
    finally:
        try:
            await _teardown(proc, init, pump, feed, stop, drain)
        finally:
            info.close()


async def _finished(proc: asyncio.subprocess.Process, pump: asyncio.Future[None]) -> int:
    # shield: this waiter being cancelled must not end the reader, the teardown does.
    await asyncio.shield(pump)
    return await proc.wait()


async def _teardown(proc: asyncio.subprocess.Process, init: asyncio.Future[_Init | None],
                    pump: asyncio.Future[None], feed: asyncio.Future[None] | None,
                    stop: asyncio.Future[Any] | None, drain: bool) -> None:
    """Kill what is left of the job (everything, see the module's docstring), reap bwrap,
    and end the helper tasks: output still in the pipe goes to the sink when `drain`."""
    if proc.returncode is None:
        # Once reaped, its pid (and group id) may belong to someone else.
        child._signal_group(proc.pid, signal.SIGKILL)
    if stop is not None:
        stop.cancel()
    if not drain:
        pump.cancel()
    held: _Init | None = None
    try:
        if not init.done():
            await asyncio.wait([init], timeout=INFO_SECONDS)
        held = init.result() if init.done() and not init.cancelled() else None
    except Exception:
        log.exception("reading bwrap's info failed", pid=proc.pid)
    finally:
        init.cancel()
    try:
        if held is not None:
            held.kill()
            try:
                async with asyncio.timeout(REAP_SECONDS):
                    await held.gone()
            except TimeoutError:
                log.warning("sandbox processes still exiting", init=held.pid)
        await asyncio.shield(proc.wait())
    finally:
        if held is not None:
            held.close()
        await _ended(feed, 0)
        await _ended(pump, DRAIN_SECONDS if drain else 0)
        # Whatever the reader left: all writers are dead, so the end comes at once, and
        # reaching it lets the subprocess transport close.
        if proc.stdout is not None:
            with contextlib.suppress(TimeoutError, OSError):
                async with asyncio.timeout(DRAIN_SECONDS):
                    await _discard(proc.stdout)
