"""Real hosts for the tests (no tests here): Linux network namespaces on a private bridge,
each with its own OpenSSH sshd and its own Nix store, for remote builders and for runners
that must not see each other. Needs root, `ip`, `unshare`, `/usr/sbin/sshd` and `ssh-keygen`.

The root namespace (where the test and the runner run) is the bridge's address,
`network.gateway`; each host gets the next address on that /24 and has no route beyond it.
An sshd host's sessions see its own directory as /nix (a bind mount in a private mount
namespace) and read its own nix.conf, so `ssh-ng://root@<address>` is a store that is not
the runner's.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import attrs

from tests.helpers.suite import NIX_CONFIG

# Every namespace and link this helper makes is named or labelled with PREFIX and the
# pid of the test process, so a later run can tell a crashed run's leftovers from a
# concurrent run's live hosts.
PREFIX = "circus-t-"


def _ip(*args: str, check: bool = True) -> str:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True).stdout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _owner(label: str) -> int | None:
    """The pid in a `circus-t-<pid>-…` label, or None for labels that are not ours."""
    match = re.match(re.escape(PREFIX) + r"(\d+)(-|$)", label)
    return int(match.group(1)) if match else None


def _mount_ns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def _kill_namespace(ns: str, mount_ns: str | None = None, within: float = 10) -> bool:
    """SIGKILL every process in the network namespace (only those in `mount_ns` if given)
    until none is left; loops because a process may fork while it is being killed. True
    when none is left."""
    deadline = time.monotonic() + within
    while True:
        pids = [int(pid) for pid in _ip("netns", "pids", ns, check=False).split()]
        if mount_ns is not None:
            pids = [pid for pid in pids if _mount_ns(pid) == mount_ns]
        if not pids:
            return True
        if time.monotonic() > deadline:
            return False
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)


def _remove_leftovers() -> None:
    """Namespaces and links of earlier test processes that died without closing."""
    for line in _ip("netns", "list").splitlines():
        ns = line.split()[0]
        owner = _owner(ns)
        if owner is not None and not _alive(owner):
            _kill_namespace(ns)
            _ip("netns", "del", ns, check=False)
    for link in json.loads(_ip("-j", "link", "show") or "[]"):
        owner = _owner(link.get("ifalias", ""))
        if owner is not None and not _alive(owner):
            _ip("link", "del", link["ifname"], check=False)


def _used_networks() -> list[ipaddress.IPv4Network]:
    used = []
    for route in json.loads(_ip("-4", "-j", "route", "show", "table", "all") or "[]"):
        with contextlib.suppress(ValueError):
            used.append(ipaddress.IPv4Network(route.get("dst", ""), strict=False))
    return used


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.200.0.0/11 that no route of this machine touches, starting
    from one derived from the pid so that concurrent runs start apart."""
    used = _used_networks()
    for k in range(32 * 256):
        n = (os.getpid() + k) % (32 * 256)
        subnet = ipaddress.IPv4Network(f"10.{200 + n // 256}.{n % 256}.0/24")
        if not any(subnet.overlaps(other) for other in used):
            return subnet
    raise RuntimeError("no free 10.200.0.0/11 subnet for a test network")


@attrs.define(eq=False)
class Host:
    """One namespace on a Network. Made by `Network.add_host`, closed with the Network."""

    name: str
    ns: str  # the network namespace's name, for `ip netns exec`
    address: str
    dir: Path  # keys, sshd_config, sshd.log, etc/nix.conf and nix/ (its /nix)
    veth: str  # the end on the bridge, in the root namespace
    has_store: bool  # an sshd host has its own /nix; a plain host shares the root's
    host_key: str = ""  # "ssh-ed25519 AAAA…", without comment
    _sshd: subprocess.Popen[bytes] | None = None
    _procs: list[subprocess.Popen[Any]] = attrs.Factory(list)

    @property
    def store_uri(self) -> str:
        return f"ssh-ng://root@{self.address}"

    @property
    def nix_dir(self) -> Path:
        """What this host's processes see as /nix (the root's own for a plain host)."""
        return self.dir / "nix" if self.has_store else Path("/nix")

    @property
    def nix_conf_dir(self) -> Path:
        return self.dir / "etc"

    def start_sshd(self) -> None:
        """sshd in a private mount namespace with the host's directory bound on /nix, so
        that every session (nix-daemon --stdio, nix-store --serve) uses the host's store;
        returns when port 22 answers."""
        assert self._sshd is None, f"sshd of {self.name} runs already"
        script = (f"mount --bind {shlex.quote(str(self.nix_dir))} /nix && "
                  f"exec /usr/sbin/sshd -D -e -f {shlex.quote(str(self.dir / 'sshd_config'))}")
        with (self.dir / "sshd.log").open("ab") as log:
            # `-D` keeps sshd in the foreground, so the Popen's pid is sshd's own.
            self._sshd = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, "unshare", "--mount", "--propagation",
                 "private", "--", "sh", "-c", script],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=_without_nix(None),
                start_new_session=True)
        deadline = time.monotonic() + 10
        while True:
            if self._sshd.poll() is not None:
                log_text = (self.dir / "sshd.log").read_text(errors="replace")
                self._sshd = None
                raise RuntimeError(f"sshd of {self.name} exited:\n{log_text}")
            try:
                socket.create_connection((self.address, 22), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def stop_sshd(self) -> None:
        """SIGKILL sshd and every session it started (all share its mount namespace), so
        connections in use drop as when the machine dies."""
        if self._sshd is None:
            return
        mount_ns = _mount_ns(self._sshd.pid)
        # sshd first, so it forks no new session while the others are killed.
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._sshd.pid, signal.SIGKILL)
        self._sshd.wait()
        self._sshd = None
        if mount_ns is not None and not _kill_namespace(self.ns, mount_ns):
            raise RuntimeError(f"sessions of {self.name} survive SIGKILL")

    def set_pressure(self, cpu: float, memory: float = 0) -> None:
        """What this host's /proc/pressure says from now on, to its sshd sessions. Every
        namespace shares the one kernel's pressure, so a host's own is a directory bound
        over /proc/pressure in sshd's mount namespace."""
        assert self._sshd is not None, f"sshd of {self.name} does not run"
        fake = self.dir / "pressure"
        fake.mkdir(exist_ok=True)
        mounts = Path(f"/proc/{self._sshd.pid}/mountinfo").read_text()
        for kind, avg10 in (("cpu", cpu), ("memory", memory)):
            (fake / kind).write_text(f"some avg10={avg10:.2f} avg60=0.00 avg300=0.00 total=0\n"
                                     "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
        if " /proc/pressure " not in mounts:
            subprocess.run(["nsenter", "--target", str(self._sshd.pid), "--mount", "mount",
                            "--bind", str(fake), "/proc/pressure"], check=True)

    def link_down(self) -> None:
        """Cut the cable: packets are dropped, and neither end is told."""
        _ip("link", "set", self.veth, "down")

    def link_up(self) -> None:
        _ip("link", "set", self.veth, "up")

    def run(self, argv: Sequence[str], env: Mapping[str, str] | None = None,
            **kw: Any) -> subprocess.CompletedProcess[Any]:
        """Run a command as a session on this host would: in its network namespace and,
        for an sshd host, with its /nix and its nix.conf (the suite's are dropped). `env`
        is added to the environment."""
        return subprocess.run(self._argv(argv), env=self._env(env), **kw)

    def popen(self, argv: Sequence[str], env: Mapping[str, str] | None = None,
              **kw: Any) -> subprocess.Popen[Any]:
        """Start a long-running process (another runner, say) in this host's network
        namespace only: it shares the root's filesystem and /nix. `env` is added to the
        environment. Killed when the Network closes."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.ns, *argv],
                                env={**os.environ, **(env or {})}, **kw)
        self._procs.append(proc)
        return proc

    def _argv(self, argv: Sequence[str]) -> list[str]:
        if not self.has_store:
            return ["ip", "netns", "exec", self.ns, *argv]
        # A fresh mount namespace with the same bind as sshd's: the same view of /nix, and
        # it works while sshd is stopped.
        return ["ip", "netns", "exec", self.ns, "unshare", "--mount", "--propagation",
                "private", "--", "sh", "-c", 'mount --bind "$0" /nix && exec "$@"',
                str(self.nix_dir), *argv]

    def _env(self, env: Mapping[str, str] | None) -> dict[str, str]:
        if not self.has_store:
            return {**os.environ, **(env or {})}
        conf = self.nix_conf_dir
        return {**_without_nix(env), "NIX_CONF_DIR": str(conf),
                "NIX_USER_CONF_FILES": str(conf / "nix.conf")}

    def _close(self) -> None:
        if self._sshd is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._sshd.pid, signal.SIGKILL)
        _kill_namespace(self.ns)
        for proc in [*self._procs, *([self._sshd] if self._sshd else [])]:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self._sshd = None
        # Deleting one end of a veth deletes both.
        _ip("link", "del", self.veth, check=False)
        _ip("netns", "del", self.ns, check=False)


def _without_nix(env: Mapping[str, str] | None) -> dict[str, str]:
    """The environment without the suite's Nix settings (NIX_CONFIG would override the
    host's nix.conf)."""
    return {k: v for k, v in {**os.environ, **(env or {})}.items()
            if not k.startswith("NIX_") or k in (env or {})}


@attrs.define(eq=False)
class Network:
    """A bridge in the root namespace and hosts on it; a context manager. With no
    directory, one is made in /tmp and removed on close."""

    directory: Path | None = None
    tag: str = attrs.field(init=False, factory=lambda: secrets.token_hex(3))
    subnet: ipaddress.IPv4Network = attrs.field(init=False)
    dir: Path = attrs.field(init=False)
    hosts: dict[str, Host] = attrs.field(init=False, factory=dict)

    def __attrs_post_init__(self) -> None:
        _remove_leftovers()
        self.dir = self.directory or Path(tempfile.mkdtemp(prefix="circus-hosts-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.subnet = _free_subnet()
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("link", "set", self.bridge, "alias", self._label)
            _ip("addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "circus-test",
                            "-f", str(self.client_key)], check=True, capture_output=True)
        except BaseException:
            self.close()
            raise

    @property
    def _label(self) -> str:
        return f"{PREFIX}{os.getpid()}-{self.tag}"

    @property
    def bridge(self) -> str:
        return f"ct{self.tag}br"

    @property
    def gateway(self) -> str:
        """The bridge's address: the root namespace as the hosts reach it."""
        return str(self.subnet[1])

    @property
    def client_key(self) -> Path:
        """A private key (mode 0600) that every sshd host lets in as root."""
        return self.dir / "client_key"

    def known_hosts_line(self, host: Host) -> str:
        return f"{host.address} {host.host_key}"

    def add_host(self, name: str, *, sshd: bool = True, nix_conf: str = "") -> Host:
        """A namespace with the next address; with sshd, also its own store and sshd on
        port 22. `nix_conf` is added to the host's nix.conf."""
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", name), f"bad host name {name!r}"
        assert name not in self.hosts, f"host {name} exists already"
        index = len(self.hosts) + 1
        host = Host(name=name, ns=f"{self._label}-{name}", address=str(self.subnet[index + 1]),
                    dir=self.dir / name, veth=f"ct{self.tag}r{index}", has_store=sshd)
        # Registered first, so that close() undoes a host that fails half-way.
        self.hosts[name] = host
        inner = f"ct{self.tag}h{index}"
        _ip("netns", "add", host.ns)
        _ip("link", "add", host.veth, "type", "veth", "peer", "name", inner, "netns", host.ns)
        _ip("link", "set", host.veth, "alias", self._label, "master", self.bridge, "up")
        _ip("-n", host.ns, "addr", "add", f"{host.address}/{self.subnet.prefixlen}",
            "dev", inner)
        _ip("-n", host.ns, "link", "set", inner, "up")
        _ip("-n", host.ns, "link", "set", "lo", "up")
        # No default route: the gateway and the other hosts are on the subnet, and
        # without one a lookup of the machine's nameserver fails at once, as offline,
        # rather than being forwarded out of the machine and hanging for 10 s.
        host.nix_conf_dir.mkdir(parents=True)
        host.nix_conf_dir.joinpath("nix.conf").write_text(NIX_CONFIG + nix_conf + "\n")
        if sshd:
            self._setup_sshd(host)
            host.start_sshd()
        return host

    def _setup_sshd(self, host: Host) -> None:
        # Nix creates its database on first use but not /nix/store or /nix/var/nix.
        (host.nix_dir / "store").mkdir(parents=True)
        (host.nix_dir / "var" / "nix").mkdir(parents=True)
        key = host.dir / "host_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", host.name,
                        "-f", str(key)], check=True, capture_output=True)
        host.host_key = " ".join(key.with_suffix(".pub").read_text().split()[:2])
        shutil.copy(self.client_key.with_suffix(".pub"), host.dir / "authorized_keys")
        etc, d = host.nix_conf_dir, host.dir
        (host.dir / "sshd_config").write_text(f"""\
ListenAddress {host.address}
Port 22
HostKey {key}
AuthorizedKeysFile {d / "authorized_keys"}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile {d / "sshd.pid"}
# Runners open connections in bursts; the default starts dropping them at 10.
MaxStartups 100
# Sessions read this host's nix.conf and no one else's (not root's ~/.config/nix), and
# keep their caches apart from the runner's.
SetEnv NIX_CONF_DIR={etc} NIX_USER_CONF_FILES={etc / "nix.conf"} XDG_CACHE_HOME={d / "cache"}
""")
        # sshd refuses to start without its privilege separation directory, which
        # Debian makes only when the service starts.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)

    def close(self) -> None:
        """Kill every process in the hosts, delete them and the bridge."""
        for host in reversed(self.hosts.values()):
            host._close()
        _ip("link", "del", self.bridge, check=False)
        if self.directory is None:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Network:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
