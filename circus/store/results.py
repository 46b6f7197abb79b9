"""What a finished build leaves: its status row, and its outputs, products, metrics and
steps, each written as one array insert. Each runs on the connection it is given, so
the runner records a build in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from circus.db.queries import Q


async def finish(conn: asyncpg.Connection, runner_id: str, build_ids: Sequence[int],
                 statuses: Sequence[int], errors: Sequence[str | None],
                 remember_failures: bool = False) -> set[int]:
    """Each build finished with its status and error, if it still runs under
    `runner_id`; the ids finished. `remember_failures`: failed derivations go into the
    failed-paths cache."""
    rows = await conn.fetch(Q.build_finish_if_ours, runner_id, build_ids, statuses, errors,
                            remember_failures)
    return {row["id"] for row in rows}


async def add_outputs(conn: asyncpg.Connection, build_id: int, names: Sequence[str],
                      paths: Sequence[str]) -> None:
    await conn.execute(Q.build_outputs_insert, build_id, names, paths)


async def add_products(conn: asyncpg.Connection, build_id: int,
                       columns: Sequence[Sequence[Any]]) -> None:
    """`columns`: (type, subtype, name, path, default_path, file_size, sha256), a list
    each, numbered from 1 in their order."""
    count = len(columns[0])
    await conn.execute(Q.build_products_insert, build_id, list(range(1, count + 1)),
                       *columns)


async def add_metrics(conn: asyncpg.Connection, build_id: int, names: Sequence[str],
                      values: Sequence[float], units: Sequence[str | None]) -> None:
    await conn.execute(Q.build_metrics_insert, build_id, names, values, units)


async def add_steps(conn: asyncpg.Connection, build_id: int,
                    columns: Sequence[Sequence[Any]]) -> None:
    """`columns`: (step_nr, drv_path, kind, machine, status, error_message, started_at,
    finished_at), a list each."""
    await conn.execute(Q.build_steps_insert, build_id, *columns)


async def lock_if_finished(conn: asyncpg.Connection, build_id: int) -> bool:
    """Lock the build's row for this transaction if it has finished."""
    return await conn.fetchval(Q.build_lock_if_finished, build_id) is not None
