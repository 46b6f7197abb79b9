"""builds.sr.ht jobs: submitting, listing and ending them (the server), claiming and
running them under a lease (the runners), their logs and artifacts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import asyncpg

from circus.db.queries import Q
from circus.store.build_queue import Conn
from circus.store.logs import clean

# Bytes per stored artifact piece.
ARTIFACT_CHUNK = 1 << 20


async def insert(conn: Conn, owner: tuple[int | None, int | None, str], manifest: str,
                 note: str | None, tags: Sequence[str], image: str, arch: str | None,
                 secrets: bool, status: str, tasks: Sequence[str]) -> int:
    user_id, key_id, name = owner
    job_id: int = await conn.fetchval(Q.srht_job_insert, user_id, key_id, name, manifest,
                                      note, list(tags), image, arch, secrets, status,
                                      list(tasks))
    return job_id


async def visible_page(conn: Conn, user_id: int | None, key_id: int | None, every: bool,
                       start: int | None, per_page: int) -> list[asyncpg.Record]:
    """Up to `per_page` + 1 jobs, newest first from `start`."""
    return list(await conn.fetch(Q.srht_jobs_visible_page, user_id, key_id, every, start,
                                 per_page))


async def get(conn: Conn, job_id: int) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(Q.srht_job_get, job_id)
    return row


async def tasks_of(conn: Conn, job_ids: Sequence[int]) -> dict[int, list[asyncpg.Record]]:
    found: dict[int, list[asyncpg.Record]] = {i: [] for i in job_ids}
    for row in await conn.fetch(Q.srht_tasks_of, list(job_ids)):
        found[row["job_id"]].append(row)
    return found


async def start(conn: Conn, job_id: int) -> bool:
    """Whether the pending job is now queued."""
    return await conn.fetchrow(Q.srht_job_start, job_id) is not None


async def cancel(conn: Conn, job_id: int) -> bool:
    """Whether the job was still to end, and is now cancelled."""
    return await conn.fetchrow(Q.srht_job_cancel, job_id) is not None


async def claim(conn: Conn, runner_id: str, lease_seconds: float,
                archs: Sequence[str]) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(Q.srht_job_claim, runner_id,
                                                     lease_seconds, list(archs))
    return row


async def renew(conn: Conn, runner_id: str, job_ids: Sequence[int],
                lease_seconds: float) -> set[int]:
    """The jobs still this runner's."""
    rows = await conn.fetch(Q.srht_jobs_renew, runner_id, list(job_ids), lease_seconds)
    return {row["id"] for row in rows}


async def reap(conn: Conn) -> list[int]:
    return [row["id"] for row in await conn.fetch(Q.srht_jobs_reap)]


async def set_task(conn: Conn, job_id: int, nr: int, status: str, runner_id: str) -> bool:
    return await conn.fetchrow(Q.srht_task_set_if_ours, job_id, nr, status,
                               runner_id) is not None


async def finish(conn: Conn, job_id: int, runner_id: str, status: str,
                 error: str | None) -> bool:
    return await conn.fetchrow(Q.srht_job_finish_if_ours, job_id, runner_id, status,
                               error) is not None


async def append_log(conn: Conn, job_id: int, task_nr: int, seq: int, data: str) -> None:
    await conn.execute(Q.srht_log_append, job_id, task_nr, seq, clean(data))


async def log_after(conn: Conn, job_id: int, task_nr: int,
                    after_seq: int) -> list[tuple[int, str]]:
    rows = await conn.fetch(Q.srht_log_chunks_after, job_id, task_nr, after_seq)
    return [(row["seq"], row["data"]) for row in rows]


async def add_artifact(pool: asyncpg.Pool, job_id: int, runner_id: str, path: str,
                       name: str, pieces: AsyncIterator[bytes], size: int) -> int | None:
    """An artifact's row and its bytes, in one transaction; None when the job is no
    longer this runner's."""
    async with pool.acquire() as conn, conn.transaction():
        artifact_id: int | None = await conn.fetchval(Q.srht_artifact_insert_if_ours, job_id,
                                                      path, name, size, runner_id)
        if artifact_id is None:
            return None
        seq = 0
        async for piece in pieces:
            await conn.execute(Q.srht_artifact_chunk_insert, artifact_id, seq, piece)
            seq += 1
    return artifact_id


async def artifacts_of(conn: Conn, job_id: int) -> list[asyncpg.Record]:
    return list(await conn.fetch(Q.srht_artifacts_of, job_id))


async def artifact(conn: Conn, job_id: int, artifact_id: int) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(Q.srht_artifact_get, artifact_id, job_id)
    return row


async def artifact_pieces(pool: asyncpg.Pool, artifact_id: int) -> AsyncIterator[bytes]:
    """The artifact's bytes, a piece per query."""
    seq = 0
    while True:
        data = await pool.fetchval(Q.srht_artifact_chunk, artifact_id, seq)
        if data is None:
            return
        yield bytes(data)
        seq += 1
