"""Remote builders as the API and `[declarative] remote_builders` take them: host keys
made by ssh-keygen (public halves only; their private keys were thrown away)."""

from __future__ import annotations

from typing import Any

ED25519 = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHLinPo9xorw3dO4Zk7HfmR5MRhUwK5TZ/dWhuSRUTKf")
ECDSA = ("ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBFAVM58P8s"
         "dsYNhQMt8ummmlXaiuiKHmSMmV6wEoE+f1peDh6G5529eduvRcbxoklYjuawRwxnAH4n4mWmnW8R0=")


def builder(name: str = "builder-1", **fields: Any) -> dict[str, Any]:
    """A valid builder body; `fields` override or add keys."""
    return {"name": name, "ssh_uri": f"ssh-ng://nix@{name}.example.org",
            "systems": ["x86_64-linux"], "public_host_key": ED25519, **fields}
