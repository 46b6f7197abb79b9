"""Secrets Circus must read back (webhook secrets, per-project forge tokens) are stored
encrypted: a Fernet token (AES-128-CBC with HMAC-SHA256, from `cryptography`) under a
key kept in a file, `webhooks.secret_key_file`, never in the database. A dump of the
database alone reveals none of them; the key file and the dump together do.

With no file configured the key is `$state_dir/secret.key`, created on first use with
mode 0600. Every host that sends notifications or receives webhooks needs the same file.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from circus.app.config import Config
from circus.domain.errors import CircusError

DEFAULT_KEY_FILE = "secret.key"


class SecretUnreadable(CircusError):
    """A stored secret that this host's key does not open (another key file)."""


def key_path(config: Config) -> Path:
    configured = config.webhooks.secret_key_file
    return Path(configured) if configured else Path(config.state_dir) / DEFAULT_KEY_FILE


@lru_cache(maxsize=8)
def _fernet(path: Path) -> Fernet:
    try:
        key = path.read_bytes().strip()
    except FileNotFoundError:
        key = _create(path)
    return Fernet(key)


def _create(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as out:
        out.write(key + b"\n")
    return key


def seal(config: Config, plain: str) -> bytes:
    return _fernet(key_path(config)).encrypt(plain.encode())


def unseal(config: Config, token: bytes) -> str:
    try:
        return _fernet(key_path(config)).decrypt(bytes(token)).decode()
    except InvalidToken:
        raise SecretUnreadable(
            f"a stored secret cannot be decrypted with {key_path(config)}: this host's "
            "webhooks.secret_key_file is not the one it was stored with") from None
