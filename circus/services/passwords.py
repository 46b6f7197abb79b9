"""Passwords as argon2id hashes (argon2-cffi's defaults, RFC 9106's low-memory profile).

Hashing and verifying take tens of milliseconds of CPU on purpose, so the async helpers
run them in a thread and the event loop keeps serving.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()
# Verified against when the user does not exist, so that an unknown username costs the
# same time as a wrong password and does not reveal which usernames exist.
_DUMMY = _hasher.hash("circus: no such user")

MIN_LENGTH = 8
MAX_LENGTH = 1024


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; a missing or malformed hash matches nothing."""
    try:
        return _hasher.verify(password_hash or _DUMMY, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def problem(password: str) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters"
    return None


async def hash_async(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)


async def verify_async(password_hash: str | None, password: str) -> bool:
    return await asyncio.to_thread(verify, password_hash, password)
