"""The runner builds real derivations with Nix and records what a user then sees."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
from pathlib import Path

from circus.store import logs
from tests.helpers.runner import (
    add_build,
    build_row,
    instantiate,
    make_jobset,
    running_runner,
    wait_finished,
)


async def test_success_records_outputs_log_steps_and_gc_root(make_config, database_url, pool,
                                                             tmp_path: Path):
    jobset = await make_jobset(pool)
    drv = instantiate(tmp_path, """
      let dep = mk { name = "dep"; script = "echo building-dep; /bin/mkdir $out"; };
      in mk { name = "hello"; script = "echo hello-from-builder ${dep}; /bin/mkdir $out $dev";
              extra.outputs = [ "out" "dev" ]; }
    """)
    build_id = await add_build(pool, jobset, "hello", drv)
    config = make_config()
    async with running_runner(config, database_url):
        row = await wait_finished(pool, build_id)
    assert (row["buildstatus"], row["error_message"]) == (0, None)
    outputs = {r["name"]: r["path"] for r in await pool.fetch(
        "SELECT name, path FROM build_outputs WHERE build_id = $1", build_id)}
    assert set(outputs) == {"out", "dev"}
    async with pool.acquire() as conn:
        text = await logs.read_log(conn, build_id)
    assert "hello-from-builder" in text and "building-dep" in text
    assert await pool.fetchval("SELECT count(*) FROM build_log_chunks WHERE build_id = $1",
                               build_id) == 0
    assert row["log_size"] == len(text.encode())
    steps = await pool.fetch("SELECT * FROM build_steps WHERE build_id = $1 ORDER BY step_nr",
                             build_id)
    assert [s["drv_path"] for s in steps][-1] == drv
    assert len(steps) == 2 and all(s["status"] == 0 and s["finished_at"] for s in steps)
    products = await pool.fetch("SELECT type, subtype, path FROM build_products "
                                "WHERE build_id = $1 ORDER BY product_nr", build_id)
    assert [(p["type"], p["subtype"]) for p in products] == [("nix-build", "dev"),
                                                             ("nix-build", "")]
    root = Path(config.gc.gc_roots_dir) / Path(outputs["out"]).name
    assert root.resolve() == Path(outputs["out"])
    roots = (await asyncio.to_thread(
        subprocess.run, ["nix-store", "-q", "--roots", outputs["out"]], check=True,
        capture_output=True, text=True)).stdout
    assert str(root) in roots


async def test_failure_is_status_1_with_the_builders_output(make_config, database_url, pool,
                                                            tmp_path):
    jobset = await make_jobset(pool)
    drv = instantiate(tmp_path, 'mk { name = "broken"; script = "echo about-to-fail; exit 3"; }')
    build_id = await add_build(pool, jobset, "broken", drv)
    async with running_runner(make_config(), database_url):
        row = await wait_finished(pool, build_id)
    assert row["buildstatus"] == 1
    assert "exit code 3" in row["error_message"]
    async with pool.acquire() as conn:
        assert "about-to-fail" in await logs.read_log(conn, build_id)
    steps = await pool.fetch("SELECT status FROM build_steps WHERE build_id = $1", build_id)
    assert [s["status"] for s in steps] == [1]


async def test_failed_with_output_products_and_metrics(make_config, database_url, pool,
                                                       tmp_path):
    jobset = await make_jobset(pool)
    script = (
        "/bin/mkdir -p $out/nix-support; echo report > $out/report.txt; "
        "echo \\\"doc readme $out/report.txt\\\" > $out/nix-support/hydra-build-products; "
        "echo \\\"file binary-dist $out/report.txt\\\" >> $out/nix-support/hydra-build-products; "
        "echo \\\"tests.passed 42\\\" > $out/nix-support/hydra-metrics; "
        "echo \\\"closure.size 1.5 MiB\\\" >> $out/nix-support/hydra-metrics; "
        "touch_failed() { : > $out/nix-support/failed; }; touch_failed"
    )
    drv = instantiate(tmp_path, f'mk {{ name = "reports"; script = "{script}"; }}')
    build_id = await add_build(pool, jobset, "reports", drv)
    async with running_runner(make_config(), database_url):
        row = await wait_finished(pool, build_id)
    assert row["buildstatus"] == 6
    out = await pool.fetchval("SELECT path FROM build_outputs WHERE build_id = $1", build_id)
    products = await pool.fetch("SELECT * FROM build_products WHERE build_id = $1 "
                                "ORDER BY product_nr", build_id)
    assert [(p["type"], p["subtype"], p["name"]) for p in products] == [
        ("doc", "readme", "report.txt"), ("file", "binary-dist", "report.txt")]
    assert products[0]["path"] == f"{out}/report.txt"
    assert products[0]["file_size"] == len("report\n")
    assert products[0]["sha256"] == hashlib.sha256(b"report\n").hexdigest()
    metrics = {m["name"]: (m["value"], m["unit"]) for m in await pool.fetch(
        "SELECT * FROM build_metrics WHERE build_id = $1", build_id)}
    assert metrics == {"tests.passed": (42.0, ""), "closure.size": (1.5, "MiB")}


async def test_meta_timeout_is_status_7(make_config, database_url, pool, tmp_path):
    jobset = await make_jobset(pool)
    drv = instantiate(tmp_path, 'mk { name = "slow"; script = "echo zzz; /bin/sleep 30"; }')
    build_id = await add_build(pool, jobset, "slow", drv, timeout=1)
    async with running_runner(make_config(), database_url):
        row = await wait_finished(pool, build_id)
    assert row["buildstatus"] == 7
    assert "timed out" in row["error_message"]


async def test_failed_dependency_fails_dependents_transitively(make_config, database_url, pool,
                                                               tmp_path):
    jobset = await make_jobset(pool)
    bad = instantiate(tmp_path, 'mk { name = "bad"; script = "exit 1"; }')
    bad_id = await add_build(pool, jobset, "bad", bad)
    mid_id = await add_build(pool, jobset, "mid", "/nix/store/unused-mid.drv",
                             depends_on=(bad_id,))
    top_id = await add_build(pool, jobset, "top", "/nix/store/unused-top.drv",
                             depends_on=(mid_id,))
    async with running_runner(make_config(), database_url):
        await wait_finished(pool, top_id)
    assert (await build_row(pool, bad_id))["buildstatus"] == 1
    for dependent in (mid_id, top_id):
        row = await build_row(pool, dependent)
        assert row["buildstatus"] == 2
        assert f"build {bad_id}" in row["error_message"] and "bad" in row["error_message"]


async def test_already_built_outputs_show_the_stored_log(make_config, database_url, pool,
                                                         tmp_path):
    jobset = await make_jobset(pool)
    nonce = hashlib.sha256(str(tmp_path).encode()).hexdigest()[:12]
    drv = instantiate(tmp_path, f'mk {{ name = "prebuilt"; script = '
                                f'"echo made-earlier-{nonce}; /bin/mkdir $out"; }}')
    await asyncio.to_thread(subprocess.run, ["nix-store", "--realise", drv], check=True,
                            capture_output=True)
    build_id = await add_build(pool, jobset, "prebuilt", drv)
    async with running_runner(make_config(), database_url):
        row = await wait_finished(pool, build_id)
    assert row["buildstatus"] == 0
    async with pool.acquire() as conn:
        text = await logs.read_log(conn, build_id)
    assert "outputs were already in the store" in text
    assert f"made-earlier-{nonce}" in text
