"""Building on a remote builder with Nix's own SSH store, and what a builder's health is.

A remote build is the local `nix build` of the .drv with this one machine as its only
builder (`--builders`, `--max-jobs 0`): Nix's build hook copies the inputs there over
`ssh-ng://`, builds, streams the log back and copies the outputs into the runner's store,
so the cache, products and GC roots work as for a local build, and dependencies built
here are not built there again. We choose the machine (in SQL, so runners on many hosts
share its slots); Nix moves the bytes. The host key is pinned: Nix puts the builder's key
alone in a known-hosts file, and NIX_SSHOPTS makes ssh refuse any other key and never ask.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import warnings
from collections.abc import Mapping
from typing import Any

import attrs
import structlog

from circus.app.config import QueueRunnerConfig
from circus.store import dispatch

with warnings.catch_warnings():  # asyncssh imports DSA support, which cryptography deprecates
    warnings.simplefilter("ignore")
    import asyncssh

log = structlog.get_logger(__name__)

# A failing builder is disabled for this many seconds, doubled with each further failure
# (up to queue_runner.builder_max_backoff).
BACKOFF_BASE = 5.0
# ssh gives up on a silent peer (a cut link, a hung machine) after 3 x 5 s, so a build on
# a dead builder fails as a lost connection instead of hanging until its timeout.
SSH_OPTIONS = ("-o StrictHostKeyChecking=yes -o GlobalKnownHostsFile=/dev/null "
               "-o BatchMode=yes -o ConnectTimeout=10 -o ServerAliveInterval=5 "
               "-o ServerAliveCountMax=3")
# Nix's words for a build that ran on the machine and failed there (its builder failed,
# timed out, logged too much). Anything else, such as "unexpected end-of-file" when the
# connection drops, is the machine's failure, which Nix words as its hook failing.
_BUILD_FAILED = re.compile(r"build of '[^']+' on '[^']+' failed: (?:error: )?"
                           r"(?:builder for '[^']+' failed|.*(?:timed out|log limit|"
                           r"maximum log size))")
_URI = re.compile(r"^(?P<scheme>ssh|ssh-ng)://(?:(?P<user>[^@/]+)@)?(?P<host>[^/?]+)$")


@attrs.frozen
class Machine:
    id: int
    name: str
    uri: str
    systems: tuple[str, ...]
    max_jobs: int
    speed_factor: float
    supported_features: tuple[str, ...]
    mandatory_features: tuple[str, ...]
    ssh_key_file: str | None
    public_host_key: str

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Machine:
        return cls(id=row["id"], name=row["name"], uri=row["ssh_uri"],
                   systems=tuple(row["systems"]), max_jobs=row["max_jobs"],
                   speed_factor=row["speed_factor"],
                   supported_features=tuple(row["supported_features"]),
                   mandatory_features=tuple(row["mandatory_features"]),
                   ssh_key_file=row["ssh_key_file"], public_host_key=row["public_host_key"])

    def builders_line(self) -> str:
        """This machine in Nix's machines format (the API refused anything that could
        add a field or a machine: no spaces, commas or newlines)."""
        def listed(items: tuple[str, ...]) -> str:
            return ",".join(items) or "-"
        host_key = base64.b64encode(self.public_host_key.encode()).decode()
        return " ".join([self.uri, listed(self.systems), self.ssh_key_file or "-",
                         str(self.max_jobs), f"{self.speed_factor:g}",
                         listed(self.supported_features), listed(self.mandatory_features),
                         host_key])

    def build_flags(self) -> list[str]:
        return ["--builders", self.builders_line(), "--max-jobs", "0",
                "--option", "builders-use-substitutes", "false"]

    def build_env(self) -> dict[str, str]:
        return {**os.environ, "NIX_SSHOPTS": SSH_OPTIONS}

    @property
    def address(self) -> tuple[str | None, str]:
        """(user, host) of the ssh URI."""
        match = _URI.match(self.uri)
        if match is None:
            raise ValueError(f"not an ssh store URI: {self.uri}")
        return match["user"], match["host"].strip("[]")


def builder_failed(errors: str) -> bool:
    """Whether a remote build that did not succeed failed because of the machine."""
    return _BUILD_FAILED.search(errors) is None


async def report(pool: Any, machine: Machine, ok: bool, error: str | None,
                 cfg: QueueRunnerConfig) -> None:
    """What a build on the machine says of its health."""
    if ok:
        await dispatch.healthy(pool, machine.id)
        return
    row = await dispatch.failed(pool, machine.id, error or "the build was lost", False,
                                BACKOFF_BASE, cfg.builder_max_backoff)
    log.warning("remote builder failed; disabled for a while", builder=machine.name,
                error=error, failures=row and row["consecutive_failures"],
                disabled_until=row and str(row["disabled_until"]))


async def probe(machine: Machine, limit: float) -> tuple[float | None, float | None]:
    """Connect with the pinned host key, check Nix answers, and read the machine's CPU
    and memory pressure ("some avg10", percent; None where the kernel has no PSI)."""
    user, host = machine.address
    known = asyncssh.import_known_hosts(f"{host} {machine.public_host_key}\n")
    keys = [machine.ssh_key_file] if machine.ssh_key_file else ()
    async with asyncio.timeout(limit):
        async with asyncssh.connect(host, username=user or "root", known_hosts=known,
                                    client_keys=keys or None, agent_path=None,
                                    config=(), connect_timeout=limit) as conn:
            result = await conn.run(
                "nix-store --version >/dev/null && for f in cpu memory; do "
                "echo \"$f $(grep '^some' /proc/pressure/$f 2>/dev/null)\"; done",
                check=True)
    return _pressure(str(result.stdout), "cpu"), _pressure(str(result.stdout), "memory")


def _pressure(text: str, kind: str) -> float | None:
    match = re.search(rf"^{kind} some avg10=([0-9.]+)", text, re.MULTILINE)
    return float(match.group(1)) if match else None


async def probe_due(pool: Any, cfg: QueueRunnerConfig) -> None:
    """Probe every builder due one (a new one, one whose back-off is over, any one
    every builder_probe_interval), all at once."""
    rows = await dispatch.to_probe(pool, cfg.builder_probe_interval)
    await asyncio.gather(*(_probe_one(pool, Machine.from_row(row), row["health"], cfg)
                           for row in rows))


async def _probe_one(pool: Any, machine: Machine, health: str,
                     cfg: QueueRunnerConfig) -> None:
    try:
        psi = await probe(machine, cfg.psi_check_timeout)
    except (OSError, asyncssh.Error, TimeoutError, ValueError) as exc:
        error = f"probe: {_describe(exc)}"
        row = await dispatch.failed(pool, machine.id, error, True, BACKOFF_BASE,
                                    cfg.builder_max_backoff)
        log.warning("remote builder probe failed", builder=machine.name, error=error,
                    failures=row and row["consecutive_failures"])
        return
    await dispatch.healthy(pool, machine.id, probed=True, psi=psi)
    if health != "up":
        log.info("remote builder is up", builder=machine.name, uri=machine.uri,
                 psi_cpu=psi[0], psi_memory=psi[1])


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return f"its host key is not the pinned public_host_key ({exc.reason})"
    if isinstance(exc, TimeoutError):
        return "no answer within psi_check_timeout"
    if isinstance(exc, asyncssh.ProcessError):
        return f"the check failed: {str(exc.stderr or exc.stdout or '').strip()[:200]}"
    return str(exc) or type(exc).__name__
