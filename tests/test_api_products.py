"""Build products: the list and the download, which never reads outside the product."""

from __future__ import annotations

import json
import subprocess
import uuid

import asyncpg
from aiohttp.test_utils import TestClient

from tests.helpers.api import insert_build, seed_jobset, seed_project

# A real store path: a file product, a directory product with a symlink out of the store
# and one up to its parent, and a sibling file outside the directory product.
BUILDER = (
    "/bin/mkdir -p $out/docs/sub && echo report > $out/report.html && "
    "echo index > $out/docs/index.html && echo deep > $out/docs/sub/deep.txt && "
    "echo secret > $out/secret.txt && /bin/ln -s /etc/passwd $out/docs/passwd && "
    "/bin/ln -s ../secret.txt $out/docs/sibling && /bin/ln -s sub $out/docs/inner"
)


def build_output() -> str:
    expr = (f'builtins.derivation {{ name = "products-{uuid.uuid4().hex[:8]}"; '
            f'system = builtins.currentSystem; builder = "/bin/sh"; '
            f'args = [ "-c" {json.dumps(BUILDER)} ]; }}')
    done = subprocess.run(["nix", "build", "--impure", "--no-link", "--json", "--expr", expr],
                          check=True, capture_output=True, text=True)
    return json.loads(done.stdout)[0]["outputs"]["out"]


async def test_download_never_escapes_the_product(client: TestClient,
                                                  pool: asyncpg.Pool) -> None:
    out = build_output()
    project = await seed_project(client)
    js = (await seed_jobset(client, project["id"]))["id"]
    build = await insert_build(pool, js, "docs", state="finished", buildstatus=0)
    await pool.execute("INSERT INTO build_outputs (build_id, name, path) VALUES ($1, 'out', $2)",
                       build, out)
    products = [(1, "file", "report.html", f"{out}/report.html", ""),
                (2, "doc", "docs", f"{out}/docs", "index.html"),
                # A build may claim any path as a product; outside its outputs it is refused.
                (3, "file", "passwd", "/etc/passwd", ""),
                (4, "doc", "store", "/nix/store", "")]
    await pool.executemany(
        "INSERT INTO build_products (build_id, product_nr, type, name, path, default_path) "
        "VALUES ($1, $2, $3, $4, $5, $6)", [(build, *p) for p in products])

    listed = await (await client.get(f"/api/v1/builds/{build}/products")).json()
    assert [p["name"] for p in listed["items"]] == ["report.html", "docs", "passwd", "store"]

    base = f"/api/v1/builds/{build}/products"
    resp = await client.get(f"{base}/1/download")
    assert resp.status == 200 and await resp.text() == "report\n"
    assert "report.html" in resp.headers["Content-Disposition"]
    resp = await client.get(f"{base}/2/download")  # the default path
    assert resp.status == 200 and await resp.text() == "index\n"
    resp = await client.get(f"{base}/2/download", params={"path": "sub/deep.txt"})
    assert resp.status == 200 and await resp.text() == "deep\n"
    resp = await client.get(f"{base}/2/download", params={"path": "inner/deep.txt"})
    assert resp.status == 200 and await resp.text() == "deep\n"  # a symlink that stays in

    refused = {
        "../secret.txt": 400, "sub/../../secret.txt": 400, "/etc/passwd": 400,
        f"{out}/secret.txt": 400, "passwd": 404, "sibling": 404, "sub": 404,
        "missing.txt": 404, "a\x00b": 400,
    }
    for path, status in refused.items():
        resp = await client.get(f"{base}/2/download", params={"path": path})
        assert resp.status == status, (path, resp.status, await resp.text())
        assert "error" in await resp.json()
    assert (await client.get(f"{base}/1/download", params={"path": "x"})).status == 400
    for nr in (3, 4):
        resp = await client.get(f"{base}/{nr}/download", params={"path": "etc/passwd"})
        assert resp.status == 404, nr
    assert (await client.get(f"{base}/3/download")).status == 404
    assert (await client.get(f"{base}/9/download")).status == 404
    assert (await client.get("/api/v1/builds/999999/products/1/download")).status == 404
    # Raw, unnormalised paths on the wire are refused too.
    resp = await client.get(f"{base}/2/download?path=..%2F..%2F..%2Fetc%2Fpasswd")
    assert resp.status == 400
