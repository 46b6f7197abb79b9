"""The seed README's curl examples, word for word, against a real `circus.server.role.run`
listening on a free port; and the role stops promptly even with a live log stream open."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest

from circus.app.context import Context
from circus.server.http import role
from tests.helpers.api import (
    insert_build,
)

SEED_EXAMPLES = {
    "health": "curl -s http://localhost:3000/health | jq",
    "create": """curl -s -X POST http://localhost:3000/api/v1/projects \\
  -H 'Authorization: Bearer circus_demo_admin_key' \\
  -H 'Content-Type: application/json' \\
  -d '{"name": "my-project", "repository_url": "https://github.com/NixOS/nixpkgs"}' | jq""",
    "list": "curl -s http://localhost:3000/api/v1/projects | jq",
    "read-only": """curl -s -o /dev/null -w '%{http_code}' -X POST http://localhost:3000/api/v1/projects \\
  -H 'Authorization: Bearer circus_demo_readonly_key' \\
  -H 'Content-Type: application/json' \\
  -d '{"name": "should-fail", "repository_url": "https://example.com"}'""",  # noqa: E501
}

# The `context` and `client` fixtures.


@pytest.fixture
async def served(context: Context) -> AsyncIterator[tuple[Context, str]]:
    task = asyncio.create_task(role.run(context))
    base = f"http://localhost:{context.config.server.port}"
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            try:
                async with http.get(f"{base}/health") as resp:
                    if resp.status == 200:
                        break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
    yield context, base
    context.stopping.set()
    await asyncio.wait_for(task, 30)


async def _sh(command: str, port: int) -> str:
    proc = await asyncio.create_subprocess_exec(
        "bash", "-c", command.replace("localhost:3000", f"localhost:{port}"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_seed_curl_examples(served: tuple[Context, str]) -> None:
    ctx, _ = served
    port = ctx.config.server.port
    health = json.loads(await _sh(SEED_EXAMPLES["health"], port))
    assert (health["status"], health["database"]) == ("ok", "ok")
    created = json.loads(await _sh(SEED_EXAMPLES["create"], port))
    assert created["name"] == "my-project"
    assert created["repository_url"] == "https://github.com/NixOS/nixpkgs"
    listed = json.loads(await _sh(SEED_EXAMPLES["list"], port))
    assert [p["name"] for p in listed["items"]] == ["my-project"] and listed["total"] == 1
    assert await _sh(SEED_EXAMPLES["read-only"], port) == "403"


async def test_role_stops_with_a_stream_open(served: tuple[Context, str],
                                             pool: asyncpg.Pool) -> None:
    ctx, base = served
    project = await pool.fetchval("INSERT INTO projects (name, repository_url) "
                                  "VALUES ('p', '/srv/p') RETURNING id")
    jobset = await pool.fetchval("INSERT INTO jobsets (project_id, name) VALUES ($1, 'j') "
                                 "RETURNING id", project)
    build = await insert_build(pool, jobset, "forever", state="running")
    async with aiohttp.ClientSession() as http, http.get(
            f"{base}/api/v1/builds/{build}/log/stream") as resp:
        assert resp.status == 200
        ctx.stopping.set()
        # The server ends the stream itself rather than waiting for the build.
        await asyncio.wait_for(resp.content.read(), 20)
