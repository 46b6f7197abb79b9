"""API keys are stored as the hex SHA-256 of the raw key (as the seed's psql recipe)."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "circus_"


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_hex(16)
