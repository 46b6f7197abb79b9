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


async def local_features() -> list[str]:
    """Nix's `system-features` here: what a build may require to run on this runner."""
    settings = await nix.show_config()
    return list(settings.get("system-features", {}).get("value") or [])
