"""circus.nix.nar streams `nix-store --dump` through a thread and a compressor: what
comes out must be the very bytes Nix dumps (once decompressed), whatever the tree and
however many chunks it takes. The module has no serialiser or hasher of its own, so Nix
itself is the reference. Trees are built in tmp_path; no store is needed."""

from __future__ import annotations

import bz2
import lzma
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import brotli
import pytest
import zstandard

from circus.nix import nar
from circus.proc import child
from circus.proc import nix as nix_proc

DECOMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "none": lambda data: data,
    "zstd": lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data),
    "xz": lzma.decompress,
    "bzip2": bz2.decompress,
    "br": brotli.decompress,
}


def _nix_dump(path: Path) -> bytes:
    return subprocess.run(["nix-store", "--dump", str(path)], check=True,
                          capture_output=True, timeout=60).stdout


async def _streamed(path: Path, compression: str = "none") -> bytes:
    # bytes(): the uncompressed stream hands on memoryviews of its buffers.
    return b"".join([bytes(chunk) async for chunk in nar.stream(str(path), compression)])


def _tree(root: Path) -> Path:
    """Every kind of entry a NAR holds, with names whose byte order matters."""
    root.mkdir()
    (root / "regular").write_text("hello\n")
    (root / "empty").write_bytes(b"")
    tool = root / "tool"
    tool.write_text("#!/bin/sh\necho hi\n")
    tool.chmod(0o755)
    (root / "link").symlink_to("regular")
    (root / "dangling").symlink_to("/nowhere/at/all")
    nested = root / "a" / "b" / "c"
    nested.mkdir(parents=True)
    (nested / "deep").write_bytes(bytes(range(256)))
    (root / "a" / "emptydir").mkdir()
    # Nix sorts by bytes: "B" < "a" < "a-b" < "a.b" < "ab"; an odd length pads.
    for name in ("B", "a-b", "a.b", "ab", "z" * 9):
        (root / name).write_text(name)
    return root


async def test_a_regular_file_is_dumped_as_nix_dumps_it(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("some text of odd length")
    assert await _streamed(path) == _nix_dump(path)


async def test_an_executable_file_keeps_its_executable_flag(tmp_path: Path) -> None:
    path = tmp_path / "exe"
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    dumped = await _streamed(path)
    assert dumped == _nix_dump(path)
    assert b"executable" in dumped  # the flag Nix writes, so the check above sees it


async def test_an_empty_file_and_a_symlink_alone(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    link = tmp_path / "link"
    link.symlink_to("/some/target")
    assert await _streamed(empty) == _nix_dump(empty)
    dumped = await _streamed(link)
    assert dumped == _nix_dump(link)
    assert b"/some/target" in dumped  # the link itself, not what it points to


async def test_a_tree_of_every_kind_is_dumped_byte_for_byte(tmp_path: Path) -> None:
    root = _tree(tmp_path / "tree")
    assert await _streamed(root) == _nix_dump(root)


async def test_a_path_bigger_than_a_chunk_arrives_whole_and_in_order(tmp_path: Path) -> None:
    # Several chunks, the last one partial: a lost, repeated or reordered chunk shows.
    path = tmp_path / "big"
    block = bytes(range(251)) * 4096  # not a divisor of CHUNK, so chunks differ
    path.write_bytes(block * 3)
    chunks = [bytes(c) async for c in nar.stream(str(path), "none")]
    assert len(chunks) > 1
    assert all(len(c) <= nar.CHUNK for c in chunks)
    assert b"".join(chunks) == _nix_dump(path)


@pytest.mark.parametrize("compression", sorted(nar.COMPRESSORS))
async def test_every_compression_decompresses_to_the_dump(tmp_path: Path,
                                                          compression: str) -> None:
    root = _tree(tmp_path / "tree")
    (root / "big").write_bytes(os.urandom(nar.CHUNK + 12345))
    assert set(DECOMPRESS) == set(nar.COMPRESSORS)  # a new format gets a check here
    data = await _streamed(root, compression)
    assert DECOMPRESS[compression](data) == _nix_dump(root)


async def test_a_missing_path_raises_child_error_naming_the_command(tmp_path: Path) -> None:
    with pytest.raises(child.ChildError, match=r"^nix-store --dump exited with status 1"):
        await _streamed(tmp_path / "missing")


async def test_closing_the_stream_early_kills_nix_store(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # A client that goes away must not leave nix-store running (or blocked on the pipe).
    spawned = []
    real_dump = nix_proc.dump

    def dump(store_path: str) -> subprocess.Popen[bytes]:
        proc = real_dump(store_path)
        spawned.append(proc)
        return proc

    monkeypatch.setattr(nix_proc, "dump", dump)  # the module nar calls through
    path = tmp_path / "huge"
    with path.open("wb") as f:
        f.truncate(64 * nar.CHUNK)  # sparse: many chunks, more than DEPTH plus the pipe
    stream = nar.stream(str(path), "none")
    first = await anext(stream)
    assert len(first) == nar.CHUNK
    await stream.aclose()
    assert spawned[0].returncode == -9  # SIGKILLed, and already reaped
