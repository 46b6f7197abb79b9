"""Starts the requested roles in one event loop and stops them cleanly on a signal."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from circus.app import doctor
from circus.app.config import Config
from circus.app.context import Context
from circus.db import migrations
from circus.db.bus import Bus
from circus.db.pool import create_pool, database_url
from circus.domain.errors import StartupError, TaskFailed
from circus.services import declarative

log = structlog.get_logger(__name__)

ROLES = ("server", "evaluator", "runner")


def _role_main(role: str) -> Callable[[Context], Coroutine[Any, Any, None]]:
    # Imported lazily: a runner-only machine never loads the web server.
    if role == "server":
        from circus.server.http.role import run
    elif role == "evaluator":
        from circus.evaluator.role import run
    else:
        from circus.runner.role import run
    return run


def parse_roles(text: str) -> list[str]:
    roles = [r.strip() for r in text.split(",") if r.strip()]
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise ValueError(
            f"--roles: unknown role {', '.join(unknown) or '(none)'}; "
            f"choose from {', '.join(ROLES)}"
        )
    return list(dict.fromkeys(roles))


async def prepare_database(config: Config) -> str:
    """Find or start the database, apply migrations and the declarative config."""
    url = await asyncio.to_thread(database_url, config)
    # No statement_timeout: a migration may take long, or wait for another node's.
    pool = await create_pool(url, config, maintenance=True)
    try:
        async with pool.acquire() as conn:
            await migrations.up(conn)
        await declarative.apply(pool, config.declarative)
    finally:
        await pool.close()
    return url


async def check_nix(roles: list[str]) -> None:
    """The evaluator and the runner need a working Nix; refuse to take work without."""
    if not {"evaluator", "runner"} & set(roles):
        return
    failure = await doctor.first_failure()
    if failure is not None:
        raise StartupError(f"Nix is not usable ({failure.name}): {failure.detail}; "
                           f"fix: {failure.fix}")
    log.info("nix checked", roles=roles)


async def run(config: Config, roles: list[str]) -> None:
    await check_nix(roles)
    url = await prepare_database(config)
    pool = await create_pool(url, config)
    bus = Bus(url)
    await bus.start()
    ctx = Context(config=config, pool=pool, bus=bus, database_url=url)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _request_stop, ctx, sig)
    log.info("circus started", roles=roles, instance=ctx.instance)
    try:
        async with asyncio.TaskGroup() as group:
            for role in roles:
                group.create_task(_role_main(role)(ctx), name=role)
    except* (StartupError, TaskFailed) as failed:
        raise failed.exceptions[0] from None
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await bus.close()
        await pool.close()
    log.info("circus stopped", instance=ctx.instance)


def _request_stop(ctx: Context, sig: signal.Signals) -> None:
    if ctx.stopping.is_set():
        return
    log.info("stopping: no new work; running builds finish within the grace period",
             signal=sig.name)
    ctx.stopping.set()
