"""Applying `[declarative]` (projects with jobsets and inputs, API keys) at start.

Idempotent: the queries only touch rows whose values differ, so a second start with the
same file changes nothing.
"""

from __future__ import annotations

import asyncpg
import structlog

from circus.apikeys import hash_key
from circus.config import DeclarativeConfig, DeclarativeJobset
from circus.db.queries import Q

log = structlog.get_logger(__name__)


async def apply(pool: asyncpg.Pool, declared: DeclarativeConfig) -> None:
    async with pool.acquire() as conn, conn.transaction():
        for project in declared.projects:
            await conn.execute(Q.declare_project, project.name, project.repository_url,
                               project.description)
            project_id = await conn.fetchval(Q.project_id_by_name, project.name)
            for jobset in project.jobsets:
                await _apply_jobset(conn, project_id, jobset)
        hashes = []
        for key in declared.api_keys:
            digest = hash_key(key.secret())
            hashes.append(digest)
            await conn.execute(Q.declare_api_key, key.name, digest, key.role)
        await conn.execute(Q.drop_undeclared_api_keys, hashes)
    if declared.projects or declared.api_keys:
        log.info("declarative configuration applied", projects=len(declared.projects),
                 api_keys=len(declared.api_keys))


async def _apply_jobset(conn: asyncpg.Connection, project_id: int,
                        jobset: DeclarativeJobset) -> None:
    await conn.execute(
        Q.declare_jobset, project_id, jobset.name, jobset.nix_expression, jobset.flake,
        jobset.branch, jobset.check_interval, 1 if jobset.enabled else 0, jobset.description,
    )
    jobset_id = await conn.fetchval(Q.jobset_id_by_name, project_id, jobset.name)
    for item in jobset.inputs:
        await conn.execute(Q.declare_jobset_input, jobset_id, item.name, item.type, item.value)
    await conn.execute(Q.drop_undeclared_inputs, jobset_id, [i.name for i in jobset.inputs])
