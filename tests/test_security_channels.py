"""Issue 10, hole 11 (channels): job names that are Nix keywords (or not identifiers at
all) must not break a channel's `nixexprs.tar.xz`, and the channel's `binary-cache-url`
must not come from the request's `Host` header unless the configuration says so.

Real builds by the real runner role, the server on a real port, the real PostgreSQL, and
Nix itself reading the unpacked expression.
"""

from __future__ import annotations

import io
import json
import lzma
import tarfile
from pathlib import Path

import asyncpg
from aiohttp import ClientSession

from tests.helpers.api import ADMIN
from tests.helpers.cache import Server, instantiate_attrs, run
from tests.helpers.runner import add_build, make_jobset, running_runner, wait_finished

KEYWORDS = ("let", "in", "rec", "if", "then", "else", "assert", "with", "inherit", "or")
# Job names as an evaluator may report them: keywords, and names that are no identifier.
JOB_NAMES = (*KEYWORDS, "two words", 'q"uote${x}\\', "dotted.name", "9lives", "--")
BODY = "{\n" + "".join(
    f'  j{i} = mk {{ name = "kw-{i}"; script = "/bin/mkdir $out; echo {i} > $out/n"; }};\n'
    for i in range(len(JOB_NAMES))) + (
    '  outs = mk { name = "outs"; script = "/bin/mkdir $out $let $in"; '
    'extra = { outputs = [ "out" "let" "in" ]; }; };\n}\n')


async def _green_channel(config, database_url: str, pool: asyncpg.Pool, tmp: Path,
                         server: Server) -> dict[str, dict[str, str]]:
    """A channel on an evaluation whose builds (named JOB_NAMES, plus `inherit.outs` with
    keyword outputs) all succeeded; returns job → output name → path."""
    jobset = await make_jobset(pool)
    drvs = instantiate_attrs(tmp, BODY, [f"j{i}" for i in range(len(JOB_NAMES))] + ["outs"])
    evaluation = await pool.fetchval(
        "INSERT INTO evaluations (jobset_id, status, commit_hash, inputs_hash, finished_at) "
        "VALUES ($1, 'succeeded', $2, $2, now()) RETURNING id", jobset[1], "c" * 40)
    async with ClientSession(server.url) as s:
        body = {"name": "kw", "project_id": jobset[0], "jobset_id": jobset[1]}
        async with s.post("/api/v1/channels", json=body, headers=ADMIN) as r:
            assert r.status == 201, await r.text()
    names = {**{f"j{i}": n for i, n in enumerate(JOB_NAMES)}, "outs": "inherit.outs"}
    ids = {attr: await add_build(pool, jobset, job, drvs[attr]) for attr, job in names.items()}
    for build_id in ids.values():
        await pool.execute("INSERT INTO evaluation_builds (evaluation_id, build_id) "
                           "VALUES ($1, $2)", evaluation, build_id)
    async with running_runner(config, database_url):
        for build_id in ids.values():
            assert (await wait_finished(pool, build_id))["buildstatus"] == 0
    assert await pool.fetchval("SELECT current_evaluation_id FROM channels") == evaluation
    outputs: dict[str, dict[str, str]] = {}
    for attr, build_id in ids.items():
        rows = await pool.fetch("SELECT name, path FROM build_outputs WHERE build_id = $1",
                                build_id)
        outputs[names[attr]] = {r["name"]: r["path"] for r in rows}
    return outputs


async def test_keyword_job_names_give_an_expression_nix_reads(make_config, database_url, pool,
                                                              tmp_path: Path, aiohttp_server):
    config = make_config()
    server = await Server(aiohttp_server, config, pool, database_url).start()
    try:
        built = await _green_channel(config, database_url, pool, tmp_path, server)
        async with ClientSession(server.url) as s, s.get("/channel/kw/nixexprs.tar.xz") as r:
            assert r.status == 200
            data = await r.read()
    finally:
        await server.close()
    unpacked = tmp_path / "unpacked"
    with tarfile.open(fileobj=io.BytesIO(lzma.decompress(data))) as tar:
        tar.extractall(unpacked, filter="data")
    expr = (f"builtins.mapAttrs (n: v: builtins.listToAttrs (map (o: {{ name = o; "
            f"value = v.${{o}}.outPath; }}) v.outputs)) (import {unpacked / 'kw'} {{}})")
    code, out, err = await run(["nix-instantiate", "--eval", "--strict", "--json", "-E",
                                expr], tmp_path)
    assert code == 0, err
    assert json.loads(out) == built


async def _cache_url(server: Server, host: str = "evil.example") -> tuple[int, str]:
    async with ClientSession(server.url) as s, \
            s.get("/channel/kw/binary-cache-url", headers={"Host": host}) as r:
        return r.status, await r.text()


async def test_binary_cache_url_ignores_the_host_header(make_config, database_url, pool,
                                                        tmp_path: Path, aiohttp_server):
    config = make_config()
    server = await Server(aiohttp_server, config, pool, database_url).start()
    try:
        await _green_channel(config, database_url, pool, tmp_path, server)
        # Nothing configured: the server's own address, whatever Host the client sent.
        assert await _cache_url(server) == (
            200, f"http://127.0.0.1:{config.server.port}/nix-cache")
        # Listening on every interface, the server has no address of its own to name.
        config.server.host = "0.0.0.0"  # the server reads its config per request
        status, body = await _cache_url(server)
        assert status == 404 and "cache.cache_url" in json.loads(body)["error"]
        assert "evil.example" not in body
        # Only when told to does it trust the Host header; a configured URL wins over all.
        config.server.trust_host_header = True
        assert await _cache_url(server) == (200, "http://evil.example/nix-cache")
        config.cache.cache_url = "https://ci.example.org/nix-cache"
        assert await _cache_url(server) == (200, "https://ci.example.org/nix-cache")
    finally:
        await server.close()
