"""Which `system`s this runner builds: configured, or what the local Nix can build."""

from __future__ import annotations

import asyncio
import json

from circus.nix.cli import nix


async def host_systems() -> list[str]:
    """Nix's `system` plus its `extra-platforms`."""
    proc = await asyncio.create_subprocess_exec(
        *nix("show-config", "--json"), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"nix show-config failed: {err.decode(errors='replace').strip()}")
    settings = json.loads(out)
    extra = settings.get("extra-platforms", {}).get("value") or []
    return [settings["system"]["value"], *extra]


async def supported_systems(configured: list[str]) -> list[str]:
    return list(configured) if configured else await host_systems()
