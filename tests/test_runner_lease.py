"""Leases: a dead runner's build is built by whoever is alive; a stopping runner gives
its unfinished builds back; builds nobody can take end as unsupported."""

from __future__ import annotations

from circus.db.bus import BUILDS_QUEUED, Bus
from tests.helpers.runner import (
    add_build,
    build_row,
    instantiate,
    make_jobset,
    running_runner,
    wait_finished,
    wait_for,
)
from tests.helpers.suite import host_system


async def test_expired_lease_is_requeued_and_built(make_config, database_url, pool, tmp_path):
    jobset = await make_jobset(pool)
    drv = instantiate(tmp_path, 'mk { name = "orphan"; script = "echo rebuilt; /bin/mkdir $out"; }')
    build_id = await add_build(pool, jobset, "orphan", drv)
    # As a runner killed with -9 leaves it.
    await pool.execute(
        "UPDATE builds SET state = 'running', runner_id = 'dead-runner', attempts = 1, "
        "started_at = now(), lease_expires_at = now() - interval '1 minute' WHERE id = $1",
        build_id)
    async with running_runner(make_config(), database_url) as ctx:
        row = await wait_finished(pool, build_id)
    assert row["buildstatus"] == 0
    assert row["runner_id"] == ctx.instance
    assert row["attempts"] == 2


async def test_stop_hands_an_unfinished_build_back(make_config, database_url, pool, tmp_path):
    jobset = await make_jobset(pool)
    drv = instantiate(tmp_path, 'mk { name = "long"; script = "echo long; /bin/sleep 60"; }')
    build_id = await add_build(pool, jobset, "long", drv)
    config = make_config({"queue_runner": {"shutdown_grace": 0}})
    listener = Bus(database_url)
    await listener.start()
    try:
        with listener.subscribe(BUILDS_QUEUED) as sub:
            async with running_runner(config, database_url):
                await wait_for(lambda: _state_is(pool, build_id, "running"))
            assert (BUILDS_QUEUED, "") in await sub.wait(timeout=10)
    finally:
        await listener.close()
    row = await build_row(pool, build_id)
    assert (row["state"], row["runner_id"], row["buildstatus"]) == ("queued", None, None)
    assert await pool.fetchval("SELECT count(*) FROM build_log_chunks WHERE build_id = $1",
                               build_id) == 0


async def test_unsupported_system_finishes_as_9_after_the_timeout(make_config, database_url,
                                                                  pool):
    jobset = await make_jobset(pool)
    waiting = await add_build(pool, jobset, "exotic", "/nix/store/x-exotic.drv",
                              system="mips64-plan9")
    dependent = await add_build(pool, jobset, "after", "/nix/store/x-after.drv",
                                depends_on=(waiting,))
    # A feature no machine has is as unsupported as the system; one a builder has is not.
    kvm = await add_build(pool, jobset, "kvm", "/nix/store/x-kvm.drv",
                          required_features=["circus-no-such-feature"])
    gpu = await add_build(pool, jobset, "gpu", "/nix/store/x-gpu.drv",
                          required_features=["circus-gpu"])
    await pool.execute("INSERT INTO builders (name, ssh_uri, systems, supported_features, "
                       "public_host_key) VALUES ('gpu', 'ssh-ng://gpu', $1, "
                       "ARRAY['circus-gpu'], 'ssh-ed25519 AAAA')", [host_system()])
    await pool.execute("UPDATE builds SET created_at = now() - interval '1 hour'")
    config = make_config({"queue_runner": {"unsupported_timeout": 60}})
    async with running_runner(config, database_url):
        row = await wait_finished(pool, waiting)
        after = await wait_finished(pool, dependent)
        featured = await wait_finished(pool, kvm)
    assert row["buildstatus"] == 9 and "mips64-plan9" in row["error_message"]
    assert after["buildstatus"] == 2
    assert featured["buildstatus"] == 9
    assert "with features circus-no-such-feature" in featured["error_message"]
    assert (await build_row(pool, gpu))["state"] == "queued"


async def _state_is(pool, build_id: int, state: str) -> bool:
    return (await build_row(pool, build_id))["state"] == state
