"""The `.narinfo` text Nix reads from a binary cache (src/libstore/nar-info.cc)."""

from __future__ import annotations

from circus.nix.pathinfo import PathInfo

# cache.compression → (narinfo `Compression:`, file extension of the NAR URL).
FORMATS: dict[str, tuple[str, str]] = {
    "none": ("none", ".nar"),
    "zstd": ("zstd", ".nar.zst"),
    "xz": ("xz", ".nar.xz"),
    "bzip2": ("bzip2", ".nar.bz2"),
    "br": ("br", ".nar.br"),
}
EXTENSIONS = {ext: name for name, (_, ext) in FORMATS.items()}


def nar_url(info: PathInfo, compression: str) -> str:
    """Relative to the cache root; named by the path's hash, since the file hash of a
    NAR compressed while it streams is not known in advance."""
    return f"nar/{info.hash_part}{FORMATS[compression][1]}"


def render(info: PathInfo, compression: str, signatures: list[str]) -> str:
    lines = [
        f"StorePath: {info.path}",
        f"URL: {nar_url(info, compression)}",
        # Always stated: a narinfo without it means bzip2 to Nix.
        f"Compression: {FORMATS[compression][0]}",
    ]
    if compression == "none":
        # The file is the NAR itself, so its hash and size are known.
        lines += [f"FileHash: {info.nar_hash}", f"FileSize: {info.nar_size}"]
    lines += [
        f"NarHash: {info.nar_hash}",
        f"NarSize: {info.nar_size}",
        "References: " + " ".join(r.rsplit("/", 1)[-1] for r in info.references),
    ]
    if info.deriver:
        lines.append(f"Deriver: {info.deriver.rsplit('/', 1)[-1]}")
    lines += [f"Sig: {sig}" for sig in signatures]
    return "\n".join(lines) + "\n"


def cache_info(priority: int = 30) -> str:
    return f"StoreDir: /nix/store\nWantMassQuery: 1\nPriority: {priority}\n"
