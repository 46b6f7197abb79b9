"""Many builds ending at once are recorded together, each exactly as if alone: its
status and log, its dependents built after it or failed because of it."""

from __future__ import annotations

import attrs

from circus.nix.build import LineSink
from circus.runner.outcome import ClaimedBuild, Outcome
from circus.store import logs as logstore
from tests.helpers.runner import add_build, make_jobset, running_runner, wait_finished

SYSTEM = "test-batch"


@attrs.define
class ScriptedBuilder:
    """Ends at once: jobs named bad-* fail, the others succeed; every build logs a line."""

    async def build(self, build: ClaimedBuild, on_line: LineSink) -> Outcome:
        on_line(f"building {build.job}")
        if build.job.startswith("bad-"):
            return Outcome(1, f"{build.job} failed on purpose")
        return Outcome(0)


async def test_builds_ending_together_are_each_recorded(make_config, database_url, pool):
    jobset = await make_jobset(pool)

    async def add(job: str, *deps: int) -> int:
        return await add_build(pool, jobset, job, f"/nix/store/x-{job}.drv", system=SYSTEM,
                               depends_on=deps)

    firsts = [await add(f"first-{n}") for n in range(20)]
    bads = [await add(f"bad-{n}") for n in range(5)]
    after_good = [await add(f"after-{n}", firsts[n]) for n in range(20)]
    after_bad = [await add(f"doomed-{n}", bads[n], firsts[n]) for n in range(5)]
    config = make_config({"queue_runner": {"systems": [SYSTEM], "workers": 8}})
    async with running_runner(config, database_url, ScriptedBuilder()):
        rows = {b: await wait_finished(pool, b) for b in firsts + bads + after_good + after_bad}

    for build_id in firsts + after_good:
        assert rows[build_id]["buildstatus"] == 0
    for n, build_id in enumerate(bads):
        assert (rows[build_id]["buildstatus"], rows[build_id]["error_message"]) == (
            1, f"bad-{n} failed on purpose")
    for n, build_id in enumerate(after_bad):
        assert rows[build_id]["buildstatus"] == 2
        assert f"build {bads[n]}" in rows[build_id]["error_message"]
    for first, after in zip(firsts, after_good, strict=True):
        assert rows[after]["started_at"] >= rows[first]["finished_at"]
    async with pool.acquire() as conn:
        for build_id in firsts + bads:
            job = rows[build_id]["job"]
            assert await logstore.read_log(conn, build_id) == f"building {job}\n"
    assert await pool.fetchval("SELECT count(*) FROM build_log_chunks") == 0
