"""Channels: a channel advances only after a fully green evaluation (promoted by the
runner as builds finish), serves its revision, paths and a nixexprs Nix can import."""

from __future__ import annotations

import json
import lzma
from pathlib import Path

from aiohttp import ClientSession

from tests.helpers.api import ADMIN, READONLY_KEY, bearer
from tests.helpers.cache import PAIR, Server, build_jobs, make_jobset, run

WITH_BROKEN = PAIR.replace("in {", 'in {\n  broken = mk { name = "broken"; script = "exit 1"; };')


async def _evaluation(pool, jobset: tuple[int, int], commit: str) -> int:
    return await pool.fetchval(
        "INSERT INTO evaluations (jobset_id, status, commit_hash, inputs_hash, finished_at) "
        "VALUES ($1, 'succeeded', $2, $2, now()) RETURNING id", jobset[1], commit)


def _member_of(pool, evaluation_id: int):
    async def link(ids: dict[str, int]) -> None:
        for build_id in ids.values():
            await pool.execute("INSERT INTO evaluation_builds (evaluation_id, build_id) "
                               "VALUES ($1, $2)", evaluation_id, build_id)
    return link


async def test_channel_follows_only_green_evaluations(make_config, database_url, pool,
                                                      tmp_path: Path, aiohttp_server):
    config = make_config()
    jobset = await make_jobset(pool)
    other = await pool.fetchval("INSERT INTO jobsets (project_id, name) VALUES ($1, 'other') "
                                "RETURNING id", jobset[0])
    server = await Server(aiohttp_server, config, pool, database_url).start()
    try:
        async with ClientSession(server.url) as s:
            body = {"name": "stable", "project_id": jobset[0], "jobset_id": jobset[1]}
            async with s.post("/api/v1/channels", json=body, headers=bearer(READONLY_KEY)) as r:
                assert r.status == 403
            async with s.post("/api/v1/channels", json={**body, "jobset_id": other + 99},
                              headers=ADMIN) as r:
                # The body names a jobset that does not exist (in that project).
                assert r.status == 404
                assert f"jobset {other + 99} of project" in (await r.json())["error"]
            async with s.post("/api/v1/channels", json=body, headers=ADMIN) as r:
                assert r.status == 201, await r.text()
                channel = await r.json()
            async with s.post("/api/v1/channels", json=body, headers=ADMIN) as r:
                assert r.status == 409
            assert channel["current_evaluation_id"] is None
            for path in ("/channel/stable/git-revision", "/channel/stable/store-paths.xz",
                         "/channel/stable/binary-cache-url",
                         f"/api/v1/channels/{channel['id']}/nixexprs.tar.xz",
                         "/channel/nope/git-revision"):
                async with s.get(path) as r:
                    assert r.status == 404, path

            # Evaluation 1 has a failing job: the channel does not move.
            red = await _evaluation(pool, jobset, "a" * 40)
            await build_jobs(config, database_url, pool, tmp_path / "red", WITH_BROKEN,
                             ("dep", "top", "broken"), jobset, _member_of(pool, red))
            async with s.get("/channel/stable/git-revision") as r:
                assert r.status == 404

            # Evaluation 2 is green: the runner promotes it as its last build finishes.
            green = await _evaluation(pool, jobset, "b" * 40)
            built = await build_jobs(config, database_url, pool, tmp_path / "green", PAIR,
                                     ("dep", "top"), jobset, _member_of(pool, green))
            assert await pool.fetchval("SELECT current_evaluation_id FROM channels") == green
            async with s.get("/channel/stable/git-revision") as r:
                assert (r.status, await r.text()) == (200, "b" * 40)
            async with s.get("/channel/stable/binary-cache-url") as r:
                # Not from the Host header (issue 10): the configured listening address.
                assert await r.text() == f"http://127.0.0.1:{config.server.port}/nix-cache"
            async with s.get("/channel/stable/store-paths.xz") as r:
                paths = lzma.decompress(await r.read()).decode().split()
            assert sorted(paths) == sorted(built.outputs.values())
            async with s.get(f"/api/v1/projects/{jobset[0]}/channels") as r:
                listed = await r.json()
            assert [(c["name"], c["current_evaluation_id"]) for c in listed["items"]] == [
                ("stable", green)]

            # Nix imports the channel's expression and lists the jobs.
            url = f"{server.url}/api/v1/channels/{channel['id']}/nixexprs.tar.xz"
            expr = (f'builtins.mapAttrs (n: v: v.outPath) '
                    f'(import (builtins.fetchTarball "{url}") {{}})')
            code, out, err = await run(["nix-instantiate", "--eval", "--strict", "--json",
                                        "-E", expr], tmp_path)
            assert code == 0, err
            assert json.loads(out) == built.outputs

            # Manual promotion: back to the red evaluation; not one of another jobset.
            async with s.post(f"/api/v1/channels/{channel['id']}/promote/{red}",
                              headers=ADMIN) as r:
                assert r.status == 200, await r.text()
                assert (await r.json())["current_evaluation_id"] == red
            foreign = await pool.fetchval(
                "INSERT INTO evaluations (jobset_id, status, commit_hash, inputs_hash) "
                "VALUES ($1, 'succeeded', 'c', 'c') RETURNING id", other)
            for eval_id, status in ((foreign, 409), (foreign + 1000, 404)):
                async with s.post(f"/api/v1/channels/{channel['id']}/promote/{eval_id}",
                                  headers=ADMIN) as r:
                    assert r.status == status
            async with s.get(f"/api/v1/channels/{channel['id']}") as r:
                assert (await r.json())["current_evaluation_id"] == red
            async with s.get("/channel/stable/git-revision") as r:
                assert await r.text() == "a" * 40
            async with s.delete(f"/api/v1/channels/{channel['id']}", headers=ADMIN) as r:
                assert r.status == 200
            async with s.get(f"/api/v1/channels/{channel['id']}") as r:
                assert r.status == 404
    finally:
        await server.close()
