"""The one container image (etc/image/build.sh), built from Debian packages and PyPI only,
then run for real: `circus demo` inside it serves /health and finishes the demo's builds.

Two ways to run it, both checked the same way from this machine over HTTP:
- podman: `podman run` of `circus:latest`, the port published with `-p`.
- chroot: the root file system the build leaves beside the image, with
  etc/image/run-rootfs.sh: its own mount and PID namespaces (`unshare`), so its mounts
  and every process in it end with it. The root file system becomes the namespace's
  root with pivot_root, not chroot(2): under a plain chroot, Debian 12's Nix 2.8 re-enters
  its mount namespace before it starts git, which puts git back on this machine's file
  system (seen here: the demo's evaluation failed with "'/var/lib/circus/evaluator/
  jobset-1/repo.git' does not appear to be a git repository", and Nix had made an empty
  clone in this machine's /root/.cache/nix). This is how the image runs where the kernel
  refuses containers, and it runs every time: the root file system is a deliverable too.

What ran where this was written (Debian 12, 6.18 kernel in a VM, as root without
CAP_SYS_RESOURCE, cgroup v1 with a cgroup v2 hierarchy mounted beside it): both podman
and chroot passed. Podman needed two things here, passed by `_podman_run`:
`--runtime runc`, because crun 1.8 (Debian 12's default) stops at "cgroups in hybrid mode
not supported", and `--ulimit` at this process's own limits, because podman's default
rlimits are above what root may set without CAP_SYS_RESOURCE ("setrlimit RLIMIT_NOFILE:
Operation not permitted"). Where podman still cannot start a container, the podman case
says why in a warning and runs the root file system the chroot way instead: nothing
skips, and a missing tool (debootstrap, buildah, podman, runc, unshare) fails.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import resource
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.suite import NIX_CONFIG, ROOT, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

IMAGE = "circus:latest"
BUILD_SCRIPT = ROOT / "etc" / "image" / "build.sh"
RUN_ROOTFS = ROOT / "etc" / "image" / "run-rootfs.sh"
STATE_DIR = "/var/lib/circus/demo"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Runs the image build into a fresh directory; yields the root file system."""
    assert os.geteuid() == 0, "the image build needs root (debootstrap, chroot, buildah)"
    output = tmp_path_factory.mktemp("image")
    host_state = _host_nix_state()
    started = time.monotonic()
    result = subprocess.run(["bash", str(BUILD_SCRIPT), "--output", str(output)],
                            capture_output=True, text=True, timeout=1100)
    print(f"image build: {time.monotonic() - started:.0f}s\n{result.stdout}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"image: image {IMAGE}" in result.stdout
    # Nix is set up inside the image only: this machine keeps its own state.
    assert _host_nix_state() == host_state
    rootfs = output / "rootfs"
    yield rootfs
    _assert_nothing_mounted_under(rootfs)
    shutil.rmtree(output, ignore_errors=True)


def test_the_root_file_system_is_debian_12_with_circus_and_single_user_nix(
        built: Path) -> None:
    assert (built / "etc" / "debian_version").read_text().startswith("12.")
    assert (built / "opt" / "circus" / "bin" / "circus").is_file()
    assert os.readlink(built / "usr" / "local" / "bin" / "circus") == "/opt/circus/bin/circus"
    nix_conf = (built / "etc" / "nix" / "nix.conf").read_text().splitlines()
    assert "build-users-group =" in nix_conf
    assert "experimental-features = nix-command flakes" in nix_conf
    # The SQL and the templates are in the installed wheel, not beside it.
    site = next((built / "opt" / "circus" / "lib").glob("python3*/site-packages"))
    assert list((site / "circus" / "sql" / "migrations").glob("*.sql"))
    assert (site / "circus" / "server" / "dashboard" / "templates" / "base.html").is_file()


def test_the_image_is_configured_for_every_role(built: Path) -> None:
    config = json.loads(_run(["podman", "image", "inspect", IMAGE]).stdout)[0]["Config"]
    assert config["Entrypoint"] == ["circus"]
    assert config["Cmd"] == ["run"]
    assert "3000/tcp" in config["ExposedPorts"]
    assert "/var/lib/circus" in config["Volumes"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["CIRCUS_STATE_DIR"] == "/var/lib/circus"
    assert env["CIRCUS_SERVER__HOST"] == "0.0.0.0"
    assert env["PATH"].startswith("/opt/circus/bin:")
    # The chroot gets the same defaults from the file the image's environment came from.
    assert env == _image_env(built)


@pytest.mark.parametrize("how", ["podman", "chroot"])
def test_demo_serves_health_and_finishes_a_build(built: Path, how: str) -> None:
    port = free_port()
    if how == "podman":
        refused = _podman_refuses()
        if refused:
            warnings.warn(f"podman cannot start a container here ({refused}); "
                          "running the root file system under chroot instead", stacklevel=1)
            how = "chroot"
    start = _start_podman if how == "podman" else _start_chroot
    print(f"running the demo with {how}")
    with start(built, port) as logs:
        health = _poll(f"http://127.0.0.1:{port}/health", 180, logs,
                       lambda status, body: status == 200)
        assert health["status"] == "ok" and health["database"] == "ok", health
        builds = _poll(f"http://127.0.0.1:{port}/api/v1/builds?job=hello", 240, logs,
                       lambda status, body: status == 200 and any(
                           b["state"] == "finished" for b in json.loads(body)["items"]))
        (hello,) = [b for b in builds["items"] if b["state"] == "finished"]
        assert (hello["project"], hello["jobset"], hello["job"]) == ("demo", "main", "hello")
        assert hello["buildstatus"] == 0 and hello["status"] == "succeeded", hello
        log = _get(f"http://127.0.0.1:{port}/api/v1/builds/{hello['id']}/log")[1]
        assert "hello from Circus" in log


# --- podman ------------------------------------------------------------------------


def _podman_run() -> list[str]:
    # crun 1.8 refuses this kernel's hybrid cgroup layout; runc runs it. Podman's default
    # rlimits (nofile 1048576) may be above what root may set here: ask for ours.
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 32768)
    return ["podman", "--runtime", "runc", "run", "--ulimit", f"nofile={nofile}:{nofile}",
            "--ulimit", f"nproc={nproc}:{nproc}"]


def _podman_refuses() -> str | None:
    """None when podman runs a container of the image here, else why it does not."""
    result = subprocess.run([*_podman_run(), "--rm", "--network", "none", IMAGE, "--help"],
                            capture_output=True, text=True, timeout=120)
    if result.returncode == 0 and "usage: circus" in result.stdout:
        return None
    return (result.stderr.strip() or result.stdout.strip()).splitlines()[-1]


@contextlib.contextmanager
def _start_podman(rootfs: Path, port: int) -> Iterator[Callable[[], str]]:
    """The demo in a container; yields its output so far, then stops it cleanly and
    asserts that nothing of it is left."""
    name = f"circus-test-{uuid.uuid4().hex[:8]}"
    _run([*_podman_run(), "-d", "--name", name, "-p", f"127.0.0.1:{port}:{port}",
          "-e", f"NIX_CONFIG={NIX_CONFIG}", IMAGE,
          "demo", "--port", str(port), "--state-dir", STATE_DIR])
    merged = _run(["podman", "inspect", "--format", "{{.GraphDriver.Data.MergedDir}}",
                   name]).stdout.strip()

    def logs() -> str:
        result = subprocess.run(["podman", "logs", name], capture_output=True, text=True)
        return result.stdout + result.stderr

    try:
        yield logs
    finally:
        try:
            subprocess.run(["podman", "stop", "-t", "60", name], capture_output=True,
                           timeout=120)
            exit_code = _run(["podman", "inspect", "--format", "{{.State.ExitCode}}",
                              name]).stdout.strip()
            output = logs()
        finally:
            # -v: the anonymous volume of /var/lib/circus goes with the container.
            subprocess.run(["podman", "rm", "-f", "-v", name], capture_output=True, timeout=120)
        assert exit_code == "0", output[-3000:]
        assert "circus stopped" in output, output[-3000:]
        left = _run(["podman", "ps", "-a", "--filter", f"name={name}", "--format",
                     "{{.ID}}"]).stdout.strip()
        assert left == "", f"container {name} is still there"
        assert _processes_rooted_in(Path(merged)) == [], "processes of the container remain"


# --- chroot ------------------------------------------------------------------------

@contextlib.contextmanager
def _start_chroot(rootfs: Path, port: int) -> Iterator[Callable[[], str]]:
    """The demo in the root file system with etc/image/run-rootfs.sh; yields its output
    so far, then stops it cleanly and asserts that no process or mount of it is left."""
    log_path = rootfs.parent / f"chroot-{port}.log"
    log_file = log_path.open("w")
    process = subprocess.Popen(
        ["bash", str(RUN_ROOTFS), str(rootfs),
         "circus", "demo", "--port", str(port), "--state-dir", STATE_DIR],
        env={**os.environ, "NIX_CONFIG": NIX_CONFIG},
        stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT)
    # The script execs unshare, which waits for its child, the namespaces' PID 1: circus,
    # after the execs. SIGTERM goes to it; SIGKILL to it ends everything inside.
    init = _wait_for_child(process)
    namespaces = {kind: os.readlink(f"/proc/{init}/ns/{kind}") for kind in ("pid", "mnt")}

    def logs() -> str:
        return log_path.read_text(errors="replace")

    try:
        yield logs
    finally:
        try:
            os.kill(init, signal.SIGTERM)
            try:
                returncode = process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.kill(init, signal.SIGKILL)  # PID 1 of the namespace: all of it goes
                returncode = process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
            log_file.close()
        output = logs()
        assert returncode == 0, output[-3000:]
        assert "circus stopped" in output, output[-3000:]
        assert _processes_in(namespaces) == [], "processes of the chroot remain"
        _assert_nothing_mounted_under(rootfs)


def _wait_for_child(process: subprocess.Popen) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text()
        except FileNotFoundError:
            children = ""
        if children.split():
            return int(children.split()[0])
        assert process.poll() is None, f"unshare exited {process.returncode}"
        time.sleep(0.05)
    pytest.fail("unshare started no child")


# --- helpers -----------------------------------------------------------------------


def _host_nix_state() -> tuple[bool, bool]:
    """Whether this machine has an /etc/nix and a nixbld group."""
    try:
        grp.getgrnam("nixbld")
        group = True
    except KeyError:
        group = False
    return Path("/etc/nix").exists(), group


def _image_env(rootfs: Path) -> dict[str, str]:
    lines = (rootfs / "etc" / "circus" / "image.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line)


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{argv}: {result.stderr.strip()}"
    return result


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def _poll(url: str, seconds: float, logs: Callable[[], str],
          done: Callable[[int, str], bool]) -> Any:
    """GETs `url` until `done(status, body)`; its JSON body."""
    deadline = time.monotonic() + seconds
    last: object = None
    while time.monotonic() < deadline:
        try:
            status, body = _get(url)
            if done(status, body):
                return json.loads(body)
            last = (status, body[:500])
        except OSError as error:
            last = error
        time.sleep(1)
    pytest.fail(f"{url} not ready after {seconds}s (last: {last})\n{logs()[-4000:]}")


def _processes_rooted_in(root: Path) -> list[str]:
    """Processes on this machine whose root directory is `root` (or under it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            process_root = os.readlink(entry / "root")
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if process_root == str(root) or process_root.startswith(f"{root}/"):
            found.append(f"{entry.name} {command}")
    return found


def _processes_in(namespaces: dict[str, str]) -> list[str]:
    """Processes on this machine in any of these namespaces (kind: `ns/` link)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            inside = any(os.readlink(entry / "ns" / kind) == link
                         for kind, link in namespaces.items())
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if inside:
            found.append(f"{entry.name} {command}")
    return found


def _assert_nothing_mounted_under(root: Path) -> None:
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    left = [m for m in mounts if m == str(root) or m.startswith(f"{root}/")]
    assert left == [], f"left mounted on this machine: {left}"
