"""Operator commands that are not roles: migrations."""

from __future__ import annotations

import sys

import asyncpg

from circus.app.config import Config
from circus.db import migrations
from circus.db.pool import database_url


async def migrate(config: Config, action: str, name: str | None) -> int:
    if action == "create":
        path = migrations.create(name or "")
        sys.stdout.write(f"created {path}\n")
        return 0
    conn = await asyncpg.connect(database_url(config))
    try:
        if action == "up":
            done = await migrations.up(conn)
            sys.stdout.write(f"applied {len(done)} migration(s)\n")
            return 0
        if action == "status":
            for state in await migrations.status(conn):
                mark = "applied" if state.applied else "pending"
                if state.checksum_ok is False:
                    mark = "EDITED"
                sys.stdout.write(f"{state.migration.path.name}\t{mark}\n")
            return 0
        problems = await migrations.validate(conn)
        for problem in problems:
            sys.stdout.write(f"{problem}\n")
        if not problems:
            sys.stdout.write("all applied migrations match their files\n")
        return 1 if problems else 0
    finally:
        await conn.close()
