"""What the suite runs with: the tree's paths, Nix settings for an offline machine, the
template database's name, and free ports."""

from __future__ import annotations

import functools
import os
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
SHARED = ROOT.parent / "shared"
TEMPLATE = "circus_template"
OUTPUT_DIR = Path(os.environ.get("CIRCUS_TEST_OUTPUT", ROOT / "test-output"))

# Single-user as root with no build users (Debian's nix-bin creates no nixbld group), no
# sandbox (it has no /bin/sh), no default substituter (offline: every call would retry
# cache.nixos.org for seconds).
NIX_CONFIG = ("experimental-features = nix-command flakes\nsubstituters =\nsandbox = false\n"
              "build-users-group =\n")
NIX_CONF_DIR = ROOT / "tests" / "data" / "nix-conf"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@functools.cache
def host_system() -> str:
    """The system this machine builds for, as Nix names it (`x86_64-linux`)."""
    return subprocess.run(["nix", "eval", "--raw", "--impure", "--expr", "builtins.currentSystem"],
                          check=True, capture_output=True, text=True).stdout.strip()
