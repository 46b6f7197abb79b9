"""Build logs over HTTP: the whole text, and the live SSE stream across the fold."""

from __future__ import annotations

import asyncio
import json

import asyncpg
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from circus.db import embedded
from circus.store import logs as logstore
from tests.helpers.api import (
    insert_build,
    seed_jobset,
    seed_project,
)

# The `context` and `client` fixtures.


async def _running_build(client: TestClient, pool: asyncpg.Pool) -> int:
    project = await seed_project(client)
    jobset = await seed_jobset(client, project["id"])
    return await insert_build(pool, jobset["id"], "hello", state="running")


async def _next_event(resp: ClientResponse) -> tuple[str, str]:
    """(event, data) of the next SSE event, skipping pings."""
    event, data = "message", []
    while True:
        raw = await asyncio.wait_for(resp.content.readline(), 20)
        assert raw, "stream ended"
        line = raw.decode().rstrip("\r\n")
        if line == "":
            if data:
                return event, "\n".join(data)
            event = "message"
        elif line.startswith("event: "):
            event = line[len("event: "):]
        elif line.startswith("data: "):
            data.append(line[len("data: "):])


async def _log_until(resp: ClientResponse, needle: str) -> str:
    text = ""
    while needle not in text:
        event, data = await _next_event(resp)
        assert event == "message", (event, data)
        text += data + "\n"
    return text


async def _finish(pool: asyncpg.Pool, build_id: int, status: int) -> None:
    """What a runner does at the end: fold the log and finish, in one transaction."""
    async with pool.acquire() as conn, conn.transaction():
        await logstore.fold(conn, build_id)
        await conn.execute(
            "UPDATE builds SET state = 'finished', buildstatus = $2, finished_at = now() "
            "WHERE id = $1", build_id, status)
        await conn.execute("SELECT pg_notify('circus_build_changed', $1::text)", str(build_id))


async def test_log_joins_the_chunks(client: TestClient, pool: asyncpg.Pool) -> None:
    build = await _running_build(client, pool)
    async with pool.acquire() as conn:
        for seq, data in enumerate(["one\n", "two\nthree\n"]):
            await logstore.append_chunk(conn, build, seq, data)
    resp = await client.get(f"/api/v1/builds/{build}/log")
    assert resp.status == 200 and resp.content_type == "text/plain"
    assert await resp.text() == "one\ntwo\nthree\n"
    await _finish(pool, build, 0)
    assert await (await client.get(f"/api/v1/builds/{build}/log")).text() == "one\ntwo\nthree\n"
    assert (await client.get("/api/v1/builds/777/log")).status == 404
    assert (await client.get("/api/v1/builds/777/log/stream")).status == 404


async def test_stream_follows_a_running_build(client: TestClient, pool: asyncpg.Pool) -> None:
    build = await _running_build(client, pool)
    async with pool.acquire() as conn:
        await logstore.append_chunk(conn, build, 0, "first line\nsecond line\n")
    resp = await client.get(f"/api/v1/builds/{build}/log/stream")
    assert resp.status == 200 and resp.content_type == "text/event-stream"
    assert await _log_until(resp, "second line") == "first line\nsecond line\n"

    async with pool.acquire() as conn:
        await logstore.append_chunk(conn, build, 1, "third line\n")
    # Arrives while the build is still running.
    assert await _log_until(resp, "third line") == "third line\n"
    assert await pool.fetchval("SELECT state FROM builds WHERE id = $1", build) == "running"

    async with pool.acquire() as conn:
        await logstore.append_chunk(conn, build, 2, "last line\n")
    await _finish(pool, build, 1)
    text = ""
    while True:
        event, data = await _next_event(resp)
        if event == "done":
            break
        text += data + "\n"
    assert text == "last line\n"
    assert json.loads(data) == {"id": build, "state": "finished", "buildstatus": 1,
                                "status": "failed"}
    resp.close()


async def test_stream_of_a_finished_build_is_whole_then_done(client: TestClient,
                                                             pool: asyncpg.Pool) -> None:
    build = await _running_build(client, pool)
    async with pool.acquire() as conn:
        await logstore.append_chunk(conn, build, 0, "a\n\nb\n")
    await _finish(pool, build, 0)
    resp = await client.get(f"/api/v1/builds/{build}/log/stream")
    assert await _next_event(resp) == ("message", "a\n\nb")
    event, data = await _next_event(resp)
    assert event == "done" and json.loads(data)["status"] == "succeeded"
    assert await resp.content.read() == b""


async def test_stream_resumes_from_last_event_id(client: TestClient, pool: asyncpg.Pool) -> None:
    build = await _running_build(client, pool)
    async with pool.acquire() as conn:
        await logstore.append_chunk(conn, build, 0, "0123\n")
        await logstore.append_chunk(conn, build, 1, "4567\n")
    await _finish(pool, build, 0)
    resp = await client.get(f"/api/v1/builds/{build}/log/stream",
                            headers={"Last-Event-ID": "5"})
    assert await _next_event(resp) == ("message", "4567")


async def test_stream_hears_a_writer_in_another_process(client: TestClient, pool: asyncpg.Pool,
                                                        database_url: str) -> None:
    build = await _running_build(client, pool)
    resp = await client.get(f"/api/v1/builds/{build}/log/stream")
    assert resp.status == 200
    # As a runner on another machine would: a chunk and its NOTIFY from another process.
    sql = (f"INSERT INTO build_log_chunks VALUES ({build}, 0, 'from afar' || chr(10)); "
           f"SELECT pg_notify('circus_build_log', '{build}');")
    proc = await asyncio.create_subprocess_exec(
        str(embedded.bin_path() / "psql"), database_url, "-qc", sql,
        stdout=asyncio.subprocess.DEVNULL)
    assert await proc.wait() == 0
    assert await _log_until(resp, "from afar") == "from afar\n"
    resp.close()
