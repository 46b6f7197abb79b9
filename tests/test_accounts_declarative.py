"""`[declarative] users` applied at start: created, idempotent, re-hashed only on change."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from circus.app.config import Config, ConfigError, structure
from circus.services import declarative, passwords


def _users(*users: dict[str, Any]) -> dict[str, Any]:
    return {"declarative": {"users": list(users)}}


async def _rows(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    return [dict(r) for r in await pool.fetch(
        "SELECT username, email, role, enabled, declarative, password_hash, updated_at "
        "FROM users ORDER BY username")]


async def test_declared_users_are_applied_idempotently(
        make_config: Callable[..., Config], pool: asyncpg.Pool, tmp_path: Path) -> None:
    secret_file = tmp_path / "ops-password"
    secret_file.write_text("from a file, with newline\n")
    config = make_config(_users(
        {"username": "admin", "email": "admin@example.com", "password": "admin password",
         "role": "admin"},
        {"username": "ops", "password_file": str(secret_file), "role": "restart-jobs",
         "enabled": False},
    ))
    await declarative.apply(pool, config.declarative)
    first = await _rows(pool)
    assert [(r["username"], r["role"], r["enabled"], r["declarative"]) for r in first] == [
        ("admin", "admin", True, True), ("ops", "restart-jobs", False, True)]
    assert passwords.verify(first[0]["password_hash"], "admin password")
    assert passwords.verify(first[1]["password_hash"], "from a file, with newline")

    # The same file again changes nothing: not the hash (argon2 salts each one), not
    # updated_at.
    await declarative.apply(pool, config.declarative)
    assert await _rows(pool) == first

    # A new password is hashed anew; the other user stays as it was.
    config = make_config(_users(
        {"username": "admin", "email": "admin@example.com", "password": "changed password",
         "role": "admin"},
        {"username": "ops", "password_file": str(secret_file), "role": "restart-jobs",
         "enabled": False},
    ))
    await declarative.apply(pool, config.declarative)
    second = await _rows(pool)
    assert passwords.verify(second[0]["password_hash"], "changed password")
    assert second[0]["updated_at"] > first[0]["updated_at"]
    assert second[1] == first[1]


async def test_undeclared_users_go_and_api_users_stay(
        make_config: Callable[..., Config], pool: asyncpg.Pool) -> None:
    await pool.execute("INSERT INTO users (username, role) VALUES ('made-by-api', 'admin')")
    await declarative.apply(pool, make_config(_users(
        {"username": "temp", "password": "temporary", "role": "read-only"})).declarative)
    assert [r["username"] for r in await _rows(pool)] == ["made-by-api", "temp"]
    await declarative.apply(pool, make_config().declarative)
    assert [r["username"] for r in await _rows(pool)] == ["made-by-api"]


@pytest.mark.parametrize(("user", "message"), [
    ({"username": "x", "role": "admin"}, "exactly one of password or password_file"),
    ({"username": "x", "role": "admin", "password": "a", "password_file": "/f"},
     "exactly one of password or password_file"),
    ({"username": "x", "role": "root", "password": "a"}, "declarative.users[0].role"),
    ({"username": "x", "role": "admin", "password": "a", "shell": "/bin/sh"},
     "declarative.users[0].shell: unknown key"),
])
def test_declared_users_are_validated(user: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        structure(_users(user))


def test_config_show_redacts_declared_passwords() -> None:
    from circus.app.config import to_toml

    shown = to_toml(structure(_users({"username": "a", "role": "admin",
                                      "password": "hunter2hunter2"})))
    assert "hunter2hunter2" not in shown and "(set)" in shown
