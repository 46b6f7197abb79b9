"""Builds: what a build page shows of one (or Hydra's list of many), and the changes the
operations make — cancel, restart, bump, keep, and failing the queued builds that wait
on one that will never succeed. Each runs on the connection it is given, so a caller
joins several in one transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeAlias

import asyncpg

from circus.db.queries import Q

Conn: TypeAlias = asyncpg.Pool | asyncpg.Connection


async def get(conn: Conn, build_id: int) -> asyncpg.Record | None:
    """The build with its project's and jobset's names."""
    row: asyncpg.Record | None = await conn.fetchrow(Q.build_get, build_id)
    return row


async def exists(conn: Conn, build_id: int) -> bool:
    return await conn.fetchval(Q.build_exists, build_id) is not None


async def of_drv(conn: Conn, drv_path: str, limit: int) -> list[int]:
    """The ids of the builds of this derivation, newest first."""
    return [row["id"] for row in await conn.fetch(Q.builds_of_drv, drv_path, limit)]


async def by_ids(conn: Conn, ids: Sequence[int]) -> list[asyncpg.Record]:
    """Those of `ids` that exist, in id order, with project and jobset names."""
    return list(await conn.fetch(Q.builds_by_ids, list(ids)))


async def _per_build(conn: Conn, query: str, ids: Sequence[int]) -> dict[int, list[Any]]:
    """The rows of a per-build table, by build (every id present), without build_id."""
    found: dict[int, list[Any]] = {build_id: [] for build_id in ids}
    for row in await conn.fetch(query, list(ids)):
        item = dict(row)
        found[item.pop("build_id")].append(item)
    return found


async def outputs(conn: Conn, ids: Sequence[int]) -> dict[int, list[Any]]:
    """{name, path} of each build's outputs, by name."""
    return await _per_build(conn, Q.build_outputs, ids)


async def products(conn: Conn, ids: Sequence[int]) -> dict[int, list[Any]]:
    """Each build's products (`nix-support/hydra-build-products`), by number."""
    return await _per_build(conn, Q.build_products, ids)


async def metrics(conn: Conn, ids: Sequence[int]) -> dict[int, list[Any]]:
    """{name, value, unit} of each build's metrics, by name."""
    return await _per_build(conn, Q.build_metrics, ids)


async def evaluation_ids(conn: Conn, ids: Sequence[int]) -> dict[int, list[int]]:
    """The evaluations each build belongs to, oldest first."""
    rows = await _per_build(conn, Q.build_evaluations, ids)
    return {build_id: [r["evaluation_id"] for r in found] for build_id, found in rows.items()}


async def product(conn: Conn, build_id: int, product_nr: int) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(Q.build_product, build_id, product_nr)
    return row


async def steps(conn: Conn, build_id: int) -> list[asyncpg.Record]:
    """The derivations Nix built or substituted for it, in order."""
    return list(await conn.fetch(Q.build_steps, build_id))


async def dependencies(conn: Conn, build_id: int) -> list[asyncpg.Record]:
    """(id, job, state, buildstatus) of the builds it waits for."""
    return list(await conn.fetch(Q.build_dependencies, build_id))


async def dependents(conn: Conn, build_id: int) -> list[asyncpg.Record]:
    """(id, job, state, buildstatus) of the builds that wait for it."""
    return list(await conn.fetch(Q.build_dependents, build_id))


async def constituents(conn: Conn, build_id: int) -> list[asyncpg.Record]:
    """(id, job, state, buildstatus) of an aggregate's constituents."""
    return list(await conn.fetch(Q.build_constituents, build_id))


async def related(conn: Conn, build_id: int) -> dict[str, list[Any]]:
    """Everything a build's page shows beside the build, by the key it is shown under."""
    ids = [build_id]
    return {"outputs": (await outputs(conn, ids))[build_id],
            "products": (await products(conn, ids))[build_id],
            "metrics": (await metrics(conn, ids))[build_id],
            "steps": await steps(conn, build_id),
            "dependencies": await dependencies(conn, build_id),
            "constituents": await constituents(conn, build_id),
            "evaluations": (await evaluation_ids(conn, ids))[build_id]}


async def set_signature(conn: Conn, build_id: int, signature: str) -> None:
    """The outputs' signatures (space-separated, in output-name order)."""
    await conn.execute(Q.build_set_signature, build_id, signature)


async def cancel(conn: Conn, ids: Sequence[int]) -> list[asyncpg.Record]:
    """(id, job) of those that were queued or running and are now cancelled."""
    return list(await conn.fetch(Q.builds_cancel, list(ids)))


async def fail_dependents(conn: Conn, build_id: int, message: str) -> list[int]:
    """The queued builds that waited on `build_id` (directly or not), now failed."""
    return [row["id"] for row in await conn.fetch(Q.build_fail_dependents, build_id, message)]


async def restart(conn: Conn, ids: Sequence[int],
                  codes: Iterable[int] | None = None) -> list[int]:
    """Those finished (with one of `codes`, or any) and now queued again."""
    wanted = None if codes is None else [int(code) for code in codes]
    return [row["id"] for row in await conn.fetch(Q.builds_restart, list(ids), wanted)]


async def clear_results(conn: Conn, ids: Sequence[int]) -> None:
    """Outputs, products, metrics, steps and log of builds run again."""
    await conn.execute(Q.builds_clear_results, list(ids))


async def bump(conn: Conn, ids: Sequence[int]) -> dict[int, int]:
    """The new global priority of those of `ids` that are queued, ahead of every other
    queued build."""
    rows = await conn.fetch(Q.builds_bump, list(ids))
    return {row["id"]: int(row["global_priority"]) for row in rows}


async def keep(conn: Conn, build_id: int, value: bool) -> bool:
    """Whether the build exists (and now has keep = value)."""
    return await conn.fetchrow(Q.build_keep, build_id, value) is not None
