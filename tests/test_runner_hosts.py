"""Runners on other hosts: two `circus run --roles=runner` processes, each in its own
network namespace, on one embedded PostgreSQL that listens on the head's address
(`database.listen`) and lets them in with a password (pg_hba.conf). One runner is
killed with SIGKILL at random moments, again and again; every build still ends exactly
once, with the status its derivation deserves."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
from pathlib import Path

import asyncpg

from circus.db import embedded
from tests.helpers.hosts import Host, Network
from tests.helpers.runner import wait_for
from tests.helpers.suite import ROOT, free_port, host_system

BUILDS = 200
PASSWORD = "runner-secret"
# Every build that finishes, as the database saw it: a build finished twice shows twice.
FINISH_LOG = """
CREATE TABLE test_finishes (build_id bigint, buildstatus smallint, at timestamptz DEFAULT now());
CREATE FUNCTION test_log_finish() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO test_finishes (build_id, buildstatus) VALUES (NEW.id, NEW.buildstatus);
    RETURN NEW;
END $$;
CREATE TRIGGER test_log_finish AFTER UPDATE ON builds FOR EACH ROW
    WHEN (NEW.state = 'finished' AND OLD.state <> 'finished') EXECUTE FUNCTION test_log_finish();
"""


def head_database(network: Network, tmp_path: Path) -> tuple[embedded.EmbeddedPostgres, str]:
    """The head's embedded server, listening on the bridge, with a password for the
    builder network: the README's pg_hba.conf line."""
    server = embedded.for_state_dir(tmp_path / "head", free_port(), listen=network.gateway)
    server.start()
    with (server.data_dir / "pg_hba.conf").open("a") as hba:
        hba.write(f"host circus postgres {network.subnet} scram-sha-256\n")
    url = f"postgresql://postgres:{PASSWORD}@{network.gateway}:{server.port}/circus"
    return server, url


async def prepare(server: embedded.EmbeddedPostgres, url: str) -> None:
    conn = await asyncpg.connect(server.url)
    try:
        await conn.execute(f"ALTER ROLE postgres PASSWORD '{PASSWORD}'")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()
    migrate = await asyncio.create_subprocess_exec(
        str(ROOT / ".venv/bin/circus"), "migrate", "up",
        env={**os.environ, "CIRCUS_DATABASE__URL": url}, stderr=asyncio.subprocess.PIPE)
    _, err = await migrate.communicate()
    assert migrate.returncode == 0, err.decode()


def derivations(tmp_path: Path) -> list[str]:
    """BUILDS derivations taking a moment each; every seventh fails."""
    expr = tmp_path / "many.nix"
    expr.write_text(f"""
builtins.genList (n: builtins.derivation {{
  name = "many-${{toString n}}";
  system = builtins.currentSystem;
  nonce = "{os.urandom(8).hex()}";
  builder = "/bin/sh";
  args = [ "-c" (if builtins.div n 7 * 7 == n then "exit 1"
                 else "/bin/sleep 0.$(( n % 5 )); /bin/mkdir $out") ];
}}) {BUILDS}
""")
    out = subprocess.run(["nix-instantiate", str(expr)], check=True, capture_output=True,
                         text=True).stdout.split()
    assert len(out) == BUILDS
    return out


def start_runner(host: Host, url: str, tmp_path: Path, nr: int) -> subprocess.Popen[bytes]:
    log = (tmp_path / f"{host.name}-{nr}.log").open("wb")
    return host.popen([str(ROOT / ".venv/bin/circus"), "run", "--roles=runner"], env={
        "CIRCUS_DATABASE__URL": url, "CIRCUS_STATE_DIR": str(tmp_path / host.name),
        "CIRCUS_QUEUE_RUNNER__WORKERS": "3", "CIRCUS_QUEUE_RUNNER__LEASE_SECONDS": "3",
        "CIRCUS_GC__ENABLED": "false"}, stdout=log, stderr=subprocess.STDOUT)


async def test_two_runner_hosts_on_one_database_lose_and_repeat_nothing(network, tmp_path):
    one, two = network.add_host("r1", sshd=False), network.add_host("r2", sshd=False)
    server, url = head_database(network, tmp_path)
    try:
        await prepare(server, url)
        pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
        try:
            await _run(pool, one, two, url, tmp_path)
        finally:
            await pool.close()
    finally:
        server.stop("immediate")


async def _run(pool: asyncpg.Pool, one: Host, two: Host, url: str, tmp_path: Path) -> None:
    await pool.execute(FINISH_LOG)
    project = await pool.fetchval("INSERT INTO projects (name, repository_url) "
                                  "VALUES ('p', 'file:///x') RETURNING id")
    jobset = await pool.fetchval("INSERT INTO jobsets (project_id, name) VALUES ($1, 'j') "
                                 "RETURNING id", project)
    drvs = derivations(tmp_path)
    system = host_system()
    expected = {}
    for n, drv in enumerate(drvs):
        build_id = await pool.fetchval(
            "INSERT INTO builds (project_id, jobset_id, job, drv_path, system) "
            "VALUES ($1, $2, $3, $4, $5) RETURNING id", project, jobset, f"job{n}", drv, system)
        expected[build_id] = 1 if n % 7 == 0 else 0
    runners = [start_runner(one, url, tmp_path, 0), start_runner(two, url, tmp_path, 0)]
    rng, kills = random.Random(), []
    try:
        while await _unfinished(pool) > 20 and len(kills) < 4:
            # Once it works, at a random moment: mid-claim, mid-build, mid-finish.
            if not await _running_under(pool, runners[0].pid, within=30):
                break
            await asyncio.sleep(rng.uniform(0.0, 1.5))
            kills.append(await _running_under(pool, runners[0].pid))
            runners[0].send_signal(signal.SIGKILL)
            runners[0].wait()
            runners[0] = start_runner(one, url, tmp_path, len(kills))
        await wait_for(lambda: _all_done(pool), 180)
    finally:
        for proc in runners:
            proc.send_signal(signal.SIGTERM)
        for proc in runners:
            proc.wait(timeout=60)
    # Killed at least twice while it held builds (their count at each kill).
    assert sum(1 for held in kills if held) >= 2, kills
    rows = await pool.fetch("SELECT id, buildstatus FROM builds")
    assert {row["id"]: row["buildstatus"] for row in rows} == expected
    finishes = await pool.fetch("SELECT build_id, count(*) AS n FROM test_finishes "
                                "GROUP BY build_id")
    assert {row["build_id"]: row["n"] for row in finishes} == dict.fromkeys(expected, 1)
    outputs = await pool.fetchval("SELECT count(*) FROM build_outputs")
    assert outputs == sum(1 for status in expected.values() if status == 0)
    # Both hosts' runners did work, over TCP, as themselves.
    runner_ids = await pool.fetchval("SELECT count(DISTINCT runner_id) FROM builds")
    assert runner_ids >= 2


async def _running_under(pool: asyncpg.Pool, pid: int, within: float = 0) -> int:
    """How many builds the runner process `pid` holds (waiting up to `within` s for one)."""
    query = "SELECT count(*) FROM builds WHERE state = 'running' AND runner_id LIKE $1"
    deadline = asyncio.get_running_loop().time() + within
    while True:
        held: int = await pool.fetchval(query, f"%-{pid}-%")
        if held or asyncio.get_running_loop().time() >= deadline:
            return held
        await asyncio.sleep(0.05)


async def _unfinished(pool: asyncpg.Pool) -> int:
    return await pool.fetchval("SELECT count(*) FROM builds WHERE state <> 'finished'")


async def _all_done(pool: asyncpg.Pool) -> bool:
    return await _unfinished(pool) == 0
