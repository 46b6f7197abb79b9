"""Jobsets and their inputs: found by id within a project or by names (Hydra's way),
listed, changed by `services/projects` and declarative apply, and asked to evaluate
now. Each runs on the connection it is given, so a caller joins several in one
transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import asyncpg

from circus.db.queries import Q

Conn: TypeAlias = asyncpg.Pool | asyncpg.Connection

# What a caller sets: (name, nix_expression, flake, branch, enabled, check_interval,
# description, scheduling_shares, keep_evaluations, hidden).
Fields: TypeAlias = tuple[str, str, bool, str | None, int, int, str, int, int, bool]
# (name, type, value) of an input.
Input: TypeAlias = tuple[str, str, str]


async def page(conn: Conn, project_id: int, limit: int, offset: int) -> list[asyncpg.Record]:
    """A project's jobsets, by id."""
    return list(await conn.fetch(Q.jobsets_list, project_id, limit, offset))


async def count(conn: Conn, project_id: int) -> int:
    found: int = await conn.fetchval(Q.jobsets_count, project_id)
    return found


async def with_latest_evaluation(conn: Conn, project_id: int, limit: int,
                                 offset: int) -> list[asyncpg.Record]:
    """A project's jobsets by name, each with its newest evaluation's `eval_id`,
    `eval_status`, `eval_commit`, `eval_time` and `eval_builds` (NULL when none)."""
    return list(await conn.fetch(Q.jobsets_with_latest_evaluation, project_id, limit, offset))


async def get(conn: Conn, project_id: int, jobset_id: int) -> asyncpg.Record | None:
    """The jobset, if it is one of the project's."""
    row: asyncpg.Record | None = await conn.fetchrow(Q.jobset_get, project_id, jobset_id)
    return row


async def by_id(conn: Conn, jobset_id: int) -> asyncpg.Record | None:
    """The jobset with its project's `project` name and `project_display_name`."""
    row: asyncpg.Record | None = await conn.fetchrow(Q.jobset_by_id, jobset_id)
    return row


async def by_names(conn: Conn, project: str, name: str) -> asyncpg.Record | None:
    """The jobset with its `project` name and `project_display_name`, the project's
    `repository_url`, and `eval_started_at` of its running evaluation (NULL when none runs)."""
    row: asyncpg.Record | None = await conn.fetchrow(Q.jobset_by_names, project, name)
    return row


async def id_by_name(conn: Conn, project_id: int, name: str) -> int | None:
    found: int | None = await conn.fetchval(Q.jobset_id_by_name, project_id, name)
    return found


async def id_by_names(conn: Conn, project: str, name: str) -> int | None:
    found: int | None = await conn.fetchval(Q.jobset_id_by_names, project, name)
    return found


async def count_others(conn: Conn, project_id: int, name: str) -> int:
    """How many of the project's jobsets are not named `name`."""
    found: int = await conn.fetchval(Q.jobsets_count_other_than, project_id, name)
    return found


async def overview(conn: Conn, project: str) -> list[asyncpg.Record]:
    """Each jobset of the named project, by name, with its state and the build counts
    of its latest evaluation (Hydra's /api/jobsets)."""
    return list(await conn.fetch(Q.jobsets_overview, project))


async def insert(conn: Conn, project_id: int, fields: Fields) -> asyncpg.Record:
    """The new jobset; UniqueViolationError when the project has one of that name."""
    row: asyncpg.Record = await conn.fetchrow(Q.jobset_insert, project_id, *fields)
    return row


async def update(conn: Conn, project_id: int, jobset_id: int, fields: Fields
                 ) -> asyncpg.Record | None:
    """The jobset as changed; None when the project has none with that id.
    UniqueViolationError when renamed onto another's name."""
    row: asyncpg.Record | None = await conn.fetchrow(Q.jobset_update, project_id, jobset_id,
                                                     *fields)
    return row


async def delete(conn: Conn, project_id: int, jobset_id: int) -> int | None:
    """The id of the deleted jobset; None when the project had none with that id."""
    deleted: int | None = await conn.fetchval(Q.jobset_delete, project_id, jobset_id)
    return deleted


async def inputs(conn: Conn, jobset_id: int) -> list[asyncpg.Record]:
    """The jobset's inputs, every column, by name."""
    return list(await conn.fetch(Q.jobset_inputs, jobset_id))


async def inputs_of(conn: Conn, jobset_ids: Sequence[int]) -> list[asyncpg.Record]:
    """(jobset_id, name, type, value) of the inputs of several jobsets, by jobset, name."""
    return list(await conn.fetch(Q.jobsets_inputs, list(jobset_ids)))


async def add_input(conn: Conn, jobset_id: int, name: str, kind: str, value: str
                    ) -> asyncpg.Record:
    """The new input; UniqueViolationError when the jobset has one of that name."""
    row: asyncpg.Record = await conn.fetchrow(Q.jobset_input_insert, jobset_id, name, kind,
                                              value)
    return row


async def delete_input(conn: Conn, jobset_id: int, input_id: int) -> int | None:
    """The id of the deleted input; None when the jobset had none with that id."""
    deleted: int | None = await conn.fetchval(Q.jobset_input_delete, jobset_id, input_id)
    return deleted


async def replace_inputs(conn: asyncpg.Connection, jobset_id: int,
                         new: Sequence[Input]) -> None:
    """Every input of the jobset replaced by `new`; run it in the caller's transaction,
    or the jobset is seen for a moment with none."""
    await conn.execute(Q.jobset_inputs_clear, jobset_id)
    await conn.execute(Q.jobset_inputs_insert, jobset_id, [i[0] for i in new],
                       [i[1] for i in new], [i[2] for i in new])


async def request_evaluation(conn: Conn, jobset_id: int) -> asyncpg.Record | None:
    """(id, project_id, name, trigger_time) of the jobset now due for evaluation (the
    evaluator is notified when the caller's transaction commits); None if no such one."""
    row: asyncpg.Record | None = await conn.fetchrow(Q.jobset_request_evaluation, jobset_id)
    return row


async def request_evaluations(conn: Conn, labels: Sequence[str]) -> list[str]:
    """Those of the 'project:jobset' labels that name a jobset, each now due for
    evaluation (the evaluator is notified when the caller's transaction commits)."""
    rows = await conn.fetch(Q.jobsets_request_evaluation_by_label, list(labels))
    return [row["label"] for row in rows]


async def declare(conn: Conn, project_id: int, name: str, *, nix_expression: str,
                  flake: bool, branch: str | None, check_interval: int, enabled: int,
                  description: str) -> int:
    """The id of the declared jobset, created or changed only where it differs."""
    await conn.execute(Q.declare_jobset, project_id, name, nix_expression, flake, branch,
                       check_interval, enabled, description)
    # declare_jobset returns no row when nothing changed, so the id is looked up.
    found: int = await conn.fetchval(Q.jobset_id_by_name, project_id, name)
    return found


async def declare_inputs(conn: Conn, jobset_id: int, declared: Sequence[Input]) -> None:
    """The jobset's inputs made exactly `declared`, changing only those that differ."""
    for name, kind, value in declared:
        await conn.execute(Q.declare_jobset_input, jobset_id, name, kind, value)
    await conn.execute(Q.drop_undeclared_inputs, jobset_id, [i[0] for i in declared])


async def due(conn: Conn, skipping: Sequence[int]) -> list[asyncpg.Record]:
    """Enabled jobsets to evaluate now (interval elapsed or triggered), but not these,
    each with what the evaluator needs to know of it and its project."""
    return list(await conn.fetch(Q.jobsets_due, skipping))


async def seconds_until_due(conn: Conn, skipping: Sequence[int]) -> float | None:
    """How long until the next of the other jobsets is due; None when none is."""
    found: float | None = await conn.fetchval(Q.jobsets_seconds_until_due, skipping)
    return found


async def mark_checked(conn: Conn, jobset_id: int, started_at: object) -> None:
    """Checked at `started_at` with nothing new; a trigger that came later stays."""
    await conn.execute(Q.jobset_mark_checked, jobset_id, started_at)


async def try_lock(conn: asyncpg.Connection, jobset_id: int) -> bool:
    """The session's lock on evaluating the jobset, if no other session holds it."""
    ours: bool = await conn.fetchval(Q.jobset_try_lock, jobset_id)
    return ours


async def unlock(conn: asyncpg.Connection, jobset_id: int) -> None:
    await conn.fetchval(Q.jobset_unlock, jobset_id)
