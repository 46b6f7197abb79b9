"""Is this machine's Nix usable by Circus? Checked by `circus doctor` and before a
`circus run` with the evaluator or runner role takes any work, so a broken Nix is one
line naming the cause and the fix instead of every build failing as the user's fault.
"""

from __future__ import annotations

import asyncio
import grp
import json
import os
import re
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs

from circus.proc import child, nix

# Circus relies on `nix build --json` and the `nix-command`/`flakes` features: 2.4 on.
MINIMUM_VERSION = (2, 4)
TIMEOUT = 60.0
DAEMON_SOCKET = Path("/nix/var/nix/daemon-socket/socket")

# The trivial derivation: a builtin builder, so it needs no /bin/sh in a sandbox.
TRIVIAL = ('derivation {{ name = "circus-doctor-{nonce}"; system = builtins.currentSystem; '
           'builder = "builtin:buildenv"; manifest = "none"; derivations = ""; }}')


@attrs.frozen
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        if self.ok:
            return f"ok    {self.name}: {self.detail}"
        return f"FAIL  {self.name}: {self.detail}; fix: {self.fix}"


async def checks() -> AsyncIterator[Check]:
    """Each check in order, stopping after the first that fails."""
    steps: tuple[Callable[[dict[str, Any]], Awaitable[Check]], ...] = (
        _version, _in_thread(_build_users), _in_thread(_store), _features, _trivial_build)
    settings: dict[str, Any] = {}
    for step in steps:
        check = await step(settings)
        yield check
        if not check.ok:
            return


async def first_failure() -> Check | None:
    async for check in checks():
        if not check.ok:
            return check
    return None


async def main() -> int:
    """`circus doctor`: print each check; non-zero on the first failure."""
    import sys

    async for check in checks():
        sys.stdout.write(check.line() + "\n")
        if not check.ok:
            return 1
    return 0


async def _nix(*args: str) -> tuple[int, str, str]:
    try:
        done = await nix.run(*args, limit=TIMEOUT)
    except child.ChildTimeout:
        return -1, "", f"nix {' '.join(args)} did not answer within {TIMEOUT:.0f} s"
    return done.returncode, done.text, done.stderr


def _last_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or ["(no message)"])[-1]


def _in_thread(step: Callable[[dict[str, Any]], Check]
               ) -> Callable[[dict[str, Any]], Awaitable[Check]]:
    """The file-system checks are a few stat calls: run in a thread all the same."""
    async def run(settings: dict[str, Any]) -> Check:
        return await asyncio.to_thread(step, settings)
    return run


async def _version(settings: dict[str, Any]) -> Check:
    name = "nix version"
    if shutil.which("nix") is None:
        return Check(name, False, "`nix` is not on PATH",
                     "install Nix (Debian: apt-get install nix-bin) or add it to PATH")
    code, out, err = await _nix("--version")
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out)
    if code != 0 or match is None:
        return Check(name, False, f"`nix --version` failed: {_last_error(err)}",
                     "repair the Nix installation")
    found = (int(match[1]), int(match[2]))
    if found < MINIMUM_VERSION:
        return Check(name, False, f"{out.strip()} is older than "
                     f"{'.'.join(map(str, MINIMUM_VERSION))}", "install a newer Nix")
    version = out.strip()
    code, out, err = await _nix("show-config", "--json")
    if code != 0:
        return Check(name, False, f"`nix show-config` failed: {_last_error(err)}",
                     "fix the Nix configuration (nix.conf, NIX_CONFIG)")
    settings.update({key: value.get("value") for key, value in json.loads(out).items()})
    return Check(name, True, version)


async def _features(settings: dict[str, Any]) -> Check:
    name = "experimental features"
    # `builtins.getFlake` exists only while the flakes feature is on.
    code, out, err = await _nix("eval", "--raw", "--expr", "builtins.typeOf builtins.getFlake")
    if code != 0 or out.strip() != "lambda":
        return Check(name, False, f"Nix refuses nix-command and flakes: {_last_error(err)}",
                     "use a Nix with the nix-command and flakes features (2.4 or newer)")
    return Check(name, True, "nix-command and flakes are enabled")


def _build_users(settings: dict[str, Any]) -> Check:
    name = "build users"
    group = str(settings.get("build-users-group") or "")
    if not group:
        return Check(name, True, "build-users-group is unset: builds run as this user")
    if os.geteuid() != 0 or _uses_daemon(settings):
        return Check(name, True, f"builds run by the nix-daemon (group {group!r})")
    fix = (f"create the group with build users as Nix's installer does "
           f"(groupadd {group}; useradd -g {group} -G {group} {group}1 ...), or set "
           "`build-users-group =` in nix.conf or NIX_CONFIG for single-user Nix")
    try:
        members = grp.getgrnam(group).gr_mem
    except KeyError:
        return Check(name, False, f"the group {group!r} named by build-users-group does "
                     "not exist", fix)
    if not members:
        return Check(name, False, f"the group {group!r} has no members", fix)
    return Check(name, True, f"group {group!r} with {len(members)} build users")


def _uses_daemon(settings: dict[str, Any]) -> bool:
    store = str(settings.get("store") or "auto")
    remote = os.environ.get("NIX_REMOTE", "")
    return store == "daemon" or remote == "daemon" or (
        store == "auto" and os.geteuid() != 0 and DAEMON_SOCKET.exists())


def _store_dir() -> Path:
    return Path(os.environ.get("NIX_STORE_DIR") or os.environ.get("NIX_STORE") or "/nix/store")


def _store(settings: dict[str, Any]) -> Check:
    name = "store"
    store = _store_dir()
    if _uses_daemon(settings):
        if DAEMON_SOCKET.exists():
            return Check(name, True, f"{store} through the nix-daemon at {DAEMON_SOCKET}")
        return Check(name, False, f"no nix-daemon socket at {DAEMON_SOCKET}",
                     "start nix-daemon, or run Circus as the store's owner")
    existing = store
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        what = "is not writable" if existing == store else f"cannot be created ({existing})"
        return Check(name, False, f"the Nix store {store} {what} by uid {os.geteuid()}",
                     "run Circus as the store's owner, or use a multi-user Nix with "
                     "nix-daemon")
    return Check(name, True, f"{store} is writable")


async def _trivial_build(settings: dict[str, Any]) -> Check:
    name = "build"
    expr = TRIVIAL.format(nonce=f"{os.getpid()}-{time.time_ns()}")
    code, out, err = await _nix("build", "--no-link", "--json", "--impure", "--expr", expr)
    if code != 0:
        return Check(name, False, f"a trivial derivation does not build: {_last_error(err)}",
                     "fix what Nix reports (nix.conf, NIX_CONFIG, the store's permissions)")
    path = json.loads(out)[0]["outputs"]["out"]
    return Check(name, True, f"a trivial derivation built ({path})")
