"""Watched side tasks: when a runner side task (lease renewal, the gc sweep) dies of an
unexpected error, the runner says which task and why, hands its running builds back and
stops, and `circus run` exits with status 1; without a failure the runner keeps going."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest
import structlog

from circus.app import config as configuration
from circus.app.context import Context
from circus.db.bus import Bus
from circus.domain.errors import TaskFailed
from circus.runner import expiry, lease, role
from circus.runner.outcome import ClaimedBuild, Outcome
from tests.helpers.runner import add_build, build_row, make_jobset

SYSTEM = "x86_64-linux"  # configured, so no test here asks Nix which systems it builds
# lease_seconds 3: the heartbeat runs every second.
FAST = {"queue_runner": {"systems": [SYSTEM], "lease_seconds": 3, "poll_interval": 1,
                         "shutdown_grace": 0},
        "gc": {"cleanup_interval": 1}}


async def _boom(*args: object, **kwargs: object) -> None:
    raise RuntimeError("boom")


class _Hanging:
    """A builder whose builds never end, so one is running when the runner stops."""

    async def build(self, build: ClaimedBuild, on_line: object) -> Outcome:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


@pytest.fixture
async def context(make_config: Callable[..., configuration.Config],
                  database_url: str) -> AsyncIterator[Context]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=10)
    bus = Bus(database_url)
    await bus.start()
    try:
        yield Context(config=make_config(FAST), pool=pool, bus=bus, database_url=database_url)
    finally:
        await bus.close()
        await pool.close()


def _failures(logs: list[dict]) -> list[dict]:
    return [e for e in logs if e["event"] == "runner task failed; stopping the runner"]


async def test_failing_lease_renewal_stops_the_runner_and_hands_builds_back(
        context: Context, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    jobset = await make_jobset(pool)
    build_id = await add_build(pool, jobset, "long", "/nix/store/x-long.drv", system=SYSTEM)
    real_renew = lease.renew

    async def renew(pool: asyncpg.Pool, runner_id: str, build_ids: list[int],
                    lease_seconds: float) -> set[int]:
        if build_ids:  # fail only once the build runs, to show it is handed back
            raise RuntimeError("boom")
        return await real_renew(pool, runner_id, build_ids, lease_seconds)

    monkeypatch.setattr(lease, "renew", renew)
    with structlog.testing.capture_logs() as logs, \
            pytest.raises(TaskFailed, match=r"runner-heartbeat.*boom") as failed:
        async with asyncio.timeout(30):
                await role.serve(context, _Hanging())
    assert failed.value.task == "runner-heartbeat"
    assert isinstance(failed.value.__cause__, RuntimeError)
    assert [(e["task"], e["error"]) for e in _failures(logs)] == [
        ("runner-heartbeat", "RuntimeError('boom')")]
    row = await build_row(pool, build_id)
    assert (row["state"], row["runner_id"]) == ("queued", None)


async def test_failing_gc_sweep_stops_the_runner(context: Context,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(expiry, "sweep", _boom)
    with structlog.testing.capture_logs() as logs, \
            pytest.raises(TaskFailed, match=r"gc-sweep.*boom"):
        async with asyncio.timeout(30):
            await role.run(context)
    assert [(e["task"], e["error"]) for e in _failures(logs)] == [
        ("gc-sweep", "RuntimeError('boom')")]


async def test_database_errors_are_retried_not_fatal(context: Context,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    async def refused(*args: object) -> None:
        raise ConnectionRefusedError("database away")

    # A lost database is retried at the next heartbeat, as before.
    monkeypatch.setattr(lease, "renew", refused)
    task = asyncio.create_task(role.run(context))
    await asyncio.sleep(3.5)  # several heartbeats, maintenance and gc sweeps
    assert not task.done()
    context.stopping.set()
    async with asyncio.timeout(30):
        await task


async def test_without_failure_the_runner_keeps_running(context: Context) -> None:
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(role.run(context))
        await asyncio.sleep(3.5)
        assert not task.done()
        context.stopping.set()
        async with asyncio.timeout(30):
            assert await task is None
    assert _failures(logs) == []


PATCHED_CLI = """
import sys
from circus import cli
from circus.runner import lease

async def renew(*args, **kwargs):
    raise RuntimeError("boom")

lease.renew = renew
sys.exit(cli.main())
"""


async def test_circus_run_exits_1_naming_the_task(database_url: str, tmp_path: Path) -> None:
    config_file = tmp_path / "circus.toml"
    config_file.write_text(f"""
state_dir = "{tmp_path / 'state'}"
[database]
url = "{database_url}"
[queue_runner]
work_dir = "{tmp_path / 'runner'}"
systems = ["{SYSTEM}"]
lease_seconds = 3
shutdown_grace = 0
[gc]
gc_roots_dir = "{tmp_path / 'gcroots'}"
""")
    env = {**os.environ, "CIRCUS_CONFIG_FILE": str(config_file)}
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", PATCHED_CLI, "run", "--roles", "runner"],
        env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last == "circus: task runner-heartbeat failed: RuntimeError('boom')"
    assert "Traceback" not in done.stderr

