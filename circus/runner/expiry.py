"""Expiring GC roots (`[gc]`): every `cleanup_interval` seconds, the roots of outputs
whose builds all finished more than `max_age_days` ago and none of which is kept are
removed, and those outputs leave the binary cache. `nix-store --gc` may then reclaim
them; until then, and for as long as a root exists, they stay substitutable.

Runs in the runner role: the runner creates the roots in its own machine's directory,
and only a process on that machine can remove them. Several runners sweeping is safe:
the decision is made in the database and removing a missing root is a no-op.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg
import attrs
import structlog

from circus.app.context import Context
from circus.nix.gcroots import GcRoots
from circus.store import cache_paths

log = structlog.get_logger(__name__)

DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


@attrs.frozen
class Swept:
    expired: int
    roots_removed: int


async def sweep(pool: asyncpg.Pool, roots: GcRoots | None, max_age_days: int) -> Swept:
    """One pass: remove expired roots and withdraw those outputs from the cache."""
    paths = await cache_paths.expired_outputs(pool, max_age_days)
    # The cache stops offering them first: a path must never be advertised without a root.
    if paths:
        await cache_paths.forget(pool, paths)
    removed = 0
    if roots is not None:
        for path in paths:
            link = roots.link_for(path)
            if link.is_symlink():
                with contextlib.suppress(FileNotFoundError):
                    link.unlink()
                    removed += 1
    return Swept(len(paths), removed)


async def loop(ctx: Context, roots: GcRoots | None) -> None:
    """Sweep every `gc.cleanup_interval` until stopping. Database errors are retried at
    the next interval; anything else ends the loop (the runner watches it and stops)."""
    cfg = ctx.config.gc
    while not await ctx.sleep_or_stop(cfg.cleanup_interval):
        try:
            swept = await sweep(ctx.pool, roots, cfg.max_age_days)
        except DB_ERRORS as exc:
            log.error("gc sweep failed; will retry", error=str(exc))
            continue
        if swept.expired:
            log.info("gc roots expired", outputs=swept.expired, roots_removed=swept.roots_removed,
                     max_age_days=cfg.max_age_days)


def side_tasks(ctx: Context,
               roots: GcRoots | None) -> dict[str, Callable[[], Coroutine[Any, Any, None]]]:
    """The sweep as a named runner side task (none when gc is disabled)."""
    if not ctx.config.gc.enabled:
        return {}
    return {"gc-sweep": lambda: loop(ctx, roots)}
