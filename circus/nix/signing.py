"""ed25519 signatures in Nix's own key format: a key file holds `name:base64(key)`, where
a secret key is libsodium's 64 bytes (seed, then public key) as
`nix-store --generate-binary-cache-key` writes it, and a signature is
`name:base64(signature)` over a path's fingerprint."""

from __future__ import annotations

import base64
from pathlib import Path

import attrs
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


class BadKey(ValueError):
    """A key file that is not in Nix's `name:base64` format."""


def _split(text: str, what: str) -> tuple[str, bytes]:
    name, sep, b64 = text.strip().partition(":")
    if not sep or not name:
        raise BadKey(f"{what}: expected 'name:base64', got no name")
    try:
        return name, base64.b64decode(b64, validate=True)
    except ValueError:
        raise BadKey(f"{what}: the part after ':' is not base64") from None


@attrs.frozen
class SigningKey:
    name: str
    private: Ed25519PrivateKey

    @classmethod
    def parse(cls, text: str, origin: str = "secret key") -> SigningKey:
        name, raw = _split(text, origin)
        if len(raw) not in (32, 64):
            raise BadKey(f"{origin}: an ed25519 secret key has 64 bytes, got {len(raw)}")
        return cls(name, Ed25519PrivateKey.from_private_bytes(raw[:32]))

    @classmethod
    def load(cls, path: str | Path) -> SigningKey:
        return cls.parse(Path(path).read_text(), str(path))

    def sign(self, fingerprint: str) -> str:
        raw = self.private.sign(fingerprint.encode())
        return f"{self.name}:{base64.b64encode(raw).decode()}"

    def public_key(self) -> str:
        """The `trusted-public-keys` entry for this key."""
        raw = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return f"{self.name}:{base64.b64encode(raw).decode()}"


def verify(public_key: str, fingerprint: str, signature: str) -> bool:
    """Whether `signature` (name:base64) over `fingerprint` is by `public_key`."""
    key_name, key_raw = _split(public_key, "public key")
    sig_name, sig_raw = _split(signature, "signature")
    if key_name != sig_name:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(key_raw).verify(sig_raw, fingerprint.encode())
    except Exception:
        return False
    return True
