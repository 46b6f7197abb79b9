"""Binary cache throughput: a 512 MiB output served as a NAR (none and zstd) by a real
`circus run --roles=server`, beside `nix-store --dump <path> | cat > /dev/null` on the
same path in the same run; and narinfo requests/s with 16 concurrent clients.

    .venv/bin/python bench/cache.py [--size-mib 512] [--seconds 5] [--clients 16]

NAR throughput is NAR bytes per second of wall time as `curl -o /dev/null` receives the
body (for zstd: uncompressed NAR bytes, what the client ends up with); best of three.
The output is half random bytes, half base64 text, so zstd has something to do.
`--narinfo-client URL HASH` is the load generator this script starts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp
import asyncpg

from circus.app.config import structure
from circus.db import embedded, migrations
from circus.nix.pathinfo import hash_part
from circus.runner.publish import Publisher

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
NIX_CONFIG = ("experimental-features = nix-command\nsubstituters =\nsandbox = false\n"
              "build-users-group =\n")  # single-user Nix: no nixbld group needed

EXPR = """
builtins.derivation {{
  name = "circus-bench-nar-{mib}";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" ''
    /bin/mkdir $out
    /bin/head -c {half}M /dev/urandom > $out/random.bin
    /bin/head -c {raw}M /dev/urandom | /usr/bin/base64 > $out/text.b64
  '' ];
}}
"""


def build_output(mib: int, tmp: Path) -> str:
    half = mib // 2
    expr = tmp / "bench.nix"
    # base64 grows its input by 4/3: this much raw input makes `half` MiB of text.
    expr.write_text(EXPR.format(mib=mib, half=half, raw=half * 3 // 4))
    out = subprocess.run(["nix", "build", "--no-link", "--json", "-f", str(expr)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)[0]["outputs"]["out"]


def nar_size(path: str) -> int:
    out = subprocess.run(["nix", "path-info", "--json", path], check=True,
                         capture_output=True, text=True).stdout
    return int(json.loads(out)[0]["narSize"])


def best_of(n: int, argv: list[str], shell: bool = False) -> float:
    times = []
    for _ in range(n):
        started = time.monotonic()
        subprocess.run(argv[0] if shell else argv, shell=shell, check=True,
                       stdout=subprocess.DEVNULL)
        times.append(time.monotonic() - started)
    return min(times)


async def prepare_database(server: embedded.EmbeddedPostgres, path: str) -> str:
    admin = await asyncpg.connect(server.admin_url())
    await admin.execute("DROP DATABASE IF EXISTS bench_cache")
    await admin.execute("CREATE DATABASE bench_cache")
    await admin.close()
    url = server.admin_url("bench_cache")
    conn = await asyncpg.connect(url)
    await migrations.up(conn)
    build_id = await conn.fetchval("""
        WITH p AS (INSERT INTO projects (name, repository_url) VALUES ('bench', 'file:///b')
                   RETURNING id),
             j AS (INSERT INTO jobsets (project_id, name) SELECT id, 'main' FROM p RETURNING *)
        INSERT INTO builds (project_id, jobset_id, job, drv_path, system, state, buildstatus)
        SELECT project_id, id, 'nar', '/nix/store/x.drv', 'x', 'finished', 0 FROM j
        RETURNING id""")
    await conn.close()
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    config = structure({"database": {"url": url}})
    # The runner's own step after a successful build: catalogue the closure.
    await Publisher.from_config(config, pool).publish(build_id, {"out": path})
    await pool.close()
    return url


@contextlib.contextmanager
def circus_server(url: str, port: int, tmp: Path, key: Path):
    env = {**os.environ, "NIX_CONFIG": NIX_CONFIG, "CIRCUS_DATABASE__URL": url,
           "CIRCUS_SERVER__PORT": str(port), "CIRCUS_STATE_DIR": str(tmp / "state"),
           "CIRCUS_CACHE__SECRET_KEY_FILE": str(key), "CIRCUS_TRACING__LEVEL": "warn"}
    proc = subprocess.Popen([sys.executable, "-m", "circus.cli", "run", "--roles=server"],
                            env=env, cwd=tmp, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


async def narinfo_client(url: str, clients: int, seconds: float) -> None:
    """Hammer one narinfo with `clients` concurrent keep-alive connections."""
    done = 0
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                async with session.get(url) as resp:
                    await resp.read()
                    assert resp.status == 200, resp.status
                done += 1

        started = time.monotonic()
        await asyncio.gather(*(one() for _ in range(clients)))
        elapsed = time.monotonic() - started
    print(json.dumps({"requests": done, "seconds": elapsed}))


def narinfo_load(url: str, clients: int, seconds: float) -> dict:
    """Requests/s on one narinfo. wrk (C, apt-get install wrk) when present: a Python
    client on the same 2 cores would measure itself as much as the server."""
    if shutil.which("wrk"):
        out = subprocess.run(["wrk", "-t2", f"-c{clients}", f"-d{seconds}s", url],
                             check=True, capture_output=True, text=True).stdout
        total = int(re.search(r"(\d+) requests in", out)[1])  # type: ignore[index]
        if "Non-2xx" in out:
            raise RuntimeError(f"narinfo answered errors under load:\n{out}")
        return {"requests": total, "seconds": seconds, "client": "wrk"}
    out = subprocess.run(
        [sys.executable, str(HERE), "--narinfo-client", url, "--clients", str(clients),
         "--seconds", str(seconds)], check=True, capture_output=True, text=True).stdout
    return {**json.loads(out), "client": "aiohttp"}


def free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--narinfo-client", nargs=1)
    args = parser.parse_args()
    if args.narinfo_client:
        asyncio.run(narinfo_client(args.narinfo_client[0], args.clients, args.seconds))
        return
    os.environ["NIX_CONFIG"] = NIX_CONFIG
    with tempfile.TemporaryDirectory(prefix="circus-bench-cache-") as raw:
        tmp = Path(raw)
        path = build_output(args.size_mib, tmp)
        size = nar_size(path)
        subprocess.run(["nix-store", "--generate-binary-cache-key", "bench-1",
                        str(tmp / "key.sec"), str(tmp / "key.pub")], check=True)
        pg = embedded.EmbeddedPostgres(tmp / "postgres")
        pg.start()
        try:
            url = asyncio.run(prepare_database(pg, path))
            port = free_port()
            with circus_server(url, port, tmp, tmp / "key.sec"):
                base = f"http://127.0.0.1:{port}/nix-cache"
                h = hash_part(path)
                # Warm the page cache so every contender reads from memory.
                best_of(1, [f"nix-store --dump {path} > /dev/null"], shell=True)
                dump = best_of(3, [f"nix-store --dump {path} | cat > /dev/null"], shell=True)
                none = best_of(3, ["curl", "-sf", "-o", "/dev/null", f"{base}/nar/{h}.nar"])
                zstd = best_of(3, ["curl", "-sf", "-o", "/dev/null", f"{base}/nar/{h}.nar.zst"])
                load = narinfo_load(f"{base}/{h}.narinfo", args.clients, args.seconds)
        finally:
            pg.stop("immediate")
    mb = size / 1e6

    def rate(seconds: float) -> float:
        return round(mb / seconds, 1)

    print(f"NAR of {path} ({size / 2**20:.0f} MiB, {os.cpu_count()} CPUs)")
    print(f"  nix-store --dump | cat > /dev/null : {rate(dump):8.1f} MB/s")
    print(f"  GET .nar (none)                    : {rate(none):8.1f} MB/s "
          f"({100 * dump / none:.0f} % of nix-store --dump; target >= 80 %)")
    print(f"  GET .nar.zst (zstd)                : {rate(zstd):8.1f} MB/s (target >= 250)")
    print(f"narinfo, {args.clients} concurrent clients ({load['client']}): "
          f"{load['requests'] / load['seconds']:.0f} requests/s (target > 5000)")


if __name__ == "__main__":
    main()
