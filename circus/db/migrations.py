"""Numbered, checksummed migrations from `circus/sql/migrations/NNNN_name.sql`.

Each file runs in its own transaction together with its row in `schema_migrations`, so a
migration is applied whole or not at all. Concurrent starters serialise on an advisory
lock; the second finds nothing left to do.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import asyncpg
import attrs
import structlog

from circus.app.paths import MIGRATIONS_DIR
from circus.domain.errors import CircusError

log = structlog.get_logger(__name__)

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Any constant shared by every Circus process; "circus" in ASCII.
ADVISORY_LOCK = 0x636972637573

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(CircusError):
    """A migration cannot be found, read or applied; the message names the file."""


@attrs.frozen
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


@attrs.frozen
class MigrationState:
    migration: Migration
    applied: bool
    # None when not applied; False when the file changed after it was applied.
    checksum_ok: bool | None


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files, in order; none at all is an installation error, never an
    empty success (a schema-less database would fail later, somewhere else)."""
    if not directory.is_dir():
        raise MigrationError(f"the migrations directory {directory} does not exist")
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        found.append(Migration(int(match[1]), match[2], path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migrations share a version number")
    if not found:
        raise MigrationError(f"the migrations directory {directory} holds no NNNN_name.sql")
    return found


async def status(
    conn: asyncpg.Connection, directory: Path = MIGRATIONS_DIR
) -> list[MigrationState]:
    await conn.execute(_BOOKKEEPING)
    applied = {r["version"]: r["checksum"] for r in
               await conn.fetch("SELECT version, checksum FROM schema_migrations")}
    return [
        MigrationState(m, m.version in applied,
                       None if m.version not in applied else applied[m.version] == m.checksum)
        for m in discover(directory)
    ]


async def validate(conn: asyncpg.Connection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Problems with the applied migrations: edited files, or files that disappeared."""
    problems = [
        f"{s.migration.path.name}: edited after it was applied (checksum differs)"
        for s in await status(conn, directory) if s.checksum_ok is False
    ]
    known = {m.version for m in discover(directory)}
    for row in await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version"):
        if row["version"] not in known:
            problems.append(f"{row['version']:04d}_{row['name']}.sql: applied but missing")
    return problems


async def up(conn: asyncpg.Connection, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply pending migrations under the advisory lock; returns those applied."""
    await conn.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK)
    try:
        problems = await validate(conn, directory)
        if problems:
            raise MigrationError("; ".join(problems))
        done = []
        for state in await status(conn, directory):
            if state.applied:
                continue
            m = state.migration
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    m.version, m.name, m.checksum,
                )
            log.info("applied migration", version=m.version, name=m.name)
            done.append(m)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK)


def create(name: str, directory: Path = MIGRATIONS_DIR) -> Path:
    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise MigrationError(f"migration name {name!r}: use lower-case letters, digits and _")
    existing = discover(directory)
    version = (existing[-1].version + 1) if existing else 1
    path = directory / f"{version:04d}_{name}.sql"
    path.write_text(f"-- {name.replace('_', ' ')}\n")
    return path
