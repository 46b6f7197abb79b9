"""API keys for every role, and projects, jobsets and builds seeded through the API or as rows."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from circus.services.apikeys import hash_key

ADMIN_KEY = "circus_demo_admin_key"
READONLY_KEY = "circus_demo_readonly_key"
ROLE_KEYS = {
    "admin": ADMIN_KEY,
    "read-only": READONLY_KEY,
    "create-projects": "key_create",
    "eval-jobset": "key_eval",
    "cancel-build": "key_cancel",
    "restart-jobs": "key_restart",
    "bump-to-front": "key_bump",
}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


ADMIN = bearer(ADMIN_KEY)


async def insert_keys(pool: asyncpg.Pool) -> None:
    for role, key in ROLE_KEYS.items():
        await pool.execute("INSERT INTO api_keys (name, key_hash, role) VALUES ($1, $2, $3)",
                           f"{role} key", hash_key(key), role)


async def seed_project(client: TestClient, name: str = "demo") -> dict[str, Any]:
    resp = await client.post("/api/v1/projects", headers=ADMIN,
                             json={"name": name, "repository_url": "https://example.com/r"})
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def seed_jobset(client: TestClient, project_id: int, name: str = "main") -> dict[str, Any]:
    resp = await client.post(f"/api/v1/projects/{project_id}/jobsets", headers=ADMIN,
                             json={"name": name})
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def insert_build(pool: asyncpg.Pool, jobset_id: int, job: str, **fields: Any) -> int:
    """A build row as the evaluator would write it, with `fields` overriding columns."""
    row = {"jobset_id": jobset_id, "job": job, "drv_path": f"/nix/store/{job}.drv",
           "system": "x86_64-linux", "state": "queued", "buildstatus": None} | fields
    columns = ", ".join(row)
    marks = ", ".join(f"${i}" for i in range(1, len(row) + 1))
    return await pool.fetchval(
        f"INSERT INTO builds (project_id, {columns}) "
        f"SELECT project_id, {marks} FROM jobsets WHERE id = $1 RETURNING id",
        *row.values())
