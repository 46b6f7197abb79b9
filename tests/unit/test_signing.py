"""circus.nix.signing: Nix's `name:base64` keys and signatures. Keys come from Nix itself
(`nix key generate-secret`), so a key Nix writes is one Circus reads, and the public key
Circus derives is the one Nix derives."""

from __future__ import annotations

import base64
import functools
import re
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from circus.nix.signing import BadKey, SigningKey, verify

FINGERPRINT = ("1;/nix/store/ab9zv2y5gm8hr6g318p0s6kaclwj4slr-hello-2.10;"
               "sha256:0a4lvq8z95k9ccl1clmhxmpb8whsgmq2clkpjdmkaxmvaaarabq0;206936;"
               "/nix/store/9df65igwjmf2wbw0gbrrgair6piqjgmi-glibc-2.31")


def _nix_key(*args: str, stdin: str = "") -> str:
    return subprocess.run(["nix", "key", *args], input=stdin, check=True,
                          capture_output=True, text=True, timeout=60).stdout.strip()


@functools.cache
def _nix_pair(name: str) -> tuple[str, str]:
    """(secret, public) as Nix writes them; cached: one key per name is enough."""
    secret = _nix_key("generate-secret", "--key-name", name)
    return secret, _nix_key("convert-secret-to-public", stdin=secret)


def test_a_nix_secret_key_gives_nixs_public_key() -> None:
    secret, public = _nix_pair("cache.example.org-1")
    key = SigningKey.parse(secret)
    assert key.name == "cache.example.org-1"
    assert key.public_key() == public


def test_a_signature_verifies_with_the_public_key_and_nothing_else() -> None:
    secret, public = _nix_pair("cache-1")
    signature = SigningKey.parse(secret).sign(FINGERPRINT)
    assert signature.startswith("cache-1:")
    assert verify(public, FINGERPRINT, signature)
    assert not verify(public, FINGERPRINT + "x", signature)  # another path's fingerprint
    assert not verify(_nix_pair("cache-2")[1], FINGERPRINT, signature)  # another key
    # Same key bytes under another name: Nix matches signatures to keys by name.
    renamed = "other:" + public.partition(":")[2]
    assert not verify(renamed, FINGERPRINT, signature)


def test_the_signature_is_plain_ed25519_over_the_fingerprint() -> None:
    # What Nix checks: the raw 64-byte signature of the fingerprint's bytes.
    secret, public = _nix_pair("cache-1")
    raw = base64.b64decode(SigningKey.parse(secret).sign(FINGERPRINT).partition(":")[2])
    assert len(raw) == 64
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public.partition(":")[2]))
    key.verify(raw, FINGERPRINT.encode())  # raises InvalidSignature if not


def test_a_tampered_signature_does_not_verify() -> None:
    secret, public = _nix_pair("cache-1")
    name, _, b64 = SigningKey.parse(secret).sign(FINGERPRINT).partition(":")
    raw = bytearray(base64.b64decode(b64))
    raw[0] ^= 1
    assert not verify(public, FINGERPRINT, f"{name}:{base64.b64encode(raw).decode()}")


def test_the_32_byte_seed_alone_is_the_same_key() -> None:
    secret, public = _nix_pair("cache-1")
    name, _, b64 = secret.partition(":")
    seed = base64.b64encode(base64.b64decode(b64)[:32]).decode()
    assert SigningKey.parse(f"{name}:{seed}").public_key() == public


def test_a_key_file_with_a_trailing_newline_loads(tmp_path: Path) -> None:
    secret, public = _nix_pair("cache-1")
    path = tmp_path / "secret.key"
    path.write_text(secret + "\n")
    assert SigningKey.load(path).public_key() == public


@pytest.mark.parametrize(("text", "message"), [
    ("no-colon-at-all", "secret key: expected 'name:base64', got no name"),
    (":" + base64.b64encode(bytes(64)).decode(), "secret key: expected 'name:base64'"),
    ("name:not base64!", "secret key: the part after ':' is not base64"),
    ("name:" + base64.b64encode(bytes(16)).decode(),
     "secret key: an ed25519 secret key has 64 bytes, got 16"),
    ("name:", "secret key: an ed25519 secret key has 64 bytes, got 0"),
])
def test_a_malformed_secret_key_is_refused_saying_why(text: str, message: str) -> None:
    with pytest.raises(BadKey, match=f"^{re.escape(message)}"):
        SigningKey.parse(text)


def test_a_bad_key_file_is_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.key"
    path.write_text("garbage")
    with pytest.raises(BadKey, match=f"^{re.escape(str(path))}: expected 'name:base64'"):
        SigningKey.load(path)


def test_bad_key_is_a_value_error() -> None:
    # Callers that validate configuration catch ValueError.
    assert issubclass(BadKey, ValueError)


def test_a_malformed_public_key_or_signature_is_refused_saying_which() -> None:
    secret, public = _nix_pair("cache-1")
    signature = SigningKey.parse(secret).sign(FINGERPRINT)
    with pytest.raises(BadKey, match=r"^public key: expected 'name:base64'"):
        verify("nocolon", FINGERPRINT, signature)
    with pytest.raises(BadKey, match=r"^signature: the part after ':' is not base64"):
        verify(public, FINGERPRINT, "cache-1:%%%")
