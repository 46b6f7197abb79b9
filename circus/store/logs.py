"""Where build logs live: `build_log_chunks` while a build runs, `build_logs` (zstd) after.

A log is addressed by byte offset, and the offsets are the same in both forms (the fold
concatenates the chunks' UTF-8 in seq order), so a reader goes on seamlessly when the
runner folds the chunks between two of its reads. No reader ever holds a whole log:
`LogReader` reads forward a page at a time (chunks by byte offset while the build runs;
the folded log through a streaming decompressor, fetching a slice of compressed bytes
at a time), and `extent` gives the size that tails and ranges are cut from. Followers
wake on `circus_build_log` (payload: the build id) and read on from their offset.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import attrs
import zstandard

from circus.db.queries import Q

# A folded log is a run of zstd frames of this many uncompressed bytes: a reader
# decompresses one frame at a time, so this (not the log's size) bounds its memory.
FRAME_BYTES = 1 << 20
# Compressed bytes fetched per query while reading a folded log.
SLICE_BYTES = 1 << 18
# Chunks fetched per query while folding.
FOLD_ROWS = 64


def clean(text: str) -> str:
    """PostgreSQL text cannot hold NUL; a builder may still print one."""
    return text.replace("\x00", "\ufffd")


async def append_chunk(conn: asyncpg.Connection, build_id: int, seq: int, data: str) -> None:
    """Store one chunk (whole lines, each ending in a newline) and notify circus_build_log."""
    await conn.execute(Q.logstore_append_chunk, build_id, seq, clean(data))


async def chunks_after(conn: asyncpg.Connection, build_id: int, after_seq: int = -1,
                       limit: int | None = None) -> list[tuple[int, str]]:
    """The chunks of a running build with seq > after_seq, in order (at most `limit`)."""
    rows = await conn.fetch(Q.logstore_chunks_after, build_id, after_seq, limit)
    return [(row["seq"], row["data"]) for row in rows]


@attrs.frozen
class Extent:
    size: int  # bytes
    folded: bool


async def state(conn: asyncpg.Connection, build_id: int) -> asyncpg.Record | None:
    """(state, buildstatus, folded) of the build; None when there is no such build. Read
    in one REPEATABLE READ transaction with the log itself: then it sees either the whole
    folded log or every chunk so far."""
    row: asyncpg.Record | None = await conn.fetchrow(Q.build_log_state, build_id)
    return row


async def extent(conn: asyncpg.Connection, build_id: int) -> Extent | None:
    """How long the log is and in which form; None when the build wrote no log."""
    row = await conn.fetchrow(Q.logstore_extent, build_id)
    return None if row is None else Extent(row["size"], row["folded"])


async def fold(conn: asyncpg.Connection, build_id: int) -> int | None:
    """Compress the chunks into build_logs and drop them; call inside the finishing
    transaction. Returns the log size in bytes, or None when there were no chunks.
    Reads the chunks a page at a time; only the compressed log is held whole."""
    compressor = zstandard.ZstdCompressor()
    frames: list[bytes] = []
    pending = bytearray()
    size, seq = 0, -1
    while chunks := await chunks_after(conn, build_id, seq, FOLD_ROWS):
        seq = chunks[-1][0]
        for _seq, data in chunks:
            raw = data.encode()
            size += len(raw)
            pending += raw
            while len(pending) >= FRAME_BYTES:
                frames.append(compressor.compress(bytes(pending[:FRAME_BYTES])))
                del pending[:FRAME_BYTES]
    if seq < 0:
        return None
    frames.append(compressor.compress(bytes(pending)))
    await conn.execute(Q.logstore_store_folded, build_id, b"".join(frames), size)
    return size


@attrs.define(eq=False)
class _Frames:
    """A folded log's bytes in order, decompressed one zstd frame at a time. (A log
    folded before frames were bounded is one frame, decompressed per slice fetched.)"""

    build_id: int
    _fetched: int = 0
    _input: bytes = b""
    _dobj: Any = None

    async def next(self, conn: asyncpg.Connection) -> bytes:
        """The next piece of the log; b"" at its end."""
        while True:
            if not self._input:
                self._input = await conn.fetchval(
                    Q.logstore_compressed_slice, self.build_id, self._fetched + 1,
                    SLICE_BYTES) or b""
                self._fetched += len(self._input)
                if not self._input:
                    return b""
            if self._dobj is None:
                self._dobj = zstandard.ZstdDecompressor().decompressobj()
            data, self._input = self._input, b""
            out: bytes = self._dobj.decompress(data)
            if self._dobj.eof:  # the next frame starts in what is left over
                self._input, self._dobj = self._dobj.unused_data, None
            if out:
                return out


async def _chunk_bytes(conn: asyncpg.Connection, build_id: int, pos: int, limit: int) -> bytes:
    rows = await conn.fetch(Q.logstore_chunks_from, build_id, pos, limit)
    if not rows:
        return b""
    skip = pos - rows[0]["start"]
    return b"".join(row["data"].encode() for row in rows)[skip:skip + limit]


@attrs.define(eq=False)
class LogReader:
    """Reads a build's log forward from byte `pos`, at most `limit` bytes per call, in
    whichever form the log has at that moment."""

    build_id: int
    pos: int = 0
    _frames: _Frames | None = None
    _held: bytes = b""  # decompressed bytes of the folded log from _held_at on
    _held_at: int = 0

    async def read(self, conn: asyncpg.Connection, limit: int,
                   folded: bool | None = None) -> bytes:
        """The next bytes (fewer than `limit` only at the end of what exists now)."""
        if folded is None:
            found = await extent(conn, self.build_id)
            folded = found is not None and found.folded
        if folded:
            data = await self._read_folded(conn, limit)
        else:
            data = await _chunk_bytes(conn, self.build_id, self.pos, limit)
        self.pos += len(data)
        return data

    def give_back(self, count: int) -> None:
        """Un-read the last `count` bytes read (a caller that cuts at a line's end)."""
        self.pos -= count

    async def _read_folded(self, conn: asyncpg.Connection, limit: int) -> bytes:
        if self._frames is None or self._held_at > self.pos:
            self._frames, self._held, self._held_at = _Frames(self.build_id), b"", 0
        while self._held_at + len(self._held) < self.pos + limit:
            piece = await self._frames.next(conn)
            if not piece:
                break
            if self._held_at + len(self._held) <= self.pos:  # all held lies before pos
                self._held_at += len(self._held)
                self._held = piece
            else:
                self._held += piece
        start = self.pos - self._held_at
        self._held, self._held_at = self._held[start:], self.pos
        return self._held[:limit]


async def read_log(conn: asyncpg.Connection, build_id: int) -> str | None:
    """The whole log as text, for tests and tools: the server pages with `LogReader`.
    None when the build has written no log at all."""
    found = await extent(conn, build_id)
    if found is None:
        return None
    reader, parts = LogReader(build_id), []
    while piece := await reader.read(conn, FRAME_BYTES, found.folded):
        parts.append(piece)
    return b"".join(parts).decode(errors="replace")
