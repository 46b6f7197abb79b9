"""Which `system`s this runner builds: configured, or what the local Nix can build."""

from __future__ import annotations

from circus.proc import nix


async def host_systems() -> list[str]:
    """Nix's `system` plus its `extra-platforms`; ChildError when Nix cannot say."""
    settings = await nix.show_config()
    extra = settings.get("extra-platforms", {}).get("value") or []
    return [settings["system"]["value"], *extra]


async def supported_systems(configured: list[str]) -> list[str]:
    return list(configured) if configured else await host_systems()
