"""Push-to-evaluation benchmark: how soon a signed GitHub push delivered to a real
`circus run --roles=server,evaluator` has an evaluation running and finished, next to
Nix alone evaluating the same commit (the reference), and to the same push asked for
through `POST /api/v1/evaluations/trigger`.

    .venv/bin/python bench/webhook_latency.py [--pushes 10] [--jobs 50]

(or `bash etc/dev.sh bench webhook_latency ARGS...`). A local git repository holds a
flake of `--jobs` trivial jobs; each push is a new commit (a new seed, so new .drv
files), then one delivery to `/api/v1/webhooks/{id}/github`, signed with the project's
secret as GitHub signs (HMAC-SHA256). The database is polled every 5 ms for the
evaluation of that commit: "row" is when its running row is committed, "done" when it
has left 'running'. The evaluator's poll interval is 600 s, so only the delivery can
start it. The reference is `nix eval --json` of the same commit's jobs (what any
evaluator must at least spend), run after Circus on a fresh seed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import asyncpg
from eval_stream import BRANCH, FLAKE, Circus, fresh_database, host_system, nix_env

from circus.db import embedded


def commit(repo: Path, text: str) -> str:
    (repo / "flake.nix").write_text(text)

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), "-c", "user.name=bench", "-c", "user.email=b@invalid",
             *args], check=True, capture_output=True, text=True).stdout.strip()

    if not (repo / ".git").exists():
        git("init", "-q", "-b", BRANCH)
    git("add", "flake.nix")
    git("commit", "-q", "-m", "push")
    return git("rev-parse", "HEAD")


def flake(jobs: int, system: str, seed: str) -> str:
    return (FLAKE.replace("@SEED@", seed).replace("@SYSTEM@", system)
            .replace("@COST@", "0").replace("@JOBS@", str(jobs)))


def deliver(circus: Circus, project_id: int, secret: str, sha: str, n: int) -> None:
    body = json.dumps({"ref": f"refs/heads/{BRANCH}", "after": sha, "deleted": False,
                       "repository": {"default_branch": BRANCH}}).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    req = urllib.request.Request(
        f"http://127.0.0.1:{circus.port}/api/v1/webhooks/{project_id}/github", data=body,
        method="POST", headers={"Content-Type": "application/json", "X-GitHub-Event": "push",
                                "X-GitHub-Delivery": f"bench-{n}",
                                "X-Hub-Signature-256": signature})
    with urllib.request.urlopen(req, timeout=30) as answer:
        assert answer.status == 202, answer.status


async def wait_for(url: str, sha: str, sent: float) -> tuple[float, float]:
    conn = await asyncpg.connect(url)
    try:
        row_at = None
        while True:
            status = await conn.fetchval(
                "SELECT status FROM evaluations WHERE commit_hash = $1", sha)
            now = time.monotonic()
            if status is not None and row_at is None:
                row_at = now - sent
            if status not in (None, "running"):
                return row_at or now - sent, now - sent
            if now - sent > 300:
                raise RuntimeError(f"no finished evaluation of {sha} after 300 s")
            await asyncio.sleep(0.005)
    finally:
        await conn.close()


def bare(repo: Path, sha: str, env: dict[str, str]) -> float:
    started = time.monotonic()
    subprocess.run(["nix", "eval", "--json",
                    f"git+file://{repo}?ref=refs/heads/{BRANCH}&rev={sha}#hydraJobs",
                    "--apply", "js: builtins.mapAttrs (n: j: j.drvPath) js"],
                   check=True, capture_output=True, env=env)
    return time.monotonic() - started


def summary(name: str, values: list[float]) -> str:
    return (f"{name:<38} median {statistics.median(values):7.3f} s   "
            f"min {min(values):7.3f}   max {max(values):7.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pushes", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=50)
    args = parser.parse_args()
    env = nix_env()
    system = host_system(env)
    rows, dones, triggered, refs = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="circus-bench-") as name:
        tmp = Path(name)
        server = embedded.EmbeddedPostgres(tmp / "postgres")
        server.start()
        try:
            url = asyncio.run(fresh_database(server, "webhook_latency"))
            repo = tmp / "repo"
            repo.mkdir()
            commit(repo, flake(args.jobs, system, "start"))
            circus = Circus(tmp, url, env)
            circus.start()
            try:
                project = circus.request("POST", "/api/v1/projects", {
                    "name": "bench", "repository_url": f"file://{repo}"})
                jobset = circus.request("POST", f"/api/v1/projects/{project['id']}/jobsets",
                                        {"name": "main", "branch": BRANCH, "check_interval": 0})
                secret = circus.request("POST", f"/api/v1/projects/{project['id']}/webhooks",
                                        {"forge": "github"})["secret"]
                for n in range(args.pushes):
                    sha = commit(repo, flake(args.jobs, system, f"push-{n}"))
                    sent = time.monotonic()
                    deliver(circus, project["id"], secret, sha, n)
                    row, done = asyncio.run(wait_for(url, sha, sent))
                    rows.append(row)
                    dones.append(done)
                    sha = commit(repo, flake(args.jobs, system, f"api-{n}"))
                    sent = time.monotonic()
                    circus.request("POST", "/api/v1/evaluations/trigger",
                                   {"jobset_id": jobset["id"]})
                    triggered.append(asyncio.run(wait_for(url, sha, sent))[1])
                    sha = commit(repo, flake(args.jobs, system, f"bare-{n}"))
                    refs.append(bare(repo, sha, env))
            finally:
                circus.stop()
        finally:
            server.stop("immediate")
    print(f"webhook_latency: {args.pushes} pushes of a {args.jobs}-job flake; {system}")
    print(summary("webhook -> evaluation row", rows))
    print(summary("webhook -> evaluation finished", dones))
    print(summary("API trigger -> evaluation finished", triggered))
    print(summary("reference: nix eval of the commit", refs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
