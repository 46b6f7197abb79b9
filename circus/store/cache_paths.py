"""The binary cache's catalogue: the store paths of successful builds' closures, written
by the runner once a build is published and read for every narinfo and NAR."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import asyncpg

from circus.db.queries import Q
from circus.nix.pathinfo import PathInfo

Conn: TypeAlias = asyncpg.Pool | asyncpg.Connection


async def record(conn: Conn, build_id: int, infos: Sequence[PathInfo]) -> None:
    """Catalogue a build's closure; a path already known keeps its first build."""
    await conn.execute(
        Q.cache_paths_record, build_id, [i.hash_part for i in infos],
        [i.path for i in infos], [i.nar_hash for i in infos],
        [i.nar_size for i in infos], [" ".join(i.references) for i in infos],
        [i.deriver or "" for i in infos])


async def by_hash(conn: Conn, hash_part: str) -> asyncpg.Record | None:
    """(hash_part, store_path, nar_hash, nar_size, refs, deriver) of a catalogued path."""
    row: asyncpg.Record | None = await conn.fetchrow(Q.cache_path_by_hash, hash_part)
    return row


async def expired_outputs(conn: Conn, max_age_days: int) -> list[str]:
    """Output paths every build of which finished more than `max_age_days` ago and none
    of which is kept."""
    return [r["path"] for r in await conn.fetch(Q.outputs_expired, max_age_days)]


async def forget(conn: Conn, paths: Sequence[str]) -> None:
    """The cache stops offering these paths."""
    await conn.execute(Q.cache_paths_forget, paths)
