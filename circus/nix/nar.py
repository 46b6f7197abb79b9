"""NARs streamed as they are produced: `nix-store --dump <path>` read by a thread that
compresses what it reads and hands bounded chunks to the event loop.

Memory is constant whatever the size of the path (at most `DEPTH` chunks in flight,
plus the compressor's window); nothing is written to disk. The thread keeps the event
loop free while the compressors (which release the GIL) work in parallel with the
socket writes.
"""

from __future__ import annotations

import asyncio
import bz2
import contextlib
import fcntl
import lzma
import threading
from collections.abc import AsyncGenerator, Callable
from typing import Protocol

import brotli
import structlog
import zstandard

from circus.proc import child, nix

log = structlog.get_logger(__name__)

CHUNK = 1 << 20
DEPTH = 4
# Linux: a bigger pipe lets one read return a whole chunk instead of 64 KiB.
F_SETPIPE_SZ = 1031


class Compressor(Protocol):
    def compress(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


class _Identity:
    def compress(self, data: bytes) -> bytes:
        return data  # a memoryview of the chunk: sent as it is

    def flush(self) -> bytes:
        return b""


class _Zstd:
    def __init__(self) -> None:
        # Level 1, one thread: fast enough to serve while streaming (zstd's worker
        # threads were slower here and hold tens of MiB). The chunker, unlike
        # compressobj, hands output on as it goes instead of holding it until the end.
        self._obj = zstandard.ZstdCompressor(level=1).chunker(chunk_size=1 << 20)

    def compress(self, data: bytes) -> bytes:
        return b"".join(self._obj.compress(data))

    def flush(self) -> bytes:
        return b"".join(self._obj.finish())  # type: ignore[no-untyped-call]


class _Brotli:
    def __init__(self) -> None:
        self._obj = brotli.Compressor(quality=1)

    def compress(self, data: bytes) -> bytes:
        return bytes(self._obj.process(data))

    def flush(self) -> bytes:
        return bytes(self._obj.finish())


# Low presets: these run while the client waits, not once ahead of time.
COMPRESSORS: dict[str, Callable[[], Compressor]] = {
    "none": _Identity,
    "zstd": _Zstd,
    "xz": lambda: lzma.LZMACompressor(preset=1),
    "bzip2": lambda: bz2.BZ2Compressor(9),
    "br": _Brotli,
}


def _bigger_pipe(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, F_SETPIPE_SZ, CHUNK)


class _Producer:
    """The thread side: read, compress, and hand over at most DEPTH chunks at a time."""

    def __init__(self, store_path: str, compression: str,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
        self.slots = threading.Semaphore(DEPTH)
        self.stopped = threading.Event()
        self.compressor = COMPRESSORS[compression]()
        self.proc = nix.dump(store_path)
        _bigger_pipe(self.proc.stdout.fileno())  # type: ignore[union-attr]
        self.thread = threading.Thread(target=self._run, name="nar-dump", daemon=True)

    def _hand(self, item: bytes | BaseException | None) -> None:
        self.slots.acquire()
        if not self.stopped.is_set():
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def _run(self) -> None:
        stdout = self.proc.stdout
        try:
            while not self.stopped.is_set():
                # A fresh buffer per chunk, handed on without another copy.
                buf = bytearray(CHUNK)
                view = memoryview(buf)
                filled = 0
                while filled < CHUNK:
                    n = stdout.readinto(view[filled:])  # type: ignore[union-attr]
                    if not n:
                        break
                    filled += n
                if filled == 0:
                    break
                out = self.compressor.compress(view[:filled])  # type: ignore[arg-type]
                if out:
                    self._hand(out)
                if filled < CHUNK:
                    break
            if self.stopped.is_set():
                return
            tail = self.compressor.flush()
            if tail:
                self._hand(tail)
            code = self.proc.wait()
            if code != 0:
                err = self.proc.stderr.read().decode(errors="replace")  # type: ignore[union-attr]
                self._hand(child.ChildError("nix-store --dump", code, err))
            else:
                self._hand(None)
        except Exception as exc:  # the reader must hear of it rather than wait forever
            self._hand(exc)

    def stop(self) -> None:
        self.stopped.set()
        if self.proc.poll() is None:
            child.kill_now(self.proc)
        # Unblock a thread waiting for a slot; it sees `stopped` and ends.
        for _ in range(DEPTH):
            self.slots.release()

    def reap(self) -> None:
        self.thread.join()
        self.proc.wait()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


async def stream(store_path: str, compression: str) -> AsyncGenerator[bytes, None]:
    """The NAR of `store_path`, compressed, chunk by chunk; raises ChildError when Nix
    fails. Closing the iterator early (client gone) stops `nix-store` at once."""
    producer = _Producer(store_path, compression, asyncio.get_running_loop())
    producer.thread.start()
    try:
        while True:
            item = await producer.queue.get()
            producer.slots.release()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        producer.stop()
        await asyncio.to_thread(producer.reap)
