"""The test hosts themselves: sshd with a checked host key, a Nix store of their own that
`nix copy` reaches over ssh-ng, links and sshd that fail as real ones do, and nothing
left behind."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from tests.helpers.hosts import Host, Network


def ssh_options(network: Network, known_hosts: Path) -> list[str]:
    return ["-i", str(network.client_key), "-o", f"UserKnownHostsFile={known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
            "-o", "GlobalKnownHostsFile=/dev/null"]


def known_hosts(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / f"known_hosts-{len(list(tmp_path.glob('known_hosts-*')))}"
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def ssh(network: Network, host: Host, known: Path, *argv: str,
        timeout: int = 10) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", *ssh_options(network, known), "-o", "ConnectTimeout=3",
         f"root@{host.address}", *argv],
        capture_output=True, text=True, timeout=timeout)


def test_hosts_have_their_own_store_reached_over_ssh(network: Network, tmp_path: Path) -> None:
    a = network.add_host("a", nix_conf="system-features = circus-test-feature")
    b = network.add_host("b")
    known = known_hosts(tmp_path, network.known_hosts_line(a), network.known_hosts_line(b))
    for host in (a, b):
        result = ssh(network, host, known, "nix-store", "--version")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("nix-store (Nix) ")
    # Sessions read the host's nix.conf, with the caller's lines, not the suite's.
    config = ssh(network, a, known, "nix", "show-config")
    assert "system-features = circus-test-feature" in config.stdout, config.stderr

    source = tmp_path / "payload"
    source.write_text(f"payload {time.time_ns()}\n")
    path = subprocess.run(["nix-store", "--add", str(source)], check=True,
                          capture_output=True, text=True).stdout.strip()
    for host in (a, b):
        check = host.run(["nix-store", "--check-validity", path], capture_output=True, text=True)
        assert check.returncode != 0
        assert "is not valid" in check.stderr

    env = {**os.environ, "NIX_SSHOPTS": " ".join(ssh_options(network, known))}
    copy = subprocess.run(["nix", "copy", "--to", a.store_uri, path], env=env,
                          capture_output=True, text=True, timeout=60)
    assert copy.returncode == 0, copy.stderr
    assert a.run(["nix-store", "--check-validity", path]).returncode == 0
    assert (a.nix_dir / "store" / Path(path).name).read_text() == source.read_text()
    # b's store is b's own: a's copy is not in it. ssh:// (nix-store --serve) reaches it too.
    assert b.run(["nix-store", "--check-validity", path], capture_output=True).returncode != 0
    assert not (b.nix_dir / "store" / Path(path).name).exists()
    copy = subprocess.run(["nix", "copy", "--to", f"ssh://root@{b.address}", path], env=env,
                          capture_output=True, text=True, timeout=60)
    assert copy.returncode == 0, copy.stderr
    assert b.run(["nix-store", "--check-validity", path]).returncode == 0


def test_a_wrong_host_key_is_refused(network: Network, tmp_path: Path) -> None:
    a = network.add_host("a")
    b = network.add_host("b")
    right = known_hosts(tmp_path, network.known_hosts_line(a))
    wrong = known_hosts(tmp_path, f"{a.address} {b.host_key}")
    assert ssh(network, a, right, "true").returncode == 0
    result = ssh(network, a, wrong, "true")
    assert result.returncode == 255
    assert "Host key verification failed" in result.stderr


def test_links_and_sshd_fail_and_come_back(network: Network, tmp_path: Path) -> None:
    a = network.add_host("a")
    known = known_hosts(tmp_path, network.known_hosts_line(a))
    assert ssh(network, a, known, "true").returncode == 0

    a.link_down()
    result = ssh(network, a, known, "true")
    assert result.returncode == 255
    assert "timed out" in result.stderr
    a.link_up()
    assert ssh(network, a, known, "true").returncode == 0

    # A session in use drops when sshd is killed.
    session = subprocess.Popen(["ssh", *ssh_options(network, known), f"root@{a.address}",
                                "echo started; exec sleep 60"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert session.stdout is not None and session.stdout.readline() == "started\n"
    a.stop_sshd()
    assert session.wait(timeout=10) == 255
    result = ssh(network, a, known, "true")
    assert result.returncode == 255
    assert "Connection refused" in result.stderr

    a.start_sshd()
    assert ssh(network, a, known, "true").returncode == 0


def test_a_plain_host_runs_processes_in_its_namespace_until_closed(tmp_path: Path) -> None:
    with Network(tmp_path / "hosts") as net:
        plain = net.add_host("plain", sshd=False)
        # Its address exists only inside its namespace, so binding it proves where it runs.
        server = plain.popen(["python3", "-m", "http.server", "--bind", plain.address, "8000"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((plain.address, 8000), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "server in the namespace never answered"
                time.sleep(0.05)
        assert plain.run(["ip", "-o", "addr", "show"], capture_output=True,
                         text=True).stdout.count(plain.address) == 1
    assert server.poll() is not None
    assert plain.ns not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                          text=True).stdout
    assert subprocess.run(["ip", "link", "show", net.bridge],
                          capture_output=True).returncode != 0
