"""Remote builders on real hosts: each a network namespace with its own sshd and its own
Nix store (tests/helpers/hosts.py). The real runner dispatches to them with Nix's SSH
store; what a user sees is where each build ran, its outputs in the runner's store and in
the cache, its log while it ran, and how the runner copes with a builder that dies."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import asyncpg
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from tests.helpers.cache import run
from tests.helpers.hosts import Host, Network
from tests.helpers.runner import (
    add_build,
    instantiate,
    make_jobset,
    running_runner,
    wait_finished,
    wait_for,
)
from tests.helpers.suite import host_system

# Only builders have this feature, so the runner's own Nix never takes these builds.
REMOTE = "circus-remote"


async def add_builder(pool: asyncpg.Pool, network: Network, host: Host, systems: list[str],
                      features: list[str], max_jobs: int = 2, host_key: str | None = None,
                      mandatory: tuple[str, ...] = ()) -> int:
    builder_id: int = await pool.fetchval(
        "INSERT INTO builders (name, ssh_uri, systems, max_jobs, supported_features, "
        "mandatory_features, ssh_key_file, public_host_key) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        host.name, host.store_uri, systems, max_jobs, features, list(mandatory),
        str(network.client_key), host_key or host.host_key)
    return builder_id


def runner_config(make_config, **queue_runner: object) -> object:
    return make_config({"queue_runner": {"workers": 1, "lease_seconds": 10,
                                         **queue_runner}})


def remote_drv(tmp_path: Path, name: str, script: str, system: str | None = None,
               features: tuple[str, ...] = (REMOTE,)) -> str:
    extra = " ".join(f'"{f}"' for f in features)
    system_attr = f'system = "{system}";' if system else ""
    attrs_ = f"{system_attr} requiredSystemFeatures = [ {extra} ];"
    return instantiate(tmp_path, f'mk {{ name = "{name}"; script = "{script}"; '
                                 f'extra = {{ {attrs_} }}; }}')


def valid_on(host: Host, path: str) -> bool:
    return host.run(["nix-store", "--check-validity", path]).returncode == 0


def valid_here(path: str) -> bool:
    return subprocess.run(["nix-store", "--check-validity", path],
                          capture_output=True).returncode == 0


async def next_log_text(resp: ClientResponse, needle: str) -> str:
    """SSE `message` data until `needle` has been seen."""
    text = ""
    while needle not in text:
        raw = await asyncio.wait_for(resp.content.readline(), 30)
        assert raw, "stream ended"
        line = raw.decode().rstrip("\r\n")
        if line.startswith("data: "):
            text += line[len("data: "):] + "\n"
    return text


async def test_each_build_lands_on_a_capable_builder_and_comes_back(
        network, make_config, database_url, pool, tmp_path, client: TestClient):
    arm = network.add_host("arm", nix_conf="extra-platforms = aarch64-linux")
    big = network.add_host("big", nix_conf=f"system-features = {REMOTE} circus-big")
    plain = network.add_host("plain", nix_conf=f"system-features = {REMOTE}")
    ids = {"arm": await add_builder(pool, network, arm, ["aarch64-linux"], []),
           "big": await add_builder(pool, network, big, [host_system()], [REMOTE, "circus-big"]),
           "plain": await add_builder(pool, network, plain, [host_system()], [REMOTE],
                                      mandatory=(REMOTE,))}
    jobset = await make_jobset(pool)
    slow = "echo started-remotely; /bin/sleep 2; echo after-the-pause; /bin/mkdir $out"
    builds = {
        "arm": await add_build(pool, jobset, "arm", remote_drv(tmp_path, "arm", slow,
                               "aarch64-linux", ()), system="aarch64-linux"),
        "big": await add_build(pool, jobset, "big", remote_drv(
            tmp_path, "big", "/bin/mkdir $out", features=(REMOTE, "circus-big")),
            required_features=[REMOTE, "circus-big"]),
        **{f"any{i}": await add_build(pool, jobset, f"any{i}", remote_drv(
            tmp_path, f"any{i}", "/bin/mkdir $out"), required_features=[REMOTE])
           for i in range(3)},
    }
    async with running_runner(runner_config(make_config), database_url):
        # The aarch64 build's log arrives over SSE while it still runs on its builder.
        await wait_for(lambda: _state(pool, builds["arm"], "running"), 60)
        resp = await client.get(f"/api/v1/builds/{builds['arm']}/log/stream")
        assert "started-remotely" in await next_log_text(resp, "started-remotely")
        assert (await pool.fetchval("SELECT state FROM builds WHERE id = $1",
                                    builds["arm"])) == "running"
        rows = {job: await wait_finished(pool, build_id, 90) for job, build_id in builds.items()}
        resp.close()
    assert {job: row["buildstatus"] for job, row in rows.items()} == dict.fromkeys(rows, 0)
    assert rows["arm"]["builder_id"] == ids["arm"]
    assert rows["big"]["builder_id"] == ids["big"]
    assert {rows[f"any{i}"]["builder_id"] for i in range(3)} <= {ids["big"], ids["plain"]}
    hosts = {ids["arm"]: arm, ids["big"]: big, ids["plain"]: plain}
    for job, row in rows.items():
        out = await pool.fetchval("SELECT path FROM build_outputs WHERE build_id = $1",
                                  row["id"])
        assert valid_here(out), job  # copied back into the runner's store
        assert valid_on(hosts[row["builder_id"]], out), job  # built there
        step = await pool.fetchrow("SELECT machine, status FROM build_steps "
                                   "WHERE build_id = $1 ORDER BY step_nr LIMIT 1", row["id"])
        assert step["machine"] == hosts[row["builder_id"]].store_uri and step["status"] == 0
    assert not valid_on(plain, await pool.fetchval(
        "SELECT path FROM build_outputs WHERE build_id = $1", builds["arm"]))
    log = await (await client.get(f"/api/v1/builds/{builds['arm']}/log")).text()
    assert "started-remotely" in log and "after-the-pause" in log
    # A client copies a remote build's output from Circus's cache like any other.
    out = await pool.fetchval("SELECT path FROM build_outputs WHERE build_id = $1",
                              builds["arm"])
    store = tmp_path / "client-store"
    code, _, err = await run(["nix", "copy", "--no-check-sigs", "--from",
                              str(client.make_url("/nix-cache")), "--to", str(store), out],
                             tmp_path)
    assert code == 0, err
    assert (store / out.lstrip("/")).is_dir()


async def _state(pool: asyncpg.Pool, build_id: int, state: str) -> bool:
    return await pool.fetchval("SELECT state FROM builds WHERE id = $1", build_id) == state


async def _builder(pool: asyncpg.Pool, builder_id: int) -> asyncpg.Record:
    return await pool.fetchrow("SELECT * FROM builders WHERE id = $1", builder_id)


async def _survives(network, make_config, database_url, pool, tmp_path, break_it, mend_it):
    """One build running on builder a when `break_it(a)` happens: it finishes on b."""
    a = network.add_host("a", nix_conf=f"system-features = {REMOTE}")
    b = network.add_host("b", nix_conf=f"system-features = {REMOTE}")
    a_id = await add_builder(pool, network, a, [host_system()], [REMOTE], max_jobs=1)
    await pool.execute("UPDATE builders SET speed_factor = 10 WHERE id = $1", a_id)
    jobset = await make_jobset(pool)
    script = "echo on-the-builder; /bin/sleep 4; /bin/mkdir $out"
    build_id = await add_build(pool, jobset, "slow", remote_drv(tmp_path, "slow", script),
                               required_features=[REMOTE])
    async with running_runner(runner_config(make_config), database_url):
        await wait_for(lambda: _on_builder(pool, build_id, a_id), 60)
        # b comes only now, so the first attempt surely went to a.
        b_id = await add_builder(pool, network, b, [host_system()], [REMOTE], max_jobs=1)
        await wait_for(lambda: _up(pool, b_id), 30)
        break_it(a)
        row = await wait_finished(pool, build_id, 120)
        down = await _builder(pool, a_id)
        mend_it(a)
        back = await wait_for(lambda: _up(pool, a_id), 60)
    assert row["buildstatus"] == 0 and row["builder_id"] == b_id
    assert row["attempts"] == 2
    assert down["health"] == "down" and down["consecutive_failures"] >= 1
    assert down["last_error"]
    assert back


async def _on_builder(pool: asyncpg.Pool, build_id: int, builder_id: int) -> bool:
    row = await pool.fetchrow("SELECT state, builder_id FROM builds WHERE id = $1", build_id)
    return row["state"] == "running" and row["builder_id"] == builder_id \
        and await pool.fetchval("SELECT count(*) FROM build_log_chunks WHERE build_id = $1",
                                build_id) > 0


async def _up(pool: asyncpg.Pool, builder_id: int) -> bool:
    return (await _builder(pool, builder_id))["health"] == "up"


async def test_a_builder_whose_sshd_dies_mid_build_sends_the_build_elsewhere(
        network, make_config, database_url, pool, tmp_path):
    await _survives(network, make_config, database_url, pool, tmp_path,
                    Host.stop_sshd, Host.start_sshd)


async def test_a_builder_whose_link_is_cut_mid_build_sends_the_build_elsewhere(
        network, make_config, database_url, pool, tmp_path):
    await _survives(network, make_config, database_url, pool, tmp_path,
                    Host.link_down, Host.link_up)


async def test_a_wrong_host_key_gets_no_build_and_says_why(
        network, make_config, database_url, pool, tmp_path):
    real = network.add_host("real", nix_conf=f"system-features = {REMOTE}")
    other = network.add_host("other", nix_conf=f"system-features = {REMOTE}")
    builder_id = await add_builder(pool, network, real, [host_system()], [REMOTE],
                                   host_key=other.host_key)
    jobset = await make_jobset(pool)
    build_id = await add_build(pool, jobset, "x", remote_drv(tmp_path, "x", "/bin/mkdir $out"),
                               required_features=[REMOTE])
    async with running_runner(runner_config(make_config), database_url):
        row = await wait_for(lambda: _probed(pool, builder_id), 30)
        await asyncio.sleep(3)
        build = await pool.fetchrow("SELECT state, builder_id, attempts FROM builds "
                                    "WHERE id = $1", build_id)
    assert row["health"] == "down"
    assert "host key is not the pinned public_host_key" in row["last_error"]
    assert (build["state"], build["builder_id"], build["attempts"]) == ("queued", None, 0)
    # Nothing was built there.
    assert not list((real.nix_dir / "store").glob("*-x"))


async def _probed(pool: asyncpg.Pool, builder_id: int) -> asyncpg.Record | None:
    row = await _builder(pool, builder_id)
    return row if row["last_probe_at"] is not None else None


async def test_a_pressed_builder_gets_no_build_until_its_pressure_falls(
        network, make_config, database_url, pool, tmp_path):
    hot = network.add_host("hot", nix_conf=f"system-features = {REMOTE}")
    cool = network.add_host("cool", nix_conf=f"system-features = {REMOTE}")
    hot.set_pressure(cpu=80)
    hot_id = await add_builder(pool, network, hot, [host_system()], [REMOTE])
    cool_id = await add_builder(pool, network, cool, [host_system()], [REMOTE])
    # Unpressed, psi_aware would send every build to hot first (free slots times speed).
    await pool.execute("UPDATE builders SET speed_factor = 10 WHERE id = $1", hot_id)
    jobset = await make_jobset(pool)

    def build(name: str) -> str:
        return remote_drv(tmp_path, name, "/bin/mkdir $out")

    config = runner_config(make_config, scheduling_strategy="psi_aware", psi_threshold=50,
                           builder_probe_interval=1)
    async with running_runner(config, database_url):
        await wait_for(lambda: _up(pool, hot_id), 30)
        await wait_for(lambda: _up(pool, cool_id), 30)
        pressed = await _builder(pool, hot_id)
        first = [await add_build(pool, jobset, f"p{i}", build(f"p{i}"),
                                 required_features=[REMOTE]) for i in range(3)]
        rows = [await wait_finished(pool, b, 60) for b in first]
        hot.set_pressure(cpu=0)
        await wait_for(lambda: _pressure_is(pool, hot_id, 0), 30)
        after = await wait_finished(pool, await add_build(
            pool, jobset, "after", build("after"), required_features=[REMOTE]), 60)
    assert (pressed["psi_cpu"], pressed["psi_memory"]) == (80, 0)
    assert [(r["buildstatus"], r["builder_id"]) for r in rows] == [(0, cool_id)] * 3
    assert (after["buildstatus"], after["builder_id"]) == (0, hot_id)


async def _pressure_is(pool: asyncpg.Pool, builder_id: int, cpu: float) -> bool:
    return (await _builder(pool, builder_id))["psi_cpu"] == cpu
