"""The connection pool, and finding the database (embedded or configured)."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import structlog

from circus.app.config import Config
from circus.db import embedded

log = structlog.get_logger(__name__)


def database_url(config: Config) -> str:
    """The configured URL, or the embedded server's (started if it is not running, and
    stopped when the last process using it exits)."""
    if config.database.url:
        return config.database.url
    return embedded.use(embedded.for_state_dir(config.state_dir, config.database.port,
                                               config.database.listen))


async def init_connection(conn: asyncpg.Connection) -> None:
    """JSON and jsonb as Python values (every pooled connection; the tests' too)."""
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads,
                                  schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """On release, asyncpg still rolls back an open transaction and drops listeners. Its
    default reset adds a round trip on every release (UNLISTEN, RESET ALL, CLOSE ALL,
    advisory unlock) for session state Circus never leaves on a pooled connection: no
    LISTEN (the bus has its own), no session SET (only SET LOCAL), no cursors outside a
    transaction, and the migration lock is released explicitly."""


def server_settings(config: Config, maintenance: bool = False) -> dict[str, str]:
    """Session settings of every pooled connection. `statement_timeout` bounds what one
    request (or anonymous visitor) can make the database do; a maintenance pool
    (migrations at start) has none, and so waits for another node's migration lock."""
    seconds = 0 if maintenance else config.database.statement_timeout
    return {"statement_timeout": f"{seconds}s"}


async def create_pool(url: str, config: Config, maintenance: bool = False) -> asyncpg.Pool:
    db = config.database
    delay = 0.2
    deadline = asyncio.get_running_loop().time() + db.connect_timeout
    while True:
        try:
            return await asyncpg.create_pool(
                url,
                min_size=min(db.min_connections, db.max_connections),
                max_size=db.max_connections,
                max_inactive_connection_lifetime=db.idle_timeout,
                timeout=db.connect_timeout,
                init=init_connection,
                reset=_keep_session,
                server_settings=server_settings(config, maintenance),
            )
        except (OSError, asyncpg.CannotConnectNowError) as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise
            log.warning("database not reachable yet", error=str(exc), retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
