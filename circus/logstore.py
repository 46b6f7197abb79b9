"""Where build logs live: `build_log_chunks` while a build runs, `build_logs` (zstd) after.

Readers call `read_log` for the whole text, or `chunks_after` to follow a running build
(wake on `circus_build_log` with the build id, then ask for the chunks after the last
seq you saw). Once the build finished, `read_log` returns the folded log.
"""

from __future__ import annotations

import asyncpg
import zstandard

from circus.db.queries import Q


def clean(text: str) -> str:
    """PostgreSQL text cannot hold NUL; a builder may still print one."""
    return text.replace("\x00", "\ufffd")


async def append_chunk(conn: asyncpg.Connection, build_id: int, seq: int, data: str) -> None:
    """Store one chunk (whole lines, each ending in a newline) and notify circus_build_log."""
    await conn.execute(Q.logstore_append_chunk, build_id, seq, clean(data))


async def chunks_after(
    conn: asyncpg.Connection, build_id: int, after_seq: int = -1
) -> list[tuple[int, str]]:
    """The chunks of a running build with seq > after_seq, in order."""
    rows = await conn.fetch(Q.logstore_chunks_after, build_id, after_seq)
    return [(row["seq"], row["data"]) for row in rows]


async def fold(conn: asyncpg.Connection, build_id: int) -> int | None:
    """Compress the chunks into build_logs and drop them; call inside the finishing
    transaction. Returns the log size in bytes, or None when there were no chunks."""
    chunks = await chunks_after(conn, build_id)
    if not chunks:
        return None
    text = "".join(data for _seq, data in chunks).encode()
    compressed = zstandard.ZstdCompressor().compress(text)
    await conn.execute(Q.logstore_store_folded, build_id, compressed, len(text))
    return len(text)


async def read_log(conn: asyncpg.Connection, build_id: int) -> str | None:
    """The whole log of a build: folded if finished, else the chunks so far.
    None when the build has written no log at all."""
    row = await conn.fetchrow(Q.logstore_compressed, build_id)
    if row is not None:
        return zstandard.ZstdDecompressor().decompress(
            row["compressed"], max_output_size=max(row["size"], 1)).decode(errors="replace")
    chunks = await chunks_after(conn, build_id)
    if not chunks:
        return None
    return "".join(data for _seq, data in chunks)
