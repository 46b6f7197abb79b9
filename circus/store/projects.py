"""Projects: found by id or by name (Hydra addresses them by name), listed, and the rows
`services/projects` and declarative apply write. Each runs on the connection it is
given, so a caller joins several in one transaction."""

from __future__ import annotations

from typing import TypeAlias

import asyncpg

from circus.db.queries import Q

Conn: TypeAlias = asyncpg.Pool | asyncpg.Connection

# What a caller sets: (name, repository_url, description, display_name, homepage, enabled).
Fields: TypeAlias = tuple[str, str, str, str, str, bool, bool, bool]


async def page(conn: Conn, limit: int, offset: int) -> list[asyncpg.Record]:
    """Projects, newest first."""
    return list(await conn.fetch(Q.projects_list, limit, offset))


async def count(conn: Conn) -> int:
    found: int = await conn.fetchval(Q.projects_count)
    return found


async def matching(conn: Conn, text: str | None, limit: int,
                   offset: int) -> list[asyncpg.Record]:
    """Projects by name whose name, display name or description contains `text` (all
    when None), each with `nr_jobsets` and `nr_queued`."""
    return list(await conn.fetch(Q.projects_matching, text, limit, offset))


async def matching_count(conn: Conn, text: str | None) -> int:
    found: int = await conn.fetchval(Q.projects_matching_count, text)
    return found


async def names(conn: Conn) -> list[asyncpg.Record]:
    """(id, name) of the first 500 projects by name, for a choice list."""
    return list(await conn.fetch(Q.project_names))


async def by_id(conn: Conn, project_id: int) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(Q.project_by_id, project_id)
    return row


async def existing_id(conn: Conn, project_id: int) -> int | None:
    """`project_id` if there is such a project."""
    found: int | None = await conn.fetchval(Q.project_id_if_exists, project_id)
    return found


async def id_by_name(conn: Conn, name: str) -> int | None:
    found: int | None = await conn.fetchval(Q.project_id_by_name, name)
    return found


async def by_key(conn: Conn, project_id: int | None, name: str) -> asyncpg.Record | None:
    """The project with this id or this name (a path segment that may be either)."""
    row: asyncpg.Record | None = await conn.fetchrow(Q.project_by_id_or_name,
                                                     project_id, name)
    return row


async def by_name(conn: Conn, name: str) -> asyncpg.Record | None:
    """The project with the names of its jobsets (`jobsets`, sorted)."""
    row: asyncpg.Record | None = await conn.fetchrow(Q.project_by_name, name)
    return row


async def all_with_jobsets(conn: Conn) -> list[asyncpg.Record]:
    """Every project by name, each with the names of its jobsets (`jobsets`, sorted)."""
    return list(await conn.fetch(Q.projects_with_jobsets))


async def insert(conn: Conn, fields: Fields, owner: str) -> asyncpg.Record:
    """The new project, `owner`'s; UniqueViolationError when the name is taken."""
    row: asyncpg.Record = await conn.fetchrow(Q.project_insert, *fields, owner)
    return row


async def update(conn: Conn, project_id: int, fields: Fields) -> asyncpg.Record | None:
    """The project as changed; None when there is none. UniqueViolationError when
    renamed onto another's name."""
    row: asyncpg.Record | None = await conn.fetchrow(Q.project_update, project_id, *fields)
    return row


async def set_repository(conn: Conn, project_id: int, repository_url: str) -> None:
    await conn.execute(Q.project_set_repository, project_id, repository_url)


async def delete(conn: Conn, project_id: int) -> int | None:
    """The id of the deleted project (its jobsets, evaluations and builds go with it);
    None when there was none."""
    deleted: int | None = await conn.fetchval(Q.project_delete, project_id)
    return deleted


async def declare(conn: Conn, name: str, repository_url: str, description: str) -> int:
    """The id of the declared project, created or changed only where it differs."""
    await conn.execute(Q.declare_project, name, repository_url, description)
    # declare_project returns no row when nothing changed, so the id is looked up.
    found: int = await conn.fetchval(Q.project_id_by_name, name)
    return found
