"""GC roots for build outputs, so `nix-store --gc` keeps what Circus built.

A root is an indirect one made by `nix-store --add-root <dir>/<name> --realise <path>`:
a symlink in our directory that Nix registers under /nix/var/nix/gcroots/auto, so
deleting the symlink is enough to release the path.
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs
import structlog

from circus.proc import nix

log = structlog.get_logger(__name__)


def _usable(directory: Path) -> bool:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(directory, os.W_OK | os.X_OK)


@attrs.define(eq=False)
class GcRoots:
    directory: Path

    @classmethod
    def choose(cls, configured: str, state_dir: str) -> GcRoots:
        """The configured directory, or `<state_dir>/gcroots` when it cannot be written."""
        wanted = Path(configured)
        if _usable(wanted):
            return cls(wanted)
        fallback = Path(state_dir).resolve() / "gcroots"
        fallback.mkdir(parents=True, exist_ok=True)
        log.warning("gc roots directory is not writable; using the state directory instead",
                    configured=str(wanted), using=str(fallback))
        return cls(fallback)

    def link_for(self, store_path: str) -> Path:
        return self.directory / Path(store_path).name

    async def add(self, store_path: str) -> Path:
        """The root for `store_path`; circus.proc.child.ChildError when Nix refuses."""
        link = self.link_for(store_path)
        await nix.add_root(link, store_path)
        return link
