"""Evaluation streaming benchmark: how soon a real `circus run --roles=server,evaluator`
queues the builds of a generated flake of N jobs, next to a bare `nix eval` of the same
walk (the argv Circus's walker runs, from circus.evaluator.nixeval.walker_argv).

    .venv/bin/python bench/eval_stream.py [--jobs 20000,100000] [--cost 0] [--timeout 1800]

(or `bash etc/dev.sh bench eval_stream ARGS...`). Per job count it generates two flakes of
the same shape in local git repositories, each with its own seed string in every
derivation, so that both the bare reference and Circus write new .drv files (a second
evaluation of the same flake is faster: the .drv files exist). The bare reference is then
run a second time on its own flake, labelled, to show that difference.

Circus runs on a fresh database of an embedded PostgreSQL in a temporary directory, with
no runner, so the builds stay queued. The script creates a project and a flake jobset
through the REST API (an admin API key from the declarative config), triggers an
evaluation, and polls the database every 20 ms for: the first queued build of the jobset
committed (= "first build claimable": a runner's claim needs nothing more than a committed
queued row), as many builds linked to the evaluation as there are jobs, and the
evaluation's row leaving 'running'. Every 50 ms it samples the resident memory of the
`nix*` processes below Circus (their sum) and of Circus's own process.

`--cost N` makes every derivation depend on `foldl' (a: b: a + b) 0 (genList ... N)`, an
evaluation cost per job; 0 (the default) leaves the jobs trivial.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import attrs

from circus.app.config import EvaluatorConfig
from circus.db import embedded, queries
from circus.evaluator.evaluate import _options as nix_options
from circus.evaluator.nixeval import Target, nix_message, walker_argv

BENCH = queries.load(Path(__file__).parent / "sql")

POLL = 0.02  # database, seconds
SAMPLE = 0.05  # memory, seconds
BRANCH = "main"

FLAKE = """{
  outputs = { self }:
    let
      seed = "@SEED@";
      cost = n: builtins.foldl' (a: b: a + b) 0 (builtins.genList (x: x + n) @COST@);
    in {
      hydraJobs = builtins.listToAttrs (map (n: {
        name = "job${toString n}";
        value = derivation ({
          name = "job${toString n}";
          system = "@SYSTEM@";
          builder = "/bin/sh";
          args = [ "-c" "echo ${toString n} > $out" ];
          inherit seed;
        } // (if @COST@ > 0 then { cost = toString (cost n); } else { }));
      }) (builtins.genList (x: x) @JOBS@));
    };
}
"""


class BenchError(Exception):
    pass


# Environment ------------------------------------------------------------------------------


def nix_env() -> dict[str, str]:
    """The environment of every Nix call and of Circus: no network, nix-command and
    flakes on. As root without a `nixbld` group (Debian's nix-bin), builds run as root
    with no sandbox, as etc/dev.sh sets it (Circus's start-up check builds a derivation)."""
    lines = ["experimental-features = nix-command flakes", "substituters ="]
    if os.geteuid() == 0 and not _group_exists("nixbld"):
        lines += ["sandbox = false", "build-users-group ="]
    before = os.environ.get("NIX_CONFIG", "")
    return {**os.environ, "NIX_CONFIG": "\n".join([before, *lines] if before else lines) + "\n"}


def _group_exists(name: str) -> bool:
    import grp

    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def host_system(env: dict[str, str]) -> str:
    return subprocess.run(["nix", "eval", "--raw", "--impure", "--expr", "builtins.currentSystem"],
                          check=True, capture_output=True, text=True, env=env).stdout.strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


# Flakes -----------------------------------------------------------------------------------


def flake_text(jobs: int, system: str, seed: str, cost: int) -> str:
    return (FLAKE.replace("@SEED@", seed).replace("@SYSTEM@", system)
            .replace("@COST@", str(cost)).replace("@JOBS@", str(jobs)))


def make_repo(path: Path, text: str) -> str:
    """A git repository with flake.nix committed on `main`; its commit."""
    path.mkdir(parents=True)
    (path / "flake.nix").write_text(text)

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(path), "-c", "user.name=bench", "-c", "user.email=bench@invalid",
             *args], check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q", "-b", BRANCH)
    git("add", "flake.nix")
    git("commit", "-q", "-m", "generated flake")
    return git("rev-parse", "HEAD")


def target_for(repo: Path, commit: str) -> Target:
    """What Circus's evaluator would evaluate (circus/evaluator/evaluate.py, _prepare)."""
    url = f"git+file://{repo}?ref={quote('refs/heads/' + BRANCH)}&rev={commit}"
    return Target(flake_url=url, attr="hydraJobs", options=nix_options(EvaluatorConfig()))


# Memory -----------------------------------------------------------------------------------


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command name) of every process."""
    found: dict[int, tuple[int, str]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        head, _, rest = text.rpartition(")")
        found[int(entry.name)] = (int(rest.split()[1]), head.partition("(")[2])
    return found


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class MemorySampler(threading.Thread):
    """Every SAMPLE seconds: the summed RSS of the `nix*` processes at or below `root`,
    and the RSS of `root` itself; the peaks of both."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.peak_nix_mb = 0.0
        self.peak_root_mb = 0.0
        self.most_nix = 0
        self._done = threading.Event()

    def sample(self) -> None:
        procs = _processes()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _) in procs.items():
            children.setdefault(ppid, []).append(pid)
        below, todo = [], [self.root]
        while todo:
            pid = todo.pop()
            below.append(pid)
            todo.extend(children.get(pid, []))
        nix = [pid for pid in below if pid in procs and procs[pid][1].startswith("nix")]
        self.peak_nix_mb = max(self.peak_nix_mb, sum(_rss_mb(pid) for pid in nix))
        self.peak_root_mb = max(self.peak_root_mb, _rss_mb(self.root))
        self.most_nix = max(self.most_nix, len(nix))

    def run(self) -> None:
        self.sample()
        while not self._done.wait(SAMPLE):
            self.sample()

    def stop(self) -> None:
        self._done.set()
        self.join()


# The bare reference -----------------------------------------------------------------------


@attrs.frozen
class Bare:
    seconds: float
    peak_mb: float
    jobs: int


def bare_eval(target: Target, env: dict[str, str], out: Path) -> Bare:
    argv = walker_argv(target, [])
    with out.open("wb") as stdout:
        start = time.monotonic()
        proc = subprocess.Popen(argv, env=env, stdout=stdout, stderr=subprocess.PIPE)
        sampler = MemorySampler(proc.pid)
        sampler.start()
        _, stderr = proc.communicate()
        seconds = time.monotonic() - start
        sampler.stop()
    if proc.returncode != 0:
        raise BenchError(f"bare nix eval failed: {nix_message(stderr.decode(errors='replace'))}")
    value = json.loads(out.read_bytes())
    out.unlink()
    return Bare(seconds=seconds, peak_mb=sampler.peak_nix_mb,
                jobs=len(value) if isinstance(value, list) else -1)


# Circus -----------------------------------------------------------------------------------


class Circus:
    """One `circus run --roles=server,evaluator`, configured like tests/helpers/e2e.py."""

    def __init__(self, tmp: Path, database_url: str, env: dict[str, str]) -> None:
        self.key = "circus_bench_" + secrets.token_hex(16)
        self.port = free_port()
        self.log_path = tmp / "circus.log"
        self.tmp = tmp
        config = tmp / "circus-bench.toml"
        config.write_text(f'[[declarative.api_keys]]\nname = "bench"\nkey = "{self.key}"\n'
                          'role = "admin"\n')
        self.env = {
            **env,
            "CIRCUS_CONFIG_FILE": str(config),
            "CIRCUS_DATABASE__URL": database_url,
            "CIRCUS_STATE_DIR": str(tmp / "state"),
            "CIRCUS_SERVER__PORT": str(self.port),
            "CIRCUS_EVALUATOR__WORK_DIR": str(tmp / "eval"),
            # A trigger wakes the evaluator at once; the poll is only its safety net.
            "CIRCUS_EVALUATOR__POLL_INTERVAL": "600",
            "CIRCUS_QUEUE_RUNNER__WORK_DIR": str(tmp / "runner"),
            "CIRCUS_GC__GC_ROOTS_DIR": str(tmp / "gcroots"),
            "CIRCUS_TRACING__FORMAT": "json",
            "CIRCUS_SERVER__ALLOWED_URL_SCHEMES": '["file"]',
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "circus.cli", "run", "--roles=server,evaluator"],
                env=self.env, cwd=self.tmp, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + 120
        while True:
            self.check_alive()
            if any(line.get("event") == "evaluator started" for line in self.new_log_lines()):
                break
            if time.monotonic() > deadline:
                raise BenchError(f"circus did not start its evaluator:\n{self.log_tail()}")
            time.sleep(0.1)
        while True:
            try:
                if self.request("GET", "/health").get("status") == "ok":
                    return
            except OSError:
                pass
            self.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(f"circus's server did not answer:\n{self.log_tail()}")
            time.sleep(0.1)

    def check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise BenchError(f"circus exited with {self.proc.returncode}:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def new_log_lines(self) -> list[dict[str, Any]]:
        """JSON log lines written since the last call (others are skipped)."""
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            data = log.read()
        end = data.rfind(b"\n") + 1
        self._log_offset += end
        return _json_lines(data[:end])

    def log_tail(self, count: int = 30) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-count:])

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                     method=method)
        req.add_header("Content-Type", "application/json")
        if method != "GET":
            req.add_header("Authorization", f"Bearer {self.key}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            raise BenchError(f"{method} {path}: {err.code} {err.read()[:500]!r}") from None


@attrs.define
class Streamed:
    first_queued: float | None = None
    all_queued: float | None = None
    finished: float | None = None
    linked: int = 0
    status: str = ""
    error: str | None = None
    nr_builds: int = 0
    nr_job_errors: int = 0
    peak_nix_mb: float = 0.0
    peak_circus_mb: float = 0.0
    most_nix: int = 0
    evaluator: str = "?"


async def watch(circus: Circus, url: str, jobset_id: int, jobs: int,
                limit: float) -> Streamed:
    """Trigger the evaluation and poll the database until it is no longer running."""
    result = Streamed()
    conn = await asyncpg.connect(url)
    sampler = MemorySampler(circus.pid)
    sampler.start()
    try:
        start = time.monotonic()
        await asyncio.to_thread(circus.request, "POST", "/api/v1/evaluations/trigger",
                                {"jobset_id": jobset_id})
        next_log = start
        while True:
            at = time.monotonic() - start
            if result.first_queued is None and await conn.fetchval(
                    BENCH.eval_stream_first_queued, jobset_id):
                result.first_queued = at
            if result.first_queued is not None and result.all_queued is None:
                at = time.monotonic() - start
                result.linked = await conn.fetchval(BENCH.eval_stream_linked, jobset_id)
                if result.linked >= jobs:
                    result.all_queued = at
            at = time.monotonic() - start
            row = await conn.fetchrow(BENCH.eval_stream_evaluation, jobset_id)
            if row is not None and (row["status"] != "running" or row["finished_at"]):
                result.finished = at
                result.status, result.error = row["status"], row["error_message"]
                result.nr_builds, result.nr_job_errors = row["nr_builds"], row["nr_job_errors"]
                break
            if time.monotonic() > next_log:  # a crash leaves no evaluation row behind
                next_log += 0.5
                circus.check_alive()
                for line in circus.new_log_lines():
                    if line.get("level") in ("error", "critical") and "evaluat" in str(
                            line.get("event")):
                        raise BenchError(f"circus: {json.dumps(line)[:4000]}")
            if at > limit:
                raise BenchError(f"no finished evaluation after {limit:.0f} s "
                                 f"({result.linked} builds linked)")
            await asyncio.sleep(POLL)
        # What committed with the evaluation's end was there by then.
        if result.first_queued is None and await conn.fetchval(
                BENCH.eval_stream_first_queued, jobset_id):
            result.first_queued = result.finished
        if result.all_queued is None:
            result.linked = await conn.fetchval(BENCH.eval_stream_linked, jobset_id)
            if result.linked >= jobs:
                result.all_queued = result.finished
    finally:
        sampler.stop()
        await conn.close()
    result.peak_nix_mb, result.peak_circus_mb = sampler.peak_nix_mb, sampler.peak_root_mb
    result.most_nix = sampler.most_nix
    return result


async def fresh_database(server: embedded.EmbeddedPostgres, name: str) -> str:
    admin = await asyncpg.connect(server.admin_url())
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name}")
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    return server.admin_url(name)


def run_circus(tmp: Path, server: embedded.EmbeddedPostgres, env: dict[str, str],
               repo: Path, jobs: int, timeout: float) -> Streamed:
    url = asyncio.run(fresh_database(server, f"eval_stream_{jobs}"))
    circus = Circus(tmp, url, env)
    try:
        circus.start()
        project = circus.request("POST", "/api/v1/projects",
                                 {"name": f"bench{jobs}", "repository_url": f"file://{repo}"})
        jobset = circus.request("POST", f"/api/v1/projects/{project['id']}/jobsets",
                                {"name": "main", "nix_expression": "hydraJobs", "flake": True,
                                 "check_interval": 0})
        result = asyncio.run(watch(circus, url, jobset["id"], jobs, timeout))
        started = [line for line in _all_lines(circus.log_path)
                   if line.get("event") == "evaluator started"]
        if started:
            result.evaluator = str(started[0].get("evaluator", "?"))
        return result
    except BenchError:
        print(f"--- last lines of {circus.log_path}:\n{circus.log_tail()}", file=sys.stderr)
        raise
    finally:
        circus.stop()


def _all_lines(path: Path) -> list[dict[str, Any]]:
    return _json_lines(path.read_bytes())


def _json_lines(data: bytes) -> list[dict[str, Any]]:
    """The JSON objects among `data`'s lines (others are skipped)."""
    lines: list[dict[str, Any]] = []
    for raw in data.splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict):
            lines.append(line)
    return lines


# The benchmark ----------------------------------------------------------------------------


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def measure(tmp: Path, server: embedded.EmbeddedPostgres, env: dict[str, str], system: str,
            jobs: int, cost: int, second_bare: bool, timeout: float) -> list[tuple[str, str]]:
    root = tmp / f"jobs-{jobs}"
    nonce = secrets.token_hex(8)
    bare_repo, circus_repo = root / "bare-flake", root / "circus-flake"
    bare_commit = make_repo(bare_repo, flake_text(jobs, system, f"bare-{nonce}", cost))
    make_repo(circus_repo, flake_text(jobs, system, f"circus-{nonce}", cost))
    target = target_for(bare_repo, bare_commit)

    load_bare = load()
    bare = bare_eval(target, env, root / "bare.json")
    if bare.jobs != jobs:
        raise BenchError(f"the bare walk returned {bare.jobs} records, not {jobs}")
    again = bare_eval(target, env, root / "bare.json") if second_bare else None

    load_circus = load()
    streamed = run_circus(root, server, env, circus_repo, jobs, timeout)
    if streamed.status != "succeeded":
        raise BenchError(f"the evaluation ended {streamed.status}: {streamed.error}")

    again_s = None if again is None else again.seconds
    ratio = "-" if streamed.all_queued is None else f"{streamed.all_queued / bare.seconds:.2f}"
    all_queued = seconds(streamed.all_queued)
    if streamed.all_queued is None:
        all_queued = f"never ({streamed.linked} of {jobs} linked)"
    return [
        ("bare nix eval, new .drv files (s)", seconds(bare.seconds)),
        ("bare nix eval again, .drv files exist (s)", seconds(again_s)),
        ("bare nix eval peak RSS (MB)", f"{bare.peak_mb:.0f}"),
        ("Circus trigger -> first build queued (s)", seconds(streamed.first_queued)),
        ("Circus trigger -> all builds queued (s)", all_queued),
        ("Circus trigger -> evaluation finished (s)", seconds(streamed.finished)),
        ("all queued / bare (new .drv files both)", ratio),
        ("Circus evaluator peak RSS, sum of nix (MB)", f"{streamed.peak_nix_mb:.0f}"),
        ("Circus nix processes at once (most)", str(streamed.most_nix)),
        ("Circus process peak RSS (MB)", f"{streamed.peak_circus_mb:.0f}"),
        ("evaluation: builds / job errors", f"{streamed.nr_builds} / {streamed.nr_job_errors}"),
        ("Circus evaluator", streamed.evaluator),
        ("load average (1 min) before bare / Circus", f"{load_bare} / {load_circus}"),
        ("cores (usable / online)", f"{len(os.sched_getaffinity(0))} / {os.cpu_count()}"),
    ]


def table(columns: dict[int, list[tuple[str, str]]]) -> str:
    labels = [label for label, _ in next(iter(columns.values()))]
    width = max(map(len, labels))
    values = {jobs: dict(rows) for jobs, rows in columns.items()}
    cols = {jobs: max(len(f"{jobs} jobs"), *map(len, values[jobs].values())) for jobs in values}
    lines = [" " * width + "".join(f"  {f'{jobs} jobs':>{cols[jobs]}}" for jobs in values)]
    for label in labels:
        lines.append(f"{label:<{width}}" + "".join(
            f"  {values[jobs][label]:>{cols[jobs]}}" for jobs in values))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs", default="20000,100000",
                        help="comma-separated job counts (default 20000,100000)")
    parser.add_argument("--cost", type=int, default=0,
                        help="length of the list every job's derivation sums (default 0)")
    parser.add_argument("--timeout", type=float, default=1800,
                        help="seconds one Circus evaluation may take (default 1800)")
    parser.add_argument("--no-second-bare", dest="second_bare", action="store_false",
                        help="skip the second bare nix eval on the same flake")
    args = parser.parse_args()
    counts = [int(n) for n in args.jobs.split(",") if n.strip()]
    env = nix_env()
    system = host_system(env)
    print(f"eval_stream: jobs {', '.join(map(str, counts))}; cost {args.cost}; {system}; "
          f"{len(os.sched_getaffinity(0))} cores; load average {load()}")
    print("Both the bare reference and Circus evaluate a flake not evaluated before (own "
          "seed: new .drv files); 'again' reruns the bare reference on its flake.\n"
          "'first build queued' = the first committed queued build row, which is all a "
          "runner's claim needs (no runner runs).")
    columns: dict[int, list[tuple[str, str]]] = {}
    with tempfile.TemporaryDirectory(prefix="circus-bench-") as name:
        tmp = Path(name)
        server = embedded.EmbeddedPostgres(tmp / "postgres")
        server.start()
        try:
            for jobs in counts:
                try:
                    columns[jobs] = measure(tmp, server, env, system, jobs, args.cost,
                                            args.second_bare, args.timeout)
                except BenchError as exc:
                    print(f"\n{jobs} jobs: FAILED: {exc}", file=sys.stderr)
                    if columns:
                        print("\n" + table(columns))
                    return 1
                print(f"\n{table({jobs: columns[jobs]})}", flush=True)
        finally:
            server.stop("immediate")
    if len(columns) > 1:
        print(f"\nall job counts (cost {args.cost}):\n{table(columns)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
