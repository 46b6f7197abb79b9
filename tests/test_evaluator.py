"""The evaluator role with real git repositories, real Nix and real PostgreSQL: what it
writes for a flake or legacy jobset, when it evaluates again, and how errors are recorded."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest
from structlog.testing import capture_logs

from circus.app.context import Context
from circus.db.bus import EVAL_CHANGED, Bus
from circus.evaluator import evaljobs, evaluate, jobs, role, workers
from circus.evaluator.jobs import JobRecord
from circus.evaluator.nixeval import Target
from circus.nix import drv
from tests.helpers.evaluator import create_jobset, evaluate_now
from tests.helpers.repos import commit_files, git
from tests.helpers.suite import ROOT, host_system

FLAKE = r'''
{
  outputs = { self }:
    let
      system = "@SYSTEM@";
      mk = name: script: builtins.derivation {
        inherit name system;
        builder = "/bin/sh";
        args = [ "-c" script ];
      };
      a = mk "chain-a" "/bin/mkdir $out";
      b = mk "chain-b" "echo ${a}; /bin/mkdir $out";
      c = mk "chain-c" "echo ${b}; /bin/mkdir $out";
    in {
      hydraJobs = {
        hello = (mk "hello-1.0" "echo hi; /bin/mkdir $out") // {
          meta = {
            description = "says hello";
            license = { spdxId = "MIT"; };
            homepage = "https://example.invalid/hello";
            maintainers = [ { email = "alice@example.invalid"; } { github = "bob"; } ];
            timeout = 60;
            maxSilent = 30;
          };
        };
        broken = mk "broken-1.0" "exit 1";
        inherit a b c;
        tests = {
          recurseForDerivations = true;
          unit = mk "unit-@REV@" "/bin/mkdir $out";
        };
        oops = throw "this job cannot be evaluated";
        release = (mk "release" "/bin/mkdir $out") // {
          _hydraAggregate = true;
          constituents = [ "hello" a ];
        };
      };
    };
}
'''


SYSTEM = host_system()


def flake_text(rev: str = "1") -> str:
    return FLAKE.replace("@SYSTEM@", SYSTEM).replace("@REV@", rev)


@pytest.fixture
async def bus(database_url: str) -> AsyncIterator[Bus]:
    bus = Bus(database_url)
    await bus.start()
    yield bus
    await bus.close()


@pytest.fixture
def make_ctx(make_config: Callable, pool: asyncpg.Pool, bus: Bus,
             database_url: str) -> Callable[..., Context]:
    def make(evaluator: dict | None = None) -> Context:
        # The repositories are local directories: git may fetch them only when `file` is
        # an allowed scheme (circus.sources).
        config = make_config({"evaluator": evaluator or {},
                              "server": {"allowed_url_schemes": ["file"]}})
        return Context(config=config, pool=pool, bus=bus, database_url=database_url)

    return make


async def builds_by_job(pool: asyncpg.Pool, evaluation_id: int) -> dict[str, asyncpg.Record]:
    rows = await pool.fetch(
        "SELECT b.*, eb.is_new FROM builds b JOIN evaluation_builds eb ON eb.build_id = b.id "
        "WHERE eb.evaluation_id = $1", evaluation_id)
    return {r["job"]: r for r in rows}


async def dependencies(pool: asyncpg.Pool, table: str, column: str,
                       build_id: int) -> set[str]:
    key = "build_id" if table == "build_dependencies" else "aggregate_id"
    rows = await pool.fetch(
        f"SELECT b.job FROM {table} d JOIN builds b ON b.id = d.{column} "
        f"WHERE d.{key} = $1", build_id)
    return {r["job"] for r in rows}


def nix_drv_path(repo: Path, attr: str) -> str:
    return subprocess.run(
        ["nix", "--extra-experimental-features", "nix-command flakes", "eval", "--raw",
         f"git+file://{repo}#hydraJobs.{attr}.drvPath"],
        check=True, capture_output=True, text=True).stdout.strip()


def on_disk(path: str) -> bool:
    return Path(path).exists()


# Three workers share the jobs out: every job exactly once, the same rows as one worker.
@pytest.mark.parametrize("workers", [1, 3])
async def test_flake_jobset_becomes_builds_with_deps_aggregates_and_errors(
        make_repo: Callable, make_ctx: Callable, workers: int) -> None:
    repo = make_repo({"flake.nix": flake_text()})
    ctx = make_ctx({"workers": workers})
    jobset_id = await create_jobset(ctx.pool, repo)
    evaluation = await evaluate_now(ctx, jobset_id)

    assert evaluation["status"] == "succeeded", evaluation["error_message"]
    builds = await builds_by_job(ctx.pool, evaluation["id"])
    assert set(builds) == {"hello", "broken", "a", "b", "c", "tests.unit", "release"}
    assert (evaluation["nr_jobs"], evaluation["nr_builds"], evaluation["nr_new_builds"],
            evaluation["nr_job_errors"]) == (8, 7, 7, 1)
    hello = builds["hello"]
    assert hello["drv_path"] == nix_drv_path(repo, "hello")
    assert on_disk(hello["drv_path"])
    assert (hello["nix_name"], hello["system"], hello["state"]) == ("hello-1.0", SYSTEM, "queued")
    assert (hello["description"], hello["license"], hello["homepage"], hello["maintainers"],
            hello["timeout"], hello["max_silent"]) == (
        "says hello", "MIT", "https://example.invalid/hello",
        "alice@example.invalid, bob", 60, 30)

    # A job waits for the nearest jobs in its closure; the rest follows transitively.
    assert await dependencies(ctx.pool, "build_dependencies", "dependency_id",
                              builds["c"]["id"]) == {"b"}
    assert await dependencies(ctx.pool, "build_dependencies", "dependency_id",
                              builds["b"]["id"]) == {"a"}
    assert await dependencies(ctx.pool, "build_dependencies", "dependency_id",
                              builds["hello"]["id"]) == set()
    release = builds["release"]
    assert release["is_aggregate"] and not hello["is_aggregate"]
    assert await dependencies(ctx.pool, "aggregate_constituents", "constituent_id",
                              release["id"]) == {"hello", "a"}
    assert await dependencies(ctx.pool, "build_dependencies", "dependency_id",
                              release["id"]) == {"hello", "a"}

    errors = await ctx.pool.fetch("SELECT * FROM evaluation_errors WHERE evaluation_id = $1",
                                  evaluation["id"])
    assert [e["job"] for e in errors] == ["oops"]
    assert "this job cannot be evaluated" in errors[0]["error_message"]

    commit = git(repo, "rev-parse", "HEAD")
    assert evaluation["commit_hash"] == commit
    assert evaluation["flake_uri"] == f"git+file://{repo}?rev={commit}#hydraJobs"
    src = await ctx.pool.fetchrow(
        "SELECT * FROM evaluation_inputs WHERE evaluation_id = $1", evaluation["id"])
    assert (src["name"], src["type"], src["uri"], src["revision"]) == (
        "src", "git", str(repo), commit)
    jobset = await ctx.pool.fetchrow("SELECT * FROM jobsets WHERE id = $1", jobset_id)
    assert jobset["trigger_time"] is None and jobset["last_checked_at"] is not None


async def test_a_job_in_a_later_batch_than_its_dependent_is_still_its_nearest(
        make_repo: Callable, make_ctx: Callable, monkeypatch: pytest.MonkeyPatch) -> None:
    # Workers deliver jobs in any order: here c comes alone before b, so c's closure walk
    # passes b (no job yet) and reaches a; b's own batch must replace c -> a by c -> b.
    order = {"a": 0, "c": 1, "b": 2}
    pending: list[JobRecord] | None = None

    async def one_by_one(queue: asyncio.Queue) -> list[JobRecord]:
        nonlocal pending
        if pending is None:
            pending = []
            while (item := await queue.get()) is not None:
                pending.append(item)
            pending.sort(key=lambda j: order.get(j.attr, 9))
        return [pending.pop(0)] if pending else []

    monkeypatch.setattr(evaluate, "_next_batch", one_by_one)
    repo = make_repo({"flake.nix": flake_text()})
    ctx = make_ctx()
    evaluation = await evaluate_now(ctx, await create_jobset(ctx.pool, repo))
    assert evaluation["status"] == "succeeded", evaluation["error_message"]
    builds = await builds_by_job(ctx.pool, evaluation["id"])
    assert await dependencies(ctx.pool, "build_dependencies", "dependency_id",
                              builds["c"]["id"]) == {"b"}
    assert await dependencies(ctx.pool, "build_dependencies", "dependency_id",
                              builds["b"]["id"]) == {"a"}
    assert await dependencies(ctx.pool, "build_dependencies", "dependency_id",
                              builds["release"]["id"]) == {"hello", "a"}


async def test_same_commit_is_skipped_and_a_new_commit_reuses_unchanged_builds(
        make_repo: Callable, make_ctx: Callable) -> None:
    repo = make_repo({"flake.nix": flake_text("1")})
    ctx = make_ctx()
    jobset_id = await create_jobset(ctx.pool, repo)
    first = await evaluate_now(ctx, jobset_id)
    again = await evaluate_now(ctx, jobset_id)
    assert again["id"] == first["id"]

    commit_files(repo, {"flake.nix": flake_text("2")}, "rev 2")
    second = await evaluate_now(ctx, jobset_id)
    assert second["id"] != first["id"] and second["status"] == "succeeded"
    old = await builds_by_job(ctx.pool, first["id"])
    new = await builds_by_job(ctx.pool, second["id"])
    assert new["hello"]["id"] == old["hello"]["id"] and not new["hello"]["is_new"]
    assert new["tests.unit"]["id"] != old["tests.unit"]["id"] and new["tests.unit"]["is_new"]
    assert new["tests.unit"]["nix_name"] == "unit-2"
    assert (second["nr_builds"], second["nr_new_builds"]) == (7, 1)


async def test_syntax_error_is_recorded_on_jobset_and_evaluation(
        make_repo: Callable, make_ctx: Callable) -> None:
    repo = make_repo({"flake.nix": "{ outputs = { self }: { hydraJobs = ; }; }"})
    ctx = make_ctx()
    jobset_id = await create_jobset(ctx.pool, repo)
    evaluation = await evaluate_now(ctx, jobset_id)
    assert evaluation["status"] == "failed"
    assert "syntax error" in evaluation["error_message"]
    jobset = await ctx.pool.fetchrow("SELECT * FROM jobsets WHERE id = $1", jobset_id)
    assert "syntax error" in jobset["error_message"] and jobset["error_time"] is not None
    assert await ctx.pool.fetchval("SELECT count(*) FROM builds") == 0

    commit_files(repo, {"flake.nix": flake_text()}, "fixed")
    fixed = await evaluate_now(ctx, jobset_id)
    assert fixed["status"] == "succeeded"
    jobset = await ctx.pool.fetchrow("SELECT * FROM jobsets WHERE id = $1", jobset_id)
    assert jobset["error_message"] is None and jobset["error_time"] is None


async def test_fetch_error_is_recorded(tmp_path: Path, make_ctx: Callable) -> None:
    ctx = make_ctx()
    jobset_id = await create_jobset(ctx.pool, tmp_path / "no-such-repo")
    evaluation = await evaluate_now(ctx, jobset_id)
    assert evaluation["status"] == "failed"
    assert "no-such-repo" in evaluation["error_message"]
    assert await ctx.pool.fetchval("SELECT error_message FROM jobsets WHERE id = $1",
                                   jobset_id) == evaluation["error_message"]


async def test_an_uncatchable_error_still_builds_the_good_jobs(
        make_repo: Callable, make_ctx: Callable) -> None:
    flake = flake_text().replace('oops = throw "this job cannot be evaluated";',
                                 "oops = { }.no-such-attribute;")
    repo = make_repo({"flake.nix": flake})
    ctx = make_ctx()
    evaluation = await evaluate_now(ctx, await create_jobset(ctx.pool, repo))
    assert evaluation["status"] == "succeeded", evaluation["error_message"]
    builds = await builds_by_job(ctx.pool, evaluation["id"])
    assert set(builds) == {"hello", "broken", "a", "b", "c", "tests.unit", "release"}
    message = await ctx.pool.fetchval(
        "SELECT error_message FROM evaluation_errors WHERE evaluation_id = $1 AND job = 'oops'",
        evaluation["id"])
    assert "no-such-attribute" in message


LEGACY = r'''
{ greeting, fancy ? false, dep, extra ? "unused" }:
let
  mk = name: builtins.derivation {
    inherit name;
    system = "@SYSTEM@";
    builder = "/bin/sh";
    args = [ "-c" "/bin/mkdir $out" ];
  };
in {
  hello = mk "hello-${greeting}";
  style = mk (if fancy then "fancy" else "plain");
  more = { recurseForDerivations = true; inner = mk "inner"; };
  fromdep = mk (import (dep + "/name.nix"));
}
'''


async def test_legacy_release_nix_gets_string_and_boolean_inputs(
        make_repo: Callable, make_ctx: Callable) -> None:
    repo = make_repo({"ci/release.nix": LEGACY.replace("@SYSTEM@", SYSTEM)})
    dep = make_repo({"name.nix": '"from-dep"'}, name="dep")
    ctx = make_ctx()
    jobset_id = await create_jobset(
        ctx.pool, repo, flake=False, expression="ci/release.nix",
        inputs=[("greeting", "string", "world"), ("fancy", "boolean", "true"),
                ("dep", "git", f"{dep} main")])
    evaluation = await evaluate_now(ctx, jobset_id)
    assert evaluation["status"] == "succeeded", evaluation["error_message"]
    builds = await builds_by_job(ctx.pool, evaluation["id"])
    assert {job: b["nix_name"] for job, b in builds.items()} == {
        "hello": "hello-world", "style": "fancy", "more.inner": "inner",
        "fromdep": "from-dep"}
    inputs = await ctx.pool.fetch(
        "SELECT name, type, uri, revision, value FROM evaluation_inputs "
        "WHERE evaluation_id = $1 ORDER BY name", evaluation["id"])
    assert [tuple(r) for r in inputs if r["name"] != "src"] == [
        ("dep", "git", str(dep), git(dep, "rev-parse", "HEAD"), "main"),
        ("fancy", "boolean", "", "", "true"), ("greeting", "string", "", "", "world")]

    await ctx.pool.execute("UPDATE jobset_inputs SET value = 'false' WHERE name = 'fancy'")
    changed = await evaluate_now(ctx, jobset_id)
    assert changed["id"] != evaluation["id"]
    assert (await builds_by_job(ctx.pool, changed["id"]))["style"]["nix_name"] == "plain"


async def test_nix_timeout_kills_the_evaluation(make_repo: Callable,
                                                make_ctx: Callable) -> None:
    busy = ("builtins.foldl' (a: i: a + builtins.foldl' (b: j: b + j) 0 "
            "(builtins.genList (x: x) 10000)) 0 (builtins.genList (x: x) 1000000)")
    repo = make_repo({"flake.nix": "{ outputs = { self }: { hydraJobs = { n = " + busy
                      + "; }; }; }"})
    ctx = make_ctx({"nix_timeout": 2})
    evaluation = await evaluate_now(ctx, await create_jobset(ctx.pool, repo))
    assert evaluation["status"] == "failed"
    assert "timed out" in evaluation["error_message"]


async def test_an_evaluation_that_fails_halfway_keeps_what_it_queued(
        make_repo: Callable, make_ctx: Callable) -> None:
    busy = ("builtins.foldl' (a: i: a + builtins.foldl' (b: j: b + j) 0 "
            "(builtins.genList (x: x) 10000)) 0 (builtins.genList (x: x) 1000000)")
    flake = ('{ outputs = { self }: { hydraJobs = { a = builtins.derivation { name = "a"; '
             f'system = "{SYSTEM}"; builder = "/bin/sh"; args = [ "-c" "echo > $out" ]; }}; '
             f'z = {busy}; }}; }}; }}')
    repo = make_repo({"flake.nix": flake})
    ctx = make_ctx({"nix_timeout": 3, "workers": 1})
    evaluation = await evaluate_now(ctx, await create_jobset(ctx.pool, repo))
    assert evaluation["status"] == "failed" and evaluation["finished_at"] is not None
    assert "timed out" in evaluation["error_message"]
    builds = await builds_by_job(ctx.pool, evaluation["id"])
    assert list(builds) == ["a"] and builds["a"]["state"] == "queued"


async def until(predicate: Callable[[], bool], seconds: float = 30) -> None:
    for _ in range(int(seconds / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)


async def test_a_notification_wakes_the_role_at_once(make_repo: Callable,
                                                      make_ctx: Callable) -> None:
    repo = make_repo({"flake.nix": flake_text()})
    ctx = make_ctx({"poll_interval": 3600})
    jobset_id = await create_jobset(ctx.pool, repo, check_interval=0)
    with ctx.bus.subscribe(EVAL_CHANGED) as changes, capture_logs() as logs:
        task = asyncio.create_task(role.run(ctx))
        try:
            assert await changes.wait(1) == []  # check_interval 0: only a trigger evaluates
            await ctx.pool.execute(
                "UPDATE jobsets SET trigger_time = now() WHERE id = $1; ", jobset_id)
            await ctx.pool.execute("SELECT pg_notify('circus_eval_requested', $1)",
                                   str(jobset_id))
            # The poll interval is an hour: only the notification can have woken it.
            seen = await changes.wait(120)
            await until(lambda: any(e["event"] == "evaluation finished" for e in logs))
        finally:
            ctx.stopping.set()
            await asyncio.wait_for(task, 30)
    evaluation = await ctx.pool.fetchrow("SELECT * FROM evaluations WHERE jobset_id = $1",
                                         jobset_id)
    assert seen == [(EVAL_CHANGED, str(evaluation["id"]))]
    assert evaluation["status"] == "succeeded"
    finished = [e for e in logs if e["event"] == "evaluation finished"]
    assert len(finished) == 1 and finished[0]["log_level"] == "info"
    assert finished[0]["jobset"] == "proj:main"
    assert finished[0]["evaluation_id"] == evaluation["id"]
    assert (finished[0]["nr_builds"], finished[0]["nr_job_errors"]) == (7, 1)
    assert "duration" in finished[0]


def test_drv_reader_finds_input_derivations_but_not_lookalike_strings(tmp_path: Path) -> None:
    expr = tmp_path / "drvs.nix"
    expr.write_text(r'''
      let
        mk = name: extra: builtins.derivation ({
          inherit name; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "x" ];
        } // extra);
        dep = mk "dep" { };
      in mk "top" {
        uses = "${dep}";
        trick = "(\"/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-fake.drv\",[\"out\"])";
      }
    ''')
    out = subprocess.run(["nix-instantiate", str(expr), "-A", "drvPath", "--eval", "--json",
                          "--read-write-mode"], check=True, capture_output=True, text=True)
    top = out.stdout.strip().strip('"')
    inputs = drv.input_drvs(top)
    assert len(inputs) == 1 and inputs[0].endswith("-dep.drv")
    assert drv.nearest_jobs([top, inputs[0]]) == {top: {inputs[0]}, inputs[0]: set()}


def test_nix_eval_jobs_lines_become_the_same_records() -> None:
    record = jobs.from_eval_jobs({
        "attr": "pkgs.hello", "attrPath": ["pkgs", "hello"], "name": "hello-1.0",
        "system": SYSTEM, "drvPath": "/nix/store/00000000000000000000000000000000-hello.drv",
        "outputs": {"out": "/nix/store/00000000000000000000000000000000-hello"},
        "meta": {"license": [{"spdxId": "MIT"}, {"shortName": "gpl3"}],
                 "maintainers": [{"email": "a@b.c"}], "timeout": 60},
        "namedConstituents": ["other"],
    })
    assert (record.attr, record.name, record.meta.license, record.meta.maintainers,
            record.meta.timeout, record.is_aggregate, record.constituents) == (
        "pkgs.hello", "hello-1.0", "MIT, gpl3", "a@b.c", 60, True, ["other"])


async def test_nix_eval_jobs_output_streams_in_as_records() -> None:
    """nix-eval-jobs cannot run on Nix 2.8: its recorded output stands in for it."""
    target = Target(flake_url="git+file:///repo?rev=0", options=("--option", "a", "b"))
    argv = evaljobs.argv(target, workers.Limits(workers=3, max_memory_mb=2048))
    assert argv[:5] == ["nix-eval-jobs", "--workers", "3", "--max-memory-size", "2048"]
    assert argv[-2:] == ["--flake", "git+file:///repo?rev=0#hydraJobs"]
    records: list[jobs.JobRecord] = []
    sample = ROOT / "tests" / "data" / "nix-eval-jobs-sample.jsonl"
    await evaljobs.stream(target, workers.Limits(), records.append,
                          program=["cat", str(sample)])
    by_attr = {r.attr: r for r in records}
    assert list(by_attr) == ["hello.x86_64-linux", "broken.x86_64-linux",
                             "multi.x86_64-linux", "release"]
    hello = by_attr["hello.x86_64-linux"]
    assert (hello.name, hello.meta.license, hello.meta.maintainers, hello.error) == (
        "hello-2.12.1", "GPL-3.0-or-later", "alice@example.invalid", None)
    assert "marked as broken" in (by_attr["broken.x86_64-linux"].error or "")
    assert set(by_attr["multi.x86_64-linux"].outputs) == {"dev", "out"}
    release = by_attr["release"]
    assert release.is_aggregate and release.constituents == [hello.drv_path,
                                                             "multi.x86_64-linux"]


async def test_two_evaluator_processes_evaluate_a_jobset_once(make_repo: Callable,
                                                              make_ctx: Callable) -> None:
    repo = make_repo({"flake.nix": flake_text()})
    first, second = make_ctx({"poll_interval": 3600}), make_ctx({"poll_interval": 3600})
    jobset_id = await create_jobset(first.pool, repo, check_interval=0)
    with first.bus.subscribe(EVAL_CHANGED) as changes, capture_logs() as logs:
        tasks = [asyncio.create_task(role.run(ctx)) for ctx in (first, second)]
        try:
            await first.pool.execute(
                "UPDATE jobsets SET trigger_time = now() WHERE id = $1", jobset_id)
            await first.pool.execute("SELECT pg_notify('circus_eval_requested', $1)",
                                     str(jobset_id))
            assert await changes.wait(120)
            await until(lambda: any(e["event"] == "evaluation finished" for e in logs))
            await asyncio.sleep(1)  # a second evaluation, if any, would have begun by now
        finally:
            first.stopping.set()
            second.stopping.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 30)
    assert await first.pool.fetchval(
        "SELECT count(*) FROM evaluations WHERE jobset_id = $1", jobset_id) == 1
    assert [e["event"] for e in logs].count("evaluation finished") == 1
