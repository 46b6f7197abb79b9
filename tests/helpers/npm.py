"""npm packages the suite reads (published API descriptions and examples of the forges,
tests/helpers/forge.py), installed once at pinned versions into `.venv/npm`: outside the
tracked tree, never vendored. A file lock lets parallel pytest processes share one install;
a machine without npm, or an install that fails, fails the tests (it never skips them)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.helpers.suite import ROOT

# Exact versions: what the peers check against changes only when this list does.
PACKAGES = {
    # GitHub: the REST API's OpenAPI description, webhook examples, GitHub's signing code
    "@octokit/openapi": "23.0.2",
    "@octokit/webhooks-examples": "7.6.1",
    "@octokit/webhooks-methods": "6.0.0",
    # Gitea: client generated from Gitea's swagger (types + every route in its JSDoc)
    "gitea-js": "1.23.0",
    # GitLab: the REST client's types and routes; webhook event types
    "@gitbeaker/core": "43.8.0",
    "gitlab-event-types": "2.0.1",
    # TypeScript types → JSON Schema, at set-up time (2.4.0: the last for Node 20)
    "ts-json-schema-generator": "2.4.0",
    "typescript": "5.8.3",
}
PREFIX = ROOT / ".venv" / "npm"
_MARKER = PREFIX / ".installed"
_installed = False


def _spec() -> str:
    return "\n".join(f"{name}@{version}" for name, version in sorted(PACKAGES.items())) + "\n"


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    PREFIX.mkdir(parents=True, exist_ok=True)
    with open(PREFIX / name, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"`{name}` is not on PATH: the forge peers of the tests need "
                           "Node.js and npm (Debian: apt-get install nodejs npm)")
    return found


def ensure() -> Path:
    """Install PACKAGES unless the marker says this exact list is there; node_modules."""
    global _installed
    modules = PREFIX / "node_modules"
    if _installed:
        return modules
    with _locked(".install.lock"):
        if not (_MARKER.exists() and _MARKER.read_text() == _spec() and modules.is_dir()):
            npm = _tool("npm")
            _MARKER.unlink(missing_ok=True)
            argv = [npm, "install", "--prefix", str(PREFIX), "--no-audit", "--no-fund",
                    "--save-exact", *(f"{n}@{v}" for n, v in sorted(PACKAGES.items()))]
            done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                raise RuntimeError(f"npm install into {PREFIX} failed ({done.returncode}):\n"
                                   f"{done.stderr[-4000:]}")
            _MARKER.write_text(_spec())
    _installed = True
    return modules


def node_modules() -> Path:
    return ensure()


def package_dir(name: str) -> Path:
    return node_modules() / name


def run_node(script: str, *args: str, stdin: str | None = None) -> str:
    """Run `script` as an ES module with the packages importable (cwd is the prefix);
    its stdout. `args` are process.argv[1:]."""
    ensure()
    node = _tool("node")
    done = subprocess.run([node, "--input-type=module", "-e", script, "--", *args],
                          cwd=PREFIX, input=stdin, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"node failed ({done.returncode}): {done.stderr[-4000:]}")
    return done.stdout


def cached_json(name: str, make: Callable[[], Any], key: str = "") -> Any:
    """`make()`'s JSON, computed once per package list and `key` (say, a hash of the code
    that makes it) and kept beside the packages: for what is slow to derive from them,
    like JSON Schemas generated from TypeScript."""
    ensure()
    path = PREFIX / "derived" / name
    stamp = _spec() + key
    with _locked(".derived.lock"):
        if path.exists():
            kept = json.loads(path.read_text())
            if kept.get("packages") == stamp:
                return kept["value"]
        value = make()
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"packages": stamp, "value": value}))
        tmp.replace(path)
        return value
