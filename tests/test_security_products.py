"""Issue 10, hole 1: a build author must not read the host's files through a product.

Attacked against a real `circus run` (evaluator, runner and server) building a flake from
a real git repository: an output that is a symlink to `/`, products naming host files,
`/proc/kmsg`, a FIFO, symlinks out of the output, and a `nix-support` directory that is a
symlink to a directory of the host. Nothing of the host may be downloaded, hashed, sized,
or read as metrics, and the scan must not hang.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.parse
from pathlib import Path

import asyncpg
import pytest

from tests.helpers.e2e import (
    NONCE,
    Circus,
    create_flake_project,
    host_system,
    trigger_and_wait_eval,
    wait_all_finished,
)
from tests.helpers.repos import commit_files, git

pytestmark = pytest.mark.slow
PASSWD = Path("/etc/passwd").read_text()

FLAKE = """
{
  outputs = { self }:
    let
      mk = name: script: builtins.derivation {
        inherit name; system = "@SYSTEM@"; nonce = "@NONCE@";
        builder = "/bin/sh"; args = [ "-c" script ];
      };
    in {
      hydraJobs = {
        evil = mk "evil" "/bin/ln -s / $out";
        claims = mk "claims" ''
          /bin/mkdir -p $out/nix-support $out/docs
          echo ok > $out/docs/index.html
          /bin/ln -s / $out/docs/root
          /bin/ln -s @HOST@/secret.txt $out/secret-link
          /bin/ln -s @HOST@/fifo $out/fifo-link
          p=$out/nix-support/hydra-build-products
          echo "file binary-dist /proc/kmsg" > $p
          echo "file binary-dist /etc/passwd" >> $p
          echo "file binary-dist @HOST@/secret.txt" >> $p
          echo "file binary-dist @HOST@/fifo" >> $p
          echo "file binary-dist $out/secret-link" >> $p
          echo "file binary-dist $out/fifo-link" >> $p
          echo "file binary-dist $out/../$(/bin/basename $out)/secret-link" >> $p
          echo "doc escape $out/docs/root" >> $p
          echo "doc manual $out/docs index.html" >> $p
          echo "file binary-dist $out/docs/index.html" >> $p
        '';
        spy = mk "spy" "/bin/mkdir $out; /bin/ln -s @HOST@/support $out/nix-support";
      };
    };
}
"""


def _host_dir(tmp_path: Path) -> tuple[Path, str]:
    """Files of the host a build points at; returns the dir and the secret's sha256."""
    host = tmp_path / "host"
    (host / "support").mkdir(parents=True)
    secret = f"TOPSECRET-{NONCE}\n"
    (host / "secret.txt").write_text(secret)
    os.mkfifo(host / "fifo")
    (host / "support" / "hydra-build-products").write_text(
        f"file binary-dist {host}/secret.txt\n")
    (host / "support" / "hydra-metrics").write_text("leaked.secret 42\n")
    (host / "support" / "failed").write_text("")
    return host, hashlib.sha256(secret.encode()).hexdigest()


def _repo(tmp_path: Path, host: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    text = (FLAKE.replace("@SYSTEM@", host_system()).replace("@NONCE@", NONCE)
            .replace("@HOST@", str(host)))
    commit_files(repo, {"flake.nix": text}, "evil jobs")
    return repo


def _download(api: Circus, build: int, nr: int, path: str | None = None) -> tuple[int, str]:
    query = "" if path is None else "?path=" + urllib.parse.quote(path, safe="")
    status, body = api.request("GET", f"/api/v1/builds/{build}/products/{nr}/download{query}")
    return status, body if isinstance(body, str) else json.dumps(body)


async def test_products_never_read_outside_the_outputs(tmp_path: Path, database_url: str,
                                                       pool: asyncpg.Pool) -> None:
    host, secret_sha = _host_dir(tmp_path)
    api = Circus(tmp_path, database_url, "server,evaluator,runner", "all").start()
    try:
        _, jobset = create_flake_project(api, _repo(tmp_path, host), "evil")
        evaluation = trigger_and_wait_eval(api, jobset, 0)
        assert evaluation["status"] == "succeeded", evaluation
        # A hung product scan (reading /proc/kmsg or a FIFO) never finishes the build.
        builds = wait_all_finished(api, evaluation["id"], timeout=90)
        ids = {job: b["id"] for job, b in builds.items()}
        details = {job: api.get(f"/api/v1/builds/{i}") for job, i in ids.items()}
        outs = {job: d["outputs"][0]["path"] for job, d in details.items()}

        # The runner recorded only products inside the outputs, sized and hashed only those.
        products = api.get(f"/api/v1/builds/{ids['claims']}/products")["items"]
        assert [(p["type"], p["subtype"], p["path"]) for p in products] == [
            ("doc", "manual", f"{outs['claims']}/docs"),
            ("file", "binary-dist", f"{outs['claims']}/docs/index.html")]
        assert products[1]["sha256"] == hashlib.sha256(b"ok\n").hexdigest()
        assert products[1]["file_size"] == 3
        listed = json.dumps([api.get(f"/api/v1/builds/{i}/products") for i in ids.values()])
        assert secret_sha not in listed and str(host) not in listed and "/proc" not in listed
        # An output that is a symlink to / offers nothing; nix-support out of the output
        # is not read: no host metrics, no "failed with output" from a host file.
        assert api.get(f"/api/v1/builds/{ids['evil']}/products")["items"] == []
        assert details["spy"]["metrics"] == [] and details["spy"]["buildstatus"] == 0
        assert [p["type"] for p in details["spy"]["products"]] == ["nix-build"]

        # The server's download: a product row as an older runner recorded it (the output
        # itself, or a symlink inside it) still never serves a host file.
        rows = [(ids["evil"], 7, "nix-build", outs["evil"]),
                (ids["claims"], 7, "doc", f"{outs['claims']}/docs/root"),
                (ids["claims"], 8, "file", f"{outs['claims']}/secret-link"),
                (ids["claims"], 9, "file", f"{outs['claims']}/fifo-link"),
                (ids["claims"], 10, "file", str(host / "secret.txt"))]
        await pool.executemany(
            "INSERT INTO build_products (build_id, product_nr, type, name, path) "
            "VALUES ($1, $2, $3, 'x', $4)", rows)
        attacks = [(ids["evil"], 7, "etc/passwd"), (ids["evil"], 7, None),
                   (ids["evil"], 1, "etc/passwd"), (ids["claims"], 7, "etc/passwd"),
                   (ids["claims"], 1, "root/etc/passwd"), (ids["claims"], 8, None),
                   (ids["claims"], 9, None), (ids["claims"], 10, None)]
        for build, nr, path in attacks:
            status, body = _download(api, build, nr, path)
            assert status == 404, (build, nr, path, status, body)
            assert PASSWD not in body and "TOPSECRET" not in body and "error" in body
        assert _download(api, ids["claims"], 1) == (200, "ok\n")
        assert _download(api, ids["claims"], 1, "index.html") == (200, "ok\n")
        assert "product download refused" in api.log_text()
    finally:
        api.stop()
