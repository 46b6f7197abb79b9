"""What every role is handed: settings, the pool, the bus and the stop signal."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid

import asyncpg
import attrs

from circus.app.config import Config
from circus.db.bus import Bus


def instance_id() -> str:
    """Names this process in the database (lease holder, log lines)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@attrs.define(eq=False)
class Context:
    config: Config
    pool: asyncpg.Pool
    bus: Bus
    database_url: str
    stopping: asyncio.Event = attrs.Factory(asyncio.Event)
    instance: str = attrs.Factory(instance_id)

    async def sleep_or_stop(self, seconds: float) -> bool:
        """Sleep, but wake early when asked to stop; True when stopping."""
        try:
            async with asyncio.timeout(seconds):
                await self.stopping.wait()
        except TimeoutError:
            return False
        return True
