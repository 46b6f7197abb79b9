"""Jobsets made as rows, and an evaluation run in-process as the evaluator role would."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from circus.app.context import Context
from circus.db.queries import Q
from circus.evaluator import workers
from circus.evaluator.evaluate import Jobset, evaluate_jobset


async def create_jobset(pool: asyncpg.Pool, repo: Path | str, *, flake: bool = True,
                        expression: str = "hydraJobs", inputs: list[tuple] = (),
                        check_interval: int = 0, name: str = "main") -> int:
    project_id = await pool.fetchval(
        "INSERT INTO projects (name, repository_url) VALUES ($1, $2) "
        "ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
        "proj", str(repo))
    jobset_id = await pool.fetchval(
        "INSERT INTO jobsets (project_id, name, nix_expression, flake, check_interval) "
        "VALUES ($1, $2, $3, $4, $5) RETURNING id",
        project_id, name, expression, flake, check_interval)
    for input_name, kind, value in inputs:
        await pool.execute("INSERT INTO jobset_inputs (jobset_id, name, type, value) "
                           "VALUES ($1, $2, $3, $4)", jobset_id, input_name, kind, value)
    return jobset_id


async def evaluate_now(ctx: Context, jobset_id: int) -> asyncpg.Record | None:
    """Trigger the jobset and run the evaluation the role would; the newest evaluation."""
    await ctx.pool.execute("UPDATE jobsets SET trigger_time = now() WHERE id = $1", jobset_id)
    rows = [r for r in await ctx.pool.fetch(Q.jobsets_due, []) if r["id"] == jobset_id]
    assert rows, "a triggered jobset is due"
    cfg = ctx.config.evaluator
    await evaluate_jobset(ctx, Jobset(**dict(rows[0])),
                          workers.Limits(cfg.workers, cfg.max_memory_mb))
    return await ctx.pool.fetchrow(
        "SELECT * FROM evaluations WHERE jobset_id = $1 ORDER BY id DESC LIMIT 1", jobset_id)
