"""Which build runs next: jobsets take turns by their scheduling shares, one system's
backlog does not hold up another's builder, and a derivation that just failed is not
built again (the failed-paths cache). The real runner role, a real database."""

from __future__ import annotations

import asyncio

import asyncpg
import attrs

from circus.domain.status import BuildStatus
from circus.nix.build import LineSink
from circus.runner.outcome import ClaimedBuild, Outcome
from circus.store import dispatch
from tests.helpers.api import ADMIN
from tests.helpers.runner import (
    add_build,
    instantiate,
    make_jobset,
    running_runner,
    wait_finished,
    wait_for,
)
from tests.helpers.suite import host_system


@attrs.define
class Recorder:
    """Succeeds at once and remembers the order builds reached it; builds of `hold`
    systems wait until released."""

    order: list[int] = attrs.Factory(list)
    hold: frozenset[str] = frozenset()
    release: asyncio.Event = attrs.Factory(asyncio.Event)

    async def build(self, build: ClaimedBuild, on_line: LineSink) -> Outcome:
        self.order.append(build.id)
        if build.system in self.hold:
            await self.release.wait()
        return Outcome(status=BuildStatus.SUCCEEDED)


async def other_jobset(pool: asyncpg.Pool, project_id: int, name: str) -> tuple[int, int]:
    jobset_id = await pool.fetchval(
        "INSERT INTO jobsets (project_id, name) VALUES ($1, $2) RETURNING id", project_id, name)
    return project_id, jobset_id


async def queue_many(pool: asyncpg.Pool, jobset: tuple[int, int], count: int, prefix: str,
                     system: str) -> list[int]:
    rows = await pool.fetch(
        "INSERT INTO builds (project_id, jobset_id, job, drv_path, system) "
        "SELECT $1, $2, $3 || n, '/nix/store/' || md5($3 || n) || '-x.drv', $5 "
        "FROM generate_series(1, $4) n RETURNING id", *jobset, prefix, count, system)
    return [row["id"] for row in rows]


async def test_a_jobset_with_thousands_queued_does_not_starve_one_with_ten(
        make_config, database_url, pool):
    big = await make_jobset(pool)
    small = await other_jobset(pool, big[0], "small")
    await queue_many(pool, big, 5000, "a", host_system())
    late = await queue_many(pool, small, 10, "b", host_system())  # queued after all of A's
    recorder = Recorder()
    config = make_config({"queue_runner": {"workers": 4}})
    async with running_runner(config, database_url, recorder):
        await wait_for(lambda: len(recorder.order) >= 100, 60)
    positions = sorted(recorder.order.index(build_id) for build_id in late)
    # Both jobsets have the default 100 shares: they take turns, so B's ten are done
    # within the first twenty-odd claims, not after A's 5 000.
    assert positions[-1] < 30, positions


async def test_shares_weigh_the_turns(make_config, database_url, pool):
    heavy = await make_jobset(pool)
    light = await other_jobset(pool, heavy[0], "light")
    await pool.execute("UPDATE jobsets SET scheduling_shares = 300 WHERE id = $1", heavy[1])
    heavy_ids = set(await queue_many(pool, heavy, 400, "h", host_system()))
    await queue_many(pool, light, 400, "l", host_system())
    recorder = Recorder()
    async with running_runner(make_config({"queue_runner": {"workers": 1}}), database_url,
                              recorder):
        await wait_for(lambda: len(recorder.order) >= 200, 60)
    first = recorder.order[:200]
    share = sum(build_id in heavy_ids for build_id in first) / len(first)
    assert 0.7 <= share <= 0.8, share  # 300 : 100 shares: three of every four


async def test_global_priority_still_goes_first(make_config, database_url, pool):
    jobset = await make_jobset(pool)
    other = await other_jobset(pool, jobset[0], "other")
    await queue_many(pool, jobset, 50, "a", host_system())
    bumped = await queue_many(pool, other, 3, "b", host_system())
    await pool.execute("UPDATE builds SET global_priority = 1 WHERE id = ANY($1)", bumped)
    recorder = Recorder()
    async with running_runner(make_config({"queue_runner": {"workers": 1}}), database_url,
                              recorder):
        await wait_for(lambda: len(recorder.order) >= 10, 60)
    assert recorder.order[:3] == bumped


async def test_a_backlog_of_one_system_does_not_block_another(make_config, database_url, pool):
    jobset = await make_jobset(pool)
    await queue_many(pool, jobset, 2000, "local", host_system())
    arm = await add_build(pool, jobset, "arm", "/nix/store/" + "a" * 32 + "-arm.drv",
                          system="aarch64-linux")
    # A builder that is up and was probed just now (the recorder stands in for Nix).
    await pool.execute(
        "INSERT INTO builders (name, ssh_uri, systems, max_jobs, public_host_key, health, "
        "last_probe_at) VALUES ('arm', 'ssh-ng://arm.invalid', '{aarch64-linux}', 1, "
        "'ssh-ed25519 AAAA', 'up', now())")
    recorder = Recorder(hold=frozenset({host_system()}))
    config = make_config({"queue_runner": {"workers": 2, "builder_probe_interval": 3600}})
    async with running_runner(config, database_url, recorder):
        row = await wait_finished(pool, arm, 30)
        started = list(recorder.order)  # before the held local builds are let go
        recorder.release.set()
    assert row["buildstatus"] == 0 and row["builder_id"] is not None
    assert arm in started and len(started) <= 3  # the two local slots, held, and arm


async def test_a_failed_derivation_is_not_built_again_until_restarted(
        make_config, database_url, pool, tmp_path, client):
    first = await make_jobset(pool)
    second = await other_jobset(pool, first[0], "second")
    drv = instantiate(tmp_path, 'mk { name = "broken"; script = "echo trying; exit 1"; }')
    failed = await add_build(pool, first, "broken", drv)
    async with running_runner(make_config({"queue_runner": {"workers": 1}}), database_url):
        first_row = await wait_finished(pool, failed)
        # A later evaluation of another jobset has the same derivation.
        again = await add_build(pool, second, "broken", drv)
        await pool.execute("NOTIFY circus_builds_queued")
        again_row = await wait_finished(pool, again)
    assert first_row["buildstatus"] == BuildStatus.FAILED
    assert again_row["buildstatus"] == BuildStatus.CACHED_FAILURE
    assert f"failed in build {failed}" in again_row["error_message"]
    body = await (await client.get(f"/api/v1/builds/{again}")).json()
    assert body["buildstatus"] == 8
    log = await (await client.get(f"/api/v1/builds/{again}/log")).text()
    assert "cached failure" in log and "trying" not in log
    # A restart is asked to build again: the cache forgets the derivation.
    resp = await client.post(f"/api/v1/builds/{again}/restart", headers=ADMIN)
    assert resp.status == 200, await resp.text()
    assert await pool.fetchval("SELECT count(*) FROM failed_paths") == 0
    async with running_runner(make_config({"queue_runner": {"workers": 1}}), database_url):
        rebuilt = await wait_finished(pool, again)
    assert rebuilt["buildstatus"] == BuildStatus.FAILED
    log = await (await client.get(f"/api/v1/builds/{again}/log")).text()
    assert "trying" in log


async def test_without_the_cache_a_failure_is_built_again(make_config, database_url, pool,
                                                         tmp_path):
    first = await make_jobset(pool)
    second = await other_jobset(pool, first[0], "second")
    drv = instantiate(tmp_path, 'mk { name = "broken"; script = "exit 1"; }')
    failed = await add_build(pool, first, "broken", drv)
    config = make_config({"queue_runner": {"workers": 1, "failed_paths_cache": False}})
    async with running_runner(config, database_url):
        rows = [await wait_finished(pool, failed)]
        again = await add_build(pool, second, "broken", drv)
        await pool.execute("NOTIFY circus_builds_queued")
        rows.append(await wait_finished(pool, again))
    assert [row["buildstatus"] for row in rows] == [BuildStatus.FAILED] * 2
    assert await pool.fetchval("SELECT count(*) FROM failed_paths") == 0


BUILDERS = {  # name: speed factor, slots, cpu pressure, minutes since it was sent a build
    "fast": (4, 1, 30, 1), "wide": (1, 8, 10, 10), "calm": (2, 2, 0, None),
    "pressed": (2, 2, 90, 20),
}


async def test_each_strategy_puts_the_builders_in_its_documented_order(pool):
    for name, (speed, slots, psi, minutes) in BUILDERS.items():
        await pool.execute(
            "INSERT INTO builders (name, ssh_uri, systems, max_jobs, speed_factor, "
            "public_host_key, health, psi_cpu, psi_memory, last_dispatched_at) "
            "VALUES ($1, 'ssh-ng://' || $1, ARRAY['x86_64-linux'], $2, $3, 'ssh-ed25519 AAAA', "
            "'up', $4, 0, now() - make_interval(mins => $5))", name, slots, speed, psi, minutes)
    await pool.execute("INSERT INTO builders (name, ssh_uri, systems, public_host_key, health) "
                       "VALUES ('down', 'ssh-ng://down', ARRAY['x86_64-linux'], 'k', 'down')")

    async def order(strategy: str, threshold: float | None = None) -> list[str]:
        return [r["name"] for r in await dispatch.dispatchable(pool, threshold, strategy)]

    # Fastest first; equal speed: more free slots, then the older builder.
    assert await order("speed_factor_only") == ["fast", "calm", "pressed", "wide"]
    assert await order("speed_factor_only", 50) == ["fast", "calm", "wide"]
    # Free slots times speed factor (8, 4, 4, 4), then the least pressed.
    assert await order("psi_aware") == ["wide", "calm", "fast", "pressed"]
    # The one sent a build longest ago (never, 20, 10, 1 minutes) first.
    assert await order("round_robin") == ["calm", "pressed", "wide", "fast"]
    assert await order("round_robin", 50) == ["calm", "wide", "fast"]
