"""`circus doctor` and the check before `circus run` takes work: a broken Nix is one line
naming the cause and the fix, and a build the machine failed is never blamed on its code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.runner import (
    add_build,
    instantiate,
    make_jobset,
    running_runner,
    wait_finished,
)
from tests.helpers.suite import NIX_CONFIG

NO_GROUP = "circus-no-such-group"


def circus(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "circus.cli", *args], capture_output=True,
                          text=True, timeout=180, env={**os.environ, **(env or {})})


def test_the_test_suite_relies_on_neither_etc_nix_nor_a_nixbld_group() -> None:
    # Nix reads its configuration from the suite's own directory, and builds as root
    # without build users: a machine with no /etc/nix and no nixbld group works.
    conf_dir = Path(os.environ["NIX_CONF_DIR"])
    assert conf_dir != Path("/etc/nix") and conf_dir.is_dir()
    shown = subprocess.run(["nix", "show-config", "--json"], capture_output=True, text=True,
                           check=True)
    settings = {key: value["value"] for key, value in json.loads(shown.stdout).items()}
    assert settings["build-users-group"] == ""
    assert settings["substituters"] == []


def test_doctor_passes_every_check_on_this_machine() -> None:
    result = circus("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    names = [line.split(":")[0].split(maxsplit=1) for line in result.stdout.splitlines()]
    assert names == [["ok", "nix version"], ["ok", "build users"], ["ok", "store"],
                     ["ok", "experimental features"], ["ok", "build"]]
    assert "nix (Nix) 2." in result.stdout


def test_doctor_stops_at_a_missing_build_users_group() -> None:
    result = circus("doctor", env={"NIX_CONFIG": NIX_CONFIG + f"build-users-group = {NO_GROUP}\n"})
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[-1].startswith(f"FAIL  build users: the group '{NO_GROUP}' named by "
                                "build-users-group does not exist; fix: ")
    assert "build-users-group =" in lines[-1]
    assert not any(line.startswith(("ok    store", "ok    build:")) for line in lines)


def test_doctor_stops_at_a_store_it_cannot_create(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = circus("doctor", env={"NIX_STORE_DIR": str(blocker / "store")})
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1].startswith(
        f"FAIL  store: the Nix store {blocker / 'store'} cannot be created")


def test_run_refuses_to_take_work_with_a_broken_nix(tmp_path: Path) -> None:
    result = circus("run", "--roles=runner", env={
        "NIX_CONFIG": NIX_CONFIG + f"build-users-group = {NO_GROUP}\n",
        "CIRCUS_STATE_DIR": str(tmp_path / "state")})
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("circus: Nix is not usable (build users): the group "
                           f"'{NO_GROUP}'") and "fix:" in last
    # Refused before the database: nothing was started for it.
    assert not (tmp_path / "state" / "postgres").exists()


async def test_a_build_the_machine_fails_is_retried_then_aborted(
        make_config, database_url, pool, tmp_path, monkeypatch) -> None:
    jobset = await make_jobset(pool)
    drv = instantiate(tmp_path, 'mk { name = "fine"; script = "/bin/mkdir $out"; }')
    build_id = await add_build(pool, jobset, "fine", drv)
    # Nix breaks after the runner started: every attempt fails before building anything.
    monkeypatch.setenv("NIX_CONFIG", NIX_CONFIG + f"build-users-group = {NO_GROUP}\n")
    async with running_runner(make_config(), database_url):
        row = await wait_finished(pool, build_id)
    assert row["buildstatus"] == 3  # aborted: never 1, which blames the build's code
    assert row["attempts"] == 3
    assert row["error_message"].startswith("infrastructure failure, 3 attempts: ")
    assert NO_GROUP in row["error_message"]


async def test_a_build_whose_code_fails_is_status_1_at_once(
        make_config, database_url, pool, tmp_path) -> None:
    jobset = await make_jobset(pool)
    drv = instantiate(tmp_path, 'mk { name = "bad"; script = "exit 3"; }')
    build_id = await add_build(pool, jobset, "bad", drv)
    async with running_runner(make_config(), database_url):
        row = await wait_finished(pool, build_id)
    assert (row["buildstatus"], row["attempts"]) == (1, 1)
