"""Logs: chunks while running, one zstd blob after, the same text either way."""

from __future__ import annotations

from circus.db.bus import BUILD_LOG, Bus
from circus.store import logs
from tests.helpers.runner import add_build, make_jobset


async def test_chunks_then_folded_log_read_the_same(pool, database_url):
    jobset = await make_jobset(pool)
    build_id = await add_build(pool, jobset, "job", "/nix/store/x-job.drv")
    bus = Bus(database_url)
    await bus.start()
    try:
        with bus.subscribe(BUILD_LOG) as sub:
            async with pool.acquire() as conn:
                assert await logs.read_log(conn, build_id) is None
                await logs.append_chunk(conn, build_id, 0, "one\ntwo\n")
                await logs.append_chunk(conn, build_id, 1, "three \x00 nul\n")
                assert await sub.wait(timeout=10) != []
                assert await logs.chunks_after(conn, build_id, 0) == [
                    (1, "three \ufffd nul\n")]
                live = await logs.read_log(conn, build_id)
                async with conn.transaction():
                    size = await logs.fold(conn, build_id)
                assert await logs.chunks_after(conn, build_id) == []
                assert await logs.read_log(conn, build_id) == live
    finally:
        await bus.close()
    assert live == "one\ntwo\nthree \ufffd nul\n"
    assert size == len(live.encode())
    assert await pool.fetchval("SELECT log_size FROM builds WHERE id = $1", build_id) == size
