"""Applying `[declarative]` (projects with jobsets and inputs, API keys, users, remote
builders) at start.

Idempotent: the queries only touch rows whose values differ, so a second start with the
same file changes nothing.
"""

from __future__ import annotations

import asyncpg
import structlog

from circus.app.config import DeclarativeConfig, DeclarativeJobset, DeclarativeUser
from circus.services import builders, passwords
from circus.services.apikeys import hash_key
from circus.store import apikeys as apikey_store
from circus.store import jobsets as jobset_store
from circus.store import projects as project_store
from circus.store import users as user_store

log = structlog.get_logger(__name__)


async def apply(pool: asyncpg.Pool, declared: DeclarativeConfig) -> None:
    async with pool.acquire() as conn, conn.transaction():
        for project in declared.projects:
            project_id = await project_store.declare(conn, project.name,
                                                     project.repository_url,
                                                     project.description)
            for jobset in project.jobsets:
                await _apply_jobset(conn, project_id, jobset)
        hashes = []
        for key in declared.api_keys:
            digest = hash_key(key.secret())
            hashes.append(digest)
            await apikey_store.declare(conn, key.name, digest, key.role)
        await apikey_store.drop_undeclared(conn, hashes)
        for user in declared.users:
            await _apply_user(conn, user)
        await user_store.drop_undeclared(conn, [u.username for u in declared.users])
        await builders.declare(conn, [
            builder.spec(f"declarative.remote_builders[{index}]")
            for index, builder in enumerate(declared.remote_builders)])
    if declared.projects or declared.api_keys or declared.users or declared.remote_builders:
        log.info("declarative configuration applied", projects=len(declared.projects),
                 api_keys=len(declared.api_keys), users=len(declared.users),
                 remote_builders=len(declared.remote_builders))


async def _apply_user(conn: asyncpg.Connection, user: DeclarativeUser) -> None:
    secret = user.secret()
    stored = await user_store.password_hash_by_name(conn, user.username)
    # Verify before re-hashing: argon2 salts each hash, so hashing an unchanged password
    # would rewrite the row on every start.
    new_hash = None
    if stored is None or not await passwords.verify_async(stored, secret):
        new_hash = await passwords.hash_async(secret)
        log.info("declarative user password set", username=user.username)
    await user_store.declare(conn, user.username, email=user.email, role=user.role,
                             enabled=user.enabled, password_hash=new_hash)


async def _apply_jobset(conn: asyncpg.Connection, project_id: int,
                        jobset: DeclarativeJobset) -> None:
    jobset_id = await jobset_store.declare(
        conn, project_id, jobset.name, nix_expression=jobset.nix_expression,
        flake=jobset.flake, branch=jobset.branch, check_interval=jobset.check_interval,
        enabled=1 if jobset.enabled else 0, description=jobset.description)
    await jobset_store.declare_inputs(conn, jobset_id, [(i.name, i.type, i.value)
                                                        for i in jobset.inputs])
