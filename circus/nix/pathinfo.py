"""What Nix knows about a store path (`nix path-info --json`), in the forms a narinfo
and Nix's signature fingerprint need: hashes as `sha256:<nix32>`, references as full
store paths."""

from __future__ import annotations

import base64
import re
from typing import Any

import attrs

STORE_DIR = "/nix/store"
NIX32 = "0123456789abcdfghijklmnpqrsvwxyz"
# The hash part of a store path: 32 nix32 characters (e, o, u, t are not in the alphabet).
HASH_PART = re.compile(r"^[0-9a-df-np-sv-z]{32}$")


def nix32(data: bytes) -> str:
    """Nix's base-32 (src/libutil/hash.cc printHash32): least significant bits first."""
    length = (len(data) * 8 - 1) // 5 + 1
    out = []
    for n in range(length - 1, -1, -1):
        bit = n * 5
        i, j = divmod(bit, 8)
        c = data[i] >> j
        if i + 1 < len(data):
            c |= data[i + 1] << (8 - j)
        out.append(NIX32[c & 0x1F])
    return "".join(out)


def sha256_nix32(text: str) -> str:
    """`sha256-<base64>` (SRI), `sha256:<base16>` or `sha256:<nix32>` → `sha256:<nix32>`."""
    if text.startswith("sha256-"):
        return "sha256:" + nix32(base64.b64decode(text[7:]))
    algo, _, digest = text.partition(":")
    if algo != "sha256":
        raise ValueError(f"not a sha256 hash: {text!r}")
    if len(digest) == 64:
        return "sha256:" + nix32(bytes.fromhex(digest))
    if len(digest) == 52:
        return text
    raise ValueError(f"cannot read hash {text!r}")


def hash_part(store_path: str) -> str:
    return store_path.removeprefix(STORE_DIR + "/")[:32]


@attrs.frozen
class PathInfo:
    path: str
    nar_hash: str  # sha256:<nix32>
    nar_size: int
    references: tuple[str, ...]
    deriver: str | None = None

    @property
    def hash_part(self) -> str:
        return hash_part(self.path)

    def fingerprint(self) -> str:
        """What Nix signs (ValidPathInfo::fingerprint): references are full paths."""
        return (f"1;{self.path};{self.nar_hash};{self.nar_size};"
                f"{','.join(sorted(self.references))}")

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> PathInfo:
        return cls(path=entry["path"], nar_hash=sha256_nix32(entry["narHash"]),
                   nar_size=int(entry["narSize"]),
                   references=tuple(sorted(entry.get("references") or ())),
                   deriver=entry.get("deriver") or None)
