"""`circus demo`: every role in one process on an embedded database, with a demo project
whose flake needs nothing but /bin/sh (no nixpkgs, no network).
"""

from __future__ import annotations

import asyncio
import platform
import sys
import typing
from pathlib import Path
from typing import Any

import structlog

from circus.app import config as configuration
from circus.app import logsetup as circus_logging
from circus.app import supervisor
from circus.proc import git

log = structlog.get_logger(__name__)

ADMIN_KEY = "circus_demo_admin_key"
READONLY_KEY = "circus_demo_readonly_key"
PROJECT = "demo"
JOBSET = "main"
JOBS = ("broken", "counter", "docs", "greeting", "hello", "release")
REPO_DIR = "demo-repo"

# `@system@` is replaced by the host's Nix system: builders only use /bin/sh and
# absolute paths (PATH is empty in a build), so any Linux host can build every job.
FLAKE_TEMPLATE = r"""{
  description = "Circus demo: jobs that need nothing but /bin/sh";

  outputs = { self }:
    let
      system = "@system@";
      job = name: description: script: extra:
        (builtins.derivation ({
          inherit name system;
          builder = "/bin/sh";
          args = [ "-c" script ];
        } // extra)) // { meta = { inherit description; }; };

      hello = job "hello" "Says hello" ''
        echo "hello from Circus"
        /bin/mkdir -p $out
        echo "Hello, world!" > $out/greeting
      '' { };

      docs = job "docs" "Documentation with a product and a metric" ''
        /bin/mkdir -p $out/share/doc $out/nix-support
        echo "<h1>Circus demo manual</h1>" > $out/share/doc/index.html
        echo "doc manual $out/share/doc index.html" > $out/nix-support/hydra-build-products
        echo "pages 1 count" > $out/nix-support/hydra-metrics
        echo "docs written"
      '' { };
    in {
      hydraJobs = {
        inherit hello docs;

        # Depends on `hello`: it is built only once `hello` has succeeded.
        greeting = job "greeting" "Reads the output of hello" ''
          /bin/mkdir -p $out
          /bin/cat ${hello}/greeting > $out/greeting
          echo "greeting copied from ${hello}"
        '' { };

        # Prints slowly, to watch a live log.
        counter = job "counter" "Counts to ten, one line a second" ''
          for i in 1 2 3 4 5 6 7 8 9 10; do echo "count $i"; /bin/sleep 1; done
          /bin/mkdir -p $out
        '' { };

        broken = job "broken" "Fails on purpose" ''
          echo "this job fails on purpose" >&2
          exit 1
        '' { };

        release = job "release" "Aggregate of hello and docs" ''
          /bin/mkdir -p $out
          echo "${hello} ${docs}" > $out/constituents
        '' { _hydraAggregate = true; constituents = [ hello docs ]; };
      };
    };
}
"""

# A flake without inputs still needs a lock file; committing it keeps the tree clean
# when Nix would otherwise write one on first evaluation.
FLAKE_LOCK = '{\n  "nodes": {\n    "root": {}\n  },\n  "root": "root",\n  "version": 7\n}\n'

_GIT_IDENTITY = ("-c", "user.name=Circus Demo", "-c", "user.email=demo@circus.invalid")


def host_system() -> str:
    """The host's Nix system string, e.g. `x86_64-linux`."""
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(),
                                                          platform.machine().lower())
    kernel = "darwin" if sys.platform == "darwin" else "linux"
    return f"{machine}-{kernel}"


def create_repo(state_dir: Path, system: str | None = None) -> Path:
    """The demo git repository under `state_dir`, created and committed the first time."""
    repo = state_dir / REPO_DIR
    if (repo / ".git").is_dir():
        return repo
    repo.mkdir(parents=True, exist_ok=True)
    _git(repo, "init", "-q", "-b", "main")
    (repo / "flake.nix").write_text(FLAKE_TEMPLATE.replace("@system@", system or host_system()))
    (repo / "flake.lock").write_text(FLAKE_LOCK)
    _git(repo, "add", "flake.nix", "flake.lock")
    _git(repo, *_GIT_IDENTITY, "commit", "-q", "-m", "Circus demo jobs")
    log.info("demo repository created", repo=str(repo))
    return repo


def _git(repo: Path, *args: str) -> None:
    git.run_local(repo, *args)


def settings(state_dir: Path, port: int) -> dict[str, Any]:
    """The demo's configuration, before the user's files and environment."""
    repo = state_dir / REPO_DIR
    return {
        "state_dir": str(state_dir),
        "server": {"port": port, "allowed_url_schemes": ["file", "git", "https", "ssh"]},
        "evaluator": {"work_dir": str(state_dir / "evaluator"), "poll_interval": 5},
        "queue_runner": {"work_dir": str(state_dir / "runner"), "poll_interval": 5},
        "gc": {"gc_roots_dir": str(state_dir / "gcroots")},
        "declarative": {
            "api_keys": [
                {"name": "demo-admin", "role": "admin", "key": ADMIN_KEY},
                {"name": "demo-readonly", "role": "read-only", "key": READONLY_KEY},
            ],
            "projects": [{
                "name": PROJECT,
                "repository_url": repo.resolve().as_uri(),
                "description": "Demo jobs: success, failure, a dependency, an aggregate",
                "jobsets": [{"name": JOBSET, "nix_expression": "hydraJobs", "flake": True,
                             "check_interval": 60}],
            }],
        },
    }


def load_config(state_dir: Path, port: int,
                environ: typing.Mapping[str, str] | None = None,
                cwd: Path | None = None) -> configuration.Config:
    """Demo settings < ./circus.toml < $CIRCUS_CONFIG_FILE < CIRCUS_* variables."""
    return configuration.load(environ, cwd, base=settings(state_dir, port))


def main(state_dir: str, port: int) -> int:
    state = Path(state_dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    config = load_config(state, port)
    circus_logging.setup(config.tracing)
    repo = create_repo(state)
    log.info("circus demo starting", url=f"http://{config.server.host}:{config.server.port}/",
             admin_key=ADMIN_KEY, readonly_key=READONLY_KEY, project=PROJECT, jobset=JOBSET,
             repo=str(repo), state_dir=str(state))
    asyncio.run(supervisor.run(config, list(supervisor.ROLES)))
    return 0
