"""Issue 10, hole 7: unbounded logs. A build that prints past `logs.max_size` is stopped
with status 10 and its stored log stays within the limit; every log read is paged (tail
first, then byte ranges), so a 200 MiB log never sits in the server's memory."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp.test_utils import TestClient

from circus.app.config import Config
from circus.store import logs as logstore
from tests.helpers.api import ADMIN, insert_build, seed_jobset, seed_project
from tests.helpers.e2e import Circus
from tests.helpers.runner import (
    add_build,
    instantiate,
    make_jobset,
    running_runner,
    wait_finished,
    wait_for,
)

MiB = 1 << 20
LINE = "x" * 1023  # with its newline, a line of `yes LINE` is exactly 1 KiB


def _printer(total_bytes: int) -> str:
    """A builder script printing `total_bytes` of 1 KiB lines, cheaply (no coreutils in
    the builder's PATH; the absolute paths exist because the tests build unsandboxed)."""
    return (f"/usr/bin/yes {LINE} | /usr/bin/head -c {total_bytes}; "
            "echo done > $out")


async def _log_build(client: TestClient, pool: asyncpg.Pool, lines: int,
                     fold: bool) -> tuple[int, bytes]:
    """A build whose log is `line 00000`… (11 bytes a line), as chunks or folded."""
    project = await seed_project(client, f"paged{'-folded' if fold else ''}")
    jobset = await seed_jobset(client, project["id"])
    build = await insert_build(pool, jobset["id"], "paged", state="running")
    text = "".join(f"line {i:05d}\n" for i in range(lines))
    async with pool.acquire() as conn:
        for seq, start in enumerate(range(0, len(text), 4400)):
            await logstore.append_chunk(conn, build, seq, text[start:start + 4400])
        if fold:
            async with conn.transaction():
                await logstore.fold(conn, build)
                await conn.execute("UPDATE builds SET state = 'finished', buildstatus = 0, "
                                   "finished_at = now() WHERE id = $1", build)
    return build, text.encode()


async def _check_ranges(client: TestClient, build: int, whole: bytes) -> None:
    url = f"/api/v1/builds/{build}/log"
    size = len(whole)
    resp = await client.get(url)
    assert resp.status == 200 and await resp.read() == whole
    assert resp.headers["Accept-Ranges"] == "bytes"
    resp = await client.get(url, headers={"Range": "bytes=11-21"})
    assert resp.status == 206 and await resp.read() == b"line 00001\n"
    assert resp.headers["Content-Range"] == f"bytes 11-21/{size}"
    resp = await client.get(url, headers={"Range": "bytes=-22"})  # the tail
    assert resp.status == 206 and await resp.read() == whole[-22:]
    resp = await client.get(url, headers={"Range": f"bytes={size - 11}-"})
    assert resp.status == 206 and await resp.read() == whole[-11:]
    resp = await client.get(url + "?offset=22&limit=11")
    assert resp.status == 200 and await resp.read() == b"line 00002\n"
    assert resp.headers["X-Log-Size"] == str(size)
    resp = await client.get(url + f"?offset={size - 5}")
    assert await resp.read() == whole[-5:]
    resp = await client.get(url, headers={"Range": f"bytes={size}-"})
    assert resp.status == 416 and resp.headers["Content-Range"] == f"bytes */{size}"
    for query, headers, named in (("?offset=abc", {}, "offset"), ("?limit=-1", {}, "limit"),
                                  ("?offset=99999999999999999999", {}, "offset"),
                                  ("", {"Range": "bytes=9-3"}, "Range"),
                                  ("", {"Range": "bytes=0-1,5-6"}, "Range"),
                                  ("", {"Range": "lines=1-2"}, "Range")):
        resp = await client.get(url + query, headers=headers)
        assert resp.status == 400, (query, headers, resp.status)
        assert named in (await resp.json())["error"], (query, headers)


async def test_rest_log_pages_by_byte_range_live_and_folded(client: TestClient,
                                                          pool: asyncpg.Pool) -> None:
    live, whole = await _log_build(client, pool, 3000, fold=False)
    await _check_ranges(client, live, whole)
    await pool.execute("DELETE FROM builds WHERE id = $1", live)
    folded, whole = await _log_build(client, pool, 3000, fold=True)
    await _check_ranges(client, folded, whole)


async def test_every_log_view_opens_at_the_tail_and_pages_back(client: TestClient,
                                                               pool: asyncpg.Pool) -> None:
    """200 000 lines (2.1 MiB): the page, Hydra's tail and the dashboard's 'earlier' call
    send a bounded tail; bad paging input is a 400 naming the parameter on each."""
    build, whole = await _log_build(client, pool, 200_000, fold=True)
    resp = await client.get(f"/build/{build}")
    body = await resp.text()
    assert resp.status == 200
    assert "line 199999" in body and "line 00000" not in body
    assert len(body) < 512 * 1024, len(body)
    end = int(re.search(r'data-end="(\d+)"', body).group(1))
    assert 0 < end < len(whole) and whole[end - 1:end] == b"\n"
    more = await (await client.get(f"/dashboard/build/{build}/log?end={end}")).json()
    earlier = whole[more["start"]:end].decode()
    assert more["html"] == earlier and 0 < len(earlier) <= 1024 * 1024
    await pool.execute("INSERT INTO build_steps (build_id, step_nr, drv_path, kind, "
                       "started_at) VALUES ($1, 1, '/nix/store/x.drv', 'build', now())", build)
    for path in (f"/build/{build}/log/tail", f"/build/{build}/nixlog/1/tail"):
        tail = await client.get(path)
        lines = (await tail.text()).splitlines()
        assert tail.status == 200 and lines[-1] == "line 199999" and len(lines) == 50, path
    resp = await client.get(f"/build/{build}/nixlog/1/raw", headers={"Range": "bytes=-12"})
    assert resp.status == 206 and await resp.read() == b"line 199999\n"
    resp = await client.get(f"/build/{build}/log", headers={"Range": "bytes=0-10"})
    assert resp.status == 206 and await resp.read() == b"line 00000\n"
    assert (await client.get(f"/build/{build}/nixlog/2")).status == 404
    for path, named in ((f"/dashboard/build/{build}/log?end=x", "end"),
                        (f"/dashboard/build/{build}/log?lines=0", "lines"),
                        (f"/dashboard/build/{build}/log/live?offset=-3", "offset"),
                        (f"/build/{build}?lines=lots", "lines")):
        resp = await client.get(path)
        assert resp.status == 400, (path, resp.status)
        assert named in await resp.text(), path


async def test_a_build_printing_past_the_limit_ends_with_status_10(
        make_config: Callable[..., Config], database_url: str, pool: asyncpg.Pool,
        client: TestClient, tmp_path: Path) -> None:
    limit = 1 * MiB
    config = make_config({"logs": {"max_size": limit}})
    drv = instantiate(tmp_path, f'mk {{ name = "chatty"; script = "{_printer(64 * MiB)}"; }}')
    build = await add_build(pool, await make_jobset(pool), "chatty", drv)
    async with running_runner(config, database_url):
        row = await wait_finished(pool, build, within=120)
    assert row["buildstatus"] == 10, (row["buildstatus"], row["error_message"])
    stored = await pool.fetchval("SELECT size FROM build_logs WHERE build_id = $1", build)
    text = (await (await client.get(f"/api/v1/builds/{build}/log")).read()).decode()
    last = text.splitlines()[-1]
    assert "log limit of 1048576 bytes exceeded" in last, last
    assert stored == len(text.encode()) <= limit + len(last) + 1, stored
    answer = await (await client.get(f"/api/v1/builds/{build}", headers=ADMIN)).json()
    assert answer["buildstatus"] == 10 and answer["status"] == "log-limit-exceeded", answer
    hydra = await (await client.get(f"/build/{build}",
                                    headers={"Accept": "application/json"})).json()
    assert hydra["buildstatus"] == 10


# --- 200 MiB from one build, ten readers --------------------------------------------------

HUGE = 200 * MiB
# The server's peak resident memory while ten clients read the log. Python, aiohttp,
# jinja2 and asyncpg start at about 70-90 MiB; one copy of the log would be 200 MiB as
# bytes and again as str, so any whole-log read breaks this bound.
RSS_BOUND = 300 * MiB
# Past this the old code is stopped before it takes the machine down with it.
RSS_ABORT = 1024 * MiB


def _vm(pid: int, field: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", status, re.M).group(1)) * 1024


async def _guard(server: Circus, peak: list[int]) -> None:
    pid = server.proc.pid  # type: ignore[union-attr]
    while True:
        peak.append(_vm(pid, "VmHWM"))
        if _vm(pid, "VmRSS") > RSS_ABORT:
            server.signal(signal.SIGKILL)
            return
        await asyncio.sleep(0.2)


async def _read_all(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url) as resp:
        assert resp.status == 200, (url, resp.status)
        total = 0
        async for piece in resp.content.iter_chunked(1 << 20):
            total += len(piece)
        return total


async def _read_sse(session: aiohttp.ClientSession, url: str) -> int:
    """Lines of log carried by the stream (one `data:` line each) until `done`."""
    wanted = b"data: " + LINE.encode()
    async with session.get(url) as resp:
        assert resp.status == 200, (url, resp.status)
        count, carry = 0, b""
        async for piece in resp.content.iter_chunked(1 << 20):
            lines = (carry + piece).split(b"\n")
            carry = lines.pop()
            for line in lines:
                line = line.rstrip(b"\r")
                if line == wanted:
                    count += 1
                elif line == b"event: done":
                    return count
        raise AssertionError(f"{url}: the stream ended without `done`")


async def _reader(base: str, build: int, n: int) -> tuple[int, int, int]:
    """One client: the dashboard page, the whole REST log, the API's SSE stream and the
    dashboard's live log from where the page left off."""
    timeout = aiohttp.ClientTimeout(total=900, sock_read=300)
    async with aiohttp.ClientSession(base, timeout=timeout) as session:
        async with session.get(f"/build/{build}") as resp:
            page = await resp.text()
            assert resp.status == 200 and len(page) < 1024 * 1024, (resp.status, len(page))
        offset = re.search(r'data-offset="(\d+)"', page).group(1)
        rest = await _read_all(session, f"/api/v1/builds/{build}/log")
        sse = await _read_sse(session, f"/api/v1/builds/{build}/log/stream")
        live = 0
        if n % 2 == 0:
            async with session.get(f"/dashboard/build/{build}/log/live?offset={offset}") as r:
                async for piece in r.content.iter_chunked(1 << 20):
                    live += len(piece)
        return rest, sse, live


async def test_ten_readers_of_a_200_mib_log_keep_the_server_small(
        make_config: Callable[..., Config], database_url: str, pool: asyncpg.Pool,
        tmp_path: Path) -> None:
    config = make_config({"logs": {"max_size": 256 * MiB}})
    drv = instantiate(tmp_path, f'mk {{ name = "huge"; script = "{_printer(HUGE)}"; }}')
    build = await add_build(pool, await make_jobset(pool), "huge", drv)
    # Ten readers from one address: more than the per-client stream cap allows by default.
    server = Circus(tmp_path, database_url, "server", "server",
                    settings={"CIRCUS_SERVER__MAX_STREAMS_PER_CLIENT": "64"}).start()
    peak: list[int] = []
    guard = asyncio.create_task(_guard(server, peak))
    started = time.monotonic()
    try:
        baseline = _vm(server.proc.pid, "VmHWM")  # type: ignore[union-attr]
        async with running_runner(config, database_url):
            # Half the readers come while the build runs and follow it live ...
            await wait_for(lambda: pool.fetchval(
                "SELECT count(*) > 3 FROM build_log_chunks WHERE build_id = $1", build), 120)
            early = [asyncio.create_task(_reader(server.url, build, n)) for n in range(5)]
            row = await wait_finished(pool, build, within=600)
        # ... and half read the folded log.
        late = [asyncio.create_task(_reader(server.url, build, n)) for n in range(5, 10)]
        results = await asyncio.gather(*early, *late, return_exceptions=True)
    finally:
        guard.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await guard
        server.stop()
    size = await pool.fetchval("SELECT log_size FROM builds WHERE id = $1", build)
    print(f"server VmHWM: {baseline / MiB:.0f} MiB at start, {max(peak) / MiB:.0f} MiB peak "
          f"while 10 clients read a {size / MiB:.0f} MiB log "
          f"({time.monotonic() - started:.0f} s)")
    assert max(peak) < RSS_BOUND, f"peak RSS {max(peak) / MiB:.0f} MiB"
    assert row["buildstatus"] == 0 and size >= HUGE, (row["buildstatus"], size)
    failed = [r for r in results if isinstance(r, BaseException)]
    assert not failed, failed
    for n, (rest, sse, live) in enumerate(results):
        assert rest > 0 and sse == HUGE // 1024 and (live > 0 or n % 2), (n, rest, sse, live)
    # The late readers saw the whole folded log.
    assert all(rest == size for rest, _sse, _live in results[5:])
