"""How Circus calls Nix: the common flags every invocation carries."""

from __future__ import annotations

# Passed on every call so Circus works whatever /etc/nix/nix.conf says.
FEATURES = ("--extra-experimental-features", "nix-command flakes")


def nix(*args: str) -> list[str]:
    """argv for the `nix` command with Circus's common flags."""
    return ["nix", *FEATURES, *args]


def legacy(tool: str, *args: str) -> list[str]:
    """argv for `nix-store`, `nix-instantiate`, ... with Circus's common flags."""
    return [tool, *FEATURES, *args]
