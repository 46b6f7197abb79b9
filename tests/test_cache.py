"""The binary cache with the real `nix` client: Circus builds with the real runner, the
server serves, and Nix copies into a second, empty store."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from pathlib import Path

import pytest
from aiohttp import ClientSession

from circus.nix import narinfo, signing
from circus.nix.pathinfo import PathInfo, hash_part
from tests.helpers.cache import Server, build_jobs, make_key, run


@pytest.fixture
def key(tmp_path: Path) -> tuple[Path, str]:
    return make_key(tmp_path)


@pytest.fixture
async def built(make_config, database_url, pool, tmp_path, key):
    config = make_config({"signing": {"enabled": True, "key_file": str(key[0])}})
    return await build_jobs(config, database_url, pool, tmp_path)


@pytest.fixture
async def server(aiohttp_server, make_config, pool, database_url, key):
    config = make_config({"cache": {"secret_key_file": str(key[0])}})
    srv = await Server(aiohttp_server, config, pool, database_url).start()
    yield srv
    await srv.close()


async def copy_from(server: Server, store: Path, path: str, public_key: str,
                    tmp: Path) -> tuple[int, str, str]:
    return await run(["nix", "copy", "--from", f"{server.cache}?trusted=0", "--to",
                      str(store), path], tmp, trusted_public_keys=public_key)


@pytest.mark.parametrize("compression", sorted(narinfo.FORMATS))
async def test_nix_copy_of_output_and_dependency_with_each_compression(
        built, server, key, tmp_path, compression):
    server.config.cache.compression = compression
    store = tmp_path / "other-store"
    code, _, err = await copy_from(server, store, built.outputs["top"], key[1], tmp_path)
    assert code == 0, err
    for job in ("top", "dep"):
        copied = store / built.outputs[job].lstrip("/")
        assert copied.is_dir(), job
    assert _read(store / built.outputs["dep"].lstrip("/") / "data") == _read(
        Path(built.outputs["dep"], "data"))
    url = f"/nix-cache/{hash_part(built.outputs['top'])}.narinfo"
    async with _session(server) as session, session.get(url) as r:
        text = await r.text()
    assert f"Compression: {compression}" in text


async def test_nix_copies_from_the_server_root_as_from_a_hydra(built, server, key, tmp_path):
    # Hydra serves its cache at the root; `nix` given a Hydra URL must work unchanged.
    store = tmp_path / "other-store"
    code, _, err = await run(["nix", "copy", "--from", f"{server.url}?trusted=0", "--to",
                              str(store), built.outputs["top"]], tmp_path,
                             trusted_public_keys=key[1])
    assert code == 0, err
    assert (store / built.outputs["top"].lstrip("/")).is_dir()
    async with _session(server) as session:
        async with session.get("/nix-cache-info") as r:
            assert r.status == 200 and "StoreDir: /nix/store" in await r.text()
        async with session.get(f"/{'0' * 32}.narinfo") as r:
            assert r.status == 404


def _read(path: Path) -> str:
    return path.read_text()


def _session(server: Server) -> ClientSession:
    return ClientSession(server.url)


async def test_nix_copy_fails_with_a_wrong_key(built, server, tmp_path):
    _, wrong = make_key(tmp_path, "somebody-else-1")
    store = tmp_path / "other-store"
    code, _, err = await copy_from(server, store, built.outputs["top"], wrong, tmp_path)
    assert code != 0
    assert "lacks a valid signature" in err
    assert not (store / built.outputs["top"].lstrip("/")).exists()


async def test_path_info_from_the_cache_shows_the_signature(built, server, key, tmp_path):
    code, out, err = await run(["nix", "path-info", "--store", f"{server.cache}?trusted=0",
                                "--sigs", built.outputs["top"]], tmp_path)
    assert code == 0, err
    path, sig = out.split()[:2]
    assert path == built.outputs["top"]
    assert sig.startswith("circus-test-1:")
    code, out, err = await run(["nix", "path-info", "--json", built.outputs["top"]], tmp_path)
    info = PathInfo.from_json(json.loads(out)[0])
    assert signing.verify(key[1], info.fingerprint(), sig)


async def test_nix_store_realise_substitutes_from_circus(built, server, key, tmp_path):
    store = tmp_path / "client-store"
    drv = built.drvs["top"]
    # The client knows the derivation (not its outputs) and asks Circus for them.
    code, _, err = await run(["nix", "copy", "--derivation", "--to", str(store), drv], tmp_path)
    assert code == 0, err
    code, out, err = await run(
        ["nix-store", "--store", str(store), "--realise", drv], tmp_path,
        substituters=server.cache, trusted_public_keys=key[1])
    assert code == 0, err
    assert out.strip() == built.outputs["top"]
    assert f"copying path '{built.outputs['top']}' from '{server.cache}'" in err
    assert "building" not in err
    assert (store / built.outputs["top"].lstrip("/") / "uses").is_file()


async def test_only_paths_circus_built_are_served(built, server, tmp_path):
    unrelated = tmp_path / "unrelated.txt"
    unrelated.write_text("not built by circus\n")
    code, other, err = await run(["nix-store", "--add", str(unrelated)], tmp_path)
    assert code == 0, err
    other = other.strip()
    top = hash_part(built.outputs["top"])
    async with _session(server) as s:
        async with s.get("/nix-cache/nix-cache-info") as r:
            assert r.status == 200
            assert "StoreDir: /nix/store" in await r.text()
        for path in (f"/nix-cache/{top}.narinfo", f"/nix-cache/{top}"):
            async with s.get(path) as r:
                assert r.status == 200
                assert f"StorePath: {built.outputs['top']}" in await r.text()
        async with s.head(f"/nix-cache/{top}.narinfo") as r:
            assert r.status == 200
        async with s.head(f"/nix-cache/nar/{top}.nar") as r:
            assert r.status == 200 and int(r.headers["Content-Length"]) > 0
        for path in (f"/nix-cache/{hash_part(other)}.narinfo",
                     f"/nix-cache/nar/{hash_part(other)}.nar",
                     f"/nix-cache/nar/{hash_part(other)}.nar.zst",
                     "/nix-cache/" + "0" * 32 + ".narinfo",
                     "/nix-cache/not-a-hash.narinfo", "/nix-cache/nar/junk.nar.gz",
                     f"/nix-cache/nar/{top}.tar"):
            async with s.get(path) as r:
                assert r.status == 404, path
            async with s.head(path) as r:
                assert r.status == 404, path


async def test_build_signature_recorded_and_valid(built, pool, key, tmp_path):
    sig = await pool.fetchval("SELECT signature FROM builds WHERE id = $1",
                              built.build_ids["top"])
    assert sig and sig.startswith("circus-test-1:")
    _, out, _ = await run(["nix", "path-info", "--json", built.outputs["top"]], tmp_path)
    info = PathInfo.from_json(json.loads(out)[0])
    assert signing.verify(key[1], info.fingerprint(), sig)


async def test_a_large_nar_streams_in_constant_memory(make_config, database_url, pool,
                                                      tmp_path, server):
    body = """{ big = mk { name = "big"; script = "/bin/mkdir $out; echo @TAG@ > $out/tag;
      /bin/dd if=/dev/urandom of=$out/blob bs=1M count=48 2>/dev/null"; }; }"""
    built = await build_jobs(make_config(), database_url, pool, tmp_path, body, ("big",))
    big = hash_part(built.outputs["big"])
    for ext in (".nar", ".nar.zst"):
        tracemalloc.start()
        try:
            # curl, as Nix uses: only the server's memory is traced.
            proc = await asyncio.create_subprocess_exec(
                "curl", "-sf", "-o", "/dev/null", "-w", "%{size_download}",
                f"{server.url}/nix-cache/nar/{big}{ext}", stdout=asyncio.subprocess.PIPE)
            out, _ = await proc.communicate()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert proc.returncode == 0
        assert int(out) > 48 << 20
        # A NAR held in memory would be 48 MiB alone.
        assert peak < 16 << 20, f"{ext}: peak {peak} bytes"
