"""The embedded PostgreSQL lives exactly as long as the `circus` processes that use it:
stopped when the last one exits (SIGTERM, SIGINT, an error at start, or SIGKILL), adopted
or restarted by the next start, and shared by two processes on one state directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from circus.db import embedded
from tests.helpers.e2e import wait_for
from tests.helpers.suite import free_port


def postgres_pids(data_dir: Path) -> list[int]:
    """Every live postgres process of `data_dir` (postmaster and its children)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            status = (entry / "status").read_text()
        except OSError:
            continue
        if "State:\tZ" in status:
            continue
        if argv[0].endswith(b"postgres") and str(data_dir).encode() in b" ".join(argv):
            pids.append(int(entry.name))
    return pids


class Run:
    """One `circus run` on an embedded database in `state`."""

    def __init__(self, state: Path, roles: str = "server") -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "CIRCUS_STATE_DIR": str(state),
            "CIRCUS_SERVER__PORT": str(self.port),
            "CIRCUS_EVALUATOR__WORK_DIR": str(state / "eval"),
            "CIRCUS_QUEUE_RUNNER__WORK_DIR": str(state / "runner"),
            "CIRCUS_GC__GC_ROOTS_DIR": str(state / "gcroots"),
        }
        env.pop("CIRCUS_DATABASE__URL", None)
        state.mkdir(parents=True, exist_ok=True)
        self.log = (state / f"circus-{self.port}.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "circus.cli", "run", f"--roles={roles}"],
            env=env, cwd=state, stdout=self.log, stderr=subprocess.STDOUT)

    def health(self) -> int:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=5) as r:
            return r.status

    def wait_up(self) -> None:
        wait_for(lambda: self.health() == 200, 90, "circus run up")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(60)
        self.log.close()
        return code


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    yield path
    for pid in postgres_pids(path / "postgres"):  # never leave one behind, pass or fail
        os.kill(pid, signal.SIGKILL)


def wait_gone(data_dir: Path, timeout: float = 30) -> None:
    wait_for(lambda: not postgres_pids(data_dir), timeout, "no postgres left")


def test_each_exit_stops_the_server_and_sigkill_is_cleaned_up(state: Path) -> None:
    data_dir = state / "postgres"
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGTERM):
        run = Run(state)
        run.wait_up()
        assert postgres_pids(data_dir)
        assert run.stop(sig) == 0
        # Stopped by the exiting process itself, before it returned.
        assert postgres_pids(data_dir) == []
    run = Run(state)
    run.wait_up()
    run.stop(signal.SIGKILL)
    wait_gone(data_dir)  # the guard noticed that nobody uses the server any more
    run = Run(state)
    run.wait_up()
    assert run.stop() == 0
    assert postgres_pids(data_dir) == []


def test_a_server_left_running_is_adopted_and_then_stopped(state: Path) -> None:
    server = embedded.for_state_dir(state)
    server.start()  # as if left behind by a version of Circus without a guard
    run = Run(state)
    run.wait_up()
    assert run.stop() == 0
    assert postgres_pids(server.data_dir) == []


def test_a_stale_pid_file_does_not_stop_the_next_start(state: Path) -> None:
    server = embedded.for_state_dir(state)
    server.start()
    server.stop("immediate")
    # The machine went down with the server; the pid in the file now belongs to
    # another process (this test), which PostgreSQL would take for a live server.
    pid_file = server.data_dir / "postmaster.pid"
    pid_file.write_text(f"{os.getpid()}\n{server.data_dir}\n")
    run = Run(state)
    run.wait_up()
    assert run.stop() == 0
    assert postgres_pids(server.data_dir) == []


def test_an_error_at_start_up_stops_the_server(state: Path) -> None:
    port = free_port()
    blocker = subprocess.Popen([sys.executable, "-c", f"""
import socket, time
s = socket.socket(); s.bind(("127.0.0.1", {port})); s.listen(); time.sleep(120)"""])
    try:
        wait_for(lambda: _listening(port), 10, "the port taken")
        failing = subprocess.run(
            [sys.executable, "-m", "circus.cli", "run", "--roles=server"],
            env={**os.environ, "CIRCUS_STATE_DIR": str(state),
                 "CIRCUS_SERVER__PORT": str(port)},
            cwd=state.parent, capture_output=True, text=True, timeout=120)
    finally:
        blocker.kill()
        blocker.wait()
    assert failing.returncode != 0
    assert f"port {port}" in failing.stderr and "in use" in failing.stderr
    assert postgres_pids(state / "postgres") == []


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_two_processes_share_one_server_until_the_last_leaves(state: Path) -> None:
    data_dir = state / "postgres"
    runner = Run(state, roles="runner")
    server = Run(state, roles="server")
    server.wait_up()
    assert runner.stop() == 0
    # The server process still has its database.
    assert server.health() == 200
    assert postgres_pids(data_dir)
    assert server.stop() == 0
    wait_gone(data_dir, 10)
