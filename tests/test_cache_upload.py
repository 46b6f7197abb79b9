"""[cache_upload]: after a successful build the runner copies its closure to a store."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.cache import build_jobs, make_key, run


async def test_closure_is_uploaded_signed_to_a_file_store(make_config, database_url, pool,
                                                          tmp_path: Path):
    secret, public = make_key(tmp_path)
    target = tmp_path / "uploaded"
    config = make_config({
        "signing": {"enabled": True, "key_file": str(secret)},
        "cache_upload": {"enabled": True, "store_uri": f"file://{target}",
                         "upload_concurrency": 1}})
    built = await build_jobs(config, database_url, pool, tmp_path)
    rows = await pool.fetch("SELECT buildstatus FROM builds ORDER BY id")
    assert [r["buildstatus"] for r in rows] == [0, 0]
    # Nix reads the uploaded cache back, trusting only our key.
    code, out, err = await run(["nix", "path-info", "--store", f"file://{target}", "--sigs",
                                "--recursive", built.outputs["top"]], tmp_path)
    assert code == 0, err
    listed = {line.split()[0]: line for line in out.splitlines()}
    assert set(listed) == {built.outputs["top"], built.outputs["dep"]}
    assert all("circus-test-1:" in line for line in listed.values())
    code, _, err = await run(["nix", "copy", "--from", f"file://{target}", "--to",
                              str(tmp_path / "client"), built.outputs["top"]], tmp_path,
                             trusted_public_keys=public)
    assert code == 0, err


async def test_upload_failure_fails_the_build_only_when_configured(make_config, database_url,
                                                                   pool, tmp_path: Path):
    unwritable = "file:///proc/circus-cannot-write-here"
    for fail, status in ((False, 0), (True, 1)):
        config = make_config({"cache_upload": {
            "enabled": True, "store_uri": unwritable, "upload_max_retries": 1,
            "fail_build_on_upload_error": fail}})
        built = await build_jobs(config, database_url, pool, tmp_path / f"f{fail}",
                                 jobs=("dep",), jobset=await _jobset(pool, f"j{fail}"))
        row = await pool.fetchrow("SELECT buildstatus, error_message FROM builds WHERE id = $1",
                                  built.build_ids["dep"])
        assert row["buildstatus"] == status
        if fail:
            assert "upload to file:///proc/circus-cannot-write-here failed after 2 attempts" \
                in row["error_message"]


async def _jobset(pool, name: str) -> tuple[int, int]:
    project = await pool.fetchval("INSERT INTO projects (name, repository_url) VALUES "
                                  "($1, 'file:///x') RETURNING id", name)
    jobset = await pool.fetchval("INSERT INTO jobsets (project_id, name) VALUES ($1, 'main') "
                                 "RETURNING id", project)
    return project, jobset
