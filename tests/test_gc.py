"""[gc]: the runner's periodic sweep removes expired GC roots, except of kept builds, and
the binary cache stops offering exactly those outputs."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import ClientSession

from circus.nix.gcroots import GcRoots
from circus.nix.pathinfo import hash_part
from circus.runner import expiry
from tests.helpers.cache import Server, build_jobs
from tests.helpers.runner import running_runner


async def test_expired_roots_go_kept_stay_and_the_cache_follows(
        make_config, database_url, pool, tmp_path: Path, aiohttp_server):
    config = make_config({"gc": {"cleanup_interval": 1, "max_age_days": 30}})
    built = await build_jobs(config, database_url, pool, tmp_path)
    roots = Path(config.gc.gc_roots_dir)
    links = {job: roots / Path(path).name for job, path in built.outputs.items()}
    assert all(link.is_symlink() for link in links.values())

    # Both finished long ago; only dep is kept.
    await pool.execute("UPDATE builds SET finished_at = now() - interval '40 days'")
    await pool.execute("UPDATE builds SET keep = true WHERE id = $1", built.build_ids["dep"])
    # A sweep that finds nothing expired yet (recent builds) changes nothing.
    assert (await expiry.sweep(pool, GcRoots(roots), 50)).expired == 0

    async with running_runner(config, database_url):  # sweeps every second
        async with asyncio.timeout(30):
            while links["top"].is_symlink():  # noqa: ASYNC110 - the runner removes it
                await asyncio.sleep(0.1)
    assert links["dep"].is_symlink()

    server = await Server(aiohttp_server, config, pool, database_url).start()
    try:
        async with ClientSession(server.url) as s:
            for job, status in (("top", 404), ("dep", 200)):
                url = f"/nix-cache/{hash_part(built.outputs[job])}.narinfo"
                async with s.get(url) as r:
                    assert r.status == status, job
    finally:
        await server.close()
