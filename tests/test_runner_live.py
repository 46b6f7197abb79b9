"""What happens while a build runs: the log streams out, and a cancel stops it."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from circus.db.bus import BUILD_LOG, Bus
from circus.store import logs
from tests.helpers.runner import (
    add_build,
    instantiate,
    make_jobset,
    running_runner,
    wait_finished,
    wait_for,
)


async def test_log_chunks_stream_before_the_build_finishes(make_config, database_url, pool,
                                                           tmp_path):
    jobset = await make_jobset(pool)
    script = "echo first-line; /bin/sleep 2; echo second-line; /bin/mkdir $out"
    drv = instantiate(tmp_path, f'mk {{ name = "chatty"; script = "{script}"; }}')
    build_id = await add_build(pool, jobset, "chatty", drv)
    listener = Bus(database_url)
    await listener.start()
    try:
        with listener.subscribe(BUILD_LOG) as sub:
            async with running_runner(make_config(), database_url):
                notes = await sub.wait(timeout=30)
                assert (BUILD_LOG, str(build_id)) in notes
                async with pool.acquire() as conn:
                    chunks = await logs.chunks_after(conn, build_id)
                    state = await conn.fetchval("SELECT state FROM builds WHERE id = $1",
                                                build_id)
                assert state == "running"
                text = "".join(data for _seq, data in chunks)
                assert "first-line\n" in text and "second-line" not in text
                assert all(data.endswith("\n") for _seq, data in chunks)
                row = await wait_finished(pool, build_id)
    finally:
        await listener.close()
    assert row["buildstatus"] == 0
    async with pool.acquire() as conn:
        assert "second-line" in await logs.read_log(conn, build_id)


def _processes_with(marker: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmdline:
                found.append(proc.name)
    return found


async def test_cancel_stops_a_running_build(make_config, database_url, pool, tmp_path):
    jobset = await make_jobset(pool)
    # A unique duration marks this build's sleep among every process on the machine.
    marker = f"60.{uuid.uuid4().int % 10**9:09d}"
    drv = instantiate(tmp_path, f'mk {{ name = "sleeper"; script = '
                                f'"echo going-to-sleep; /bin/sleep {marker}"; }}')
    build_id = await add_build(pool, jobset, "sleeper", drv)
    async with running_runner(make_config(), database_url):
        await wait_for(lambda: asyncio.to_thread(_processes_with, f"sleep {marker}"))
        # What the server's cancel does.
        await pool.execute(
            "UPDATE builds SET state = 'finished', buildstatus = 4, finished_at = now(), "
            "error_message = 'cancelled' WHERE id = $1", build_id)
        await pool.execute("SELECT pg_notify('circus_build_changed', $1)", str(build_id))
        await wait_for(lambda: _gone(marker), within=5)
    row = await wait_finished(pool, build_id)
    assert (row["state"], row["buildstatus"], row["error_message"]) == ("finished", 4,
                                                                       "cancelled")
    async with pool.acquire() as conn:
        assert "going-to-sleep" in await logs.read_log(conn, build_id)


async def _gone(marker: str) -> bool:
    return not await asyncio.to_thread(_processes_with, f"sleep {marker}")
