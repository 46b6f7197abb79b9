"""The `circus` command line: roles, and errors as one line with exit status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from circus.app import supervisor


def test_roles_are_parsed_and_deduplicated() -> None:
    assert supervisor.parse_roles("runner, server,runner") == ["runner", "server"]
    with pytest.raises(ValueError, match="unknown role web"):
        supervisor.parse_roles("server,web")


def test_unknown_role_is_a_one_line_error(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "circus.cli", "run", "--roles=server,web"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "circus: --roles: unknown role web; choose from server, evaluator, runner")


def test_migrate_create_writes_the_next_numbered_file(tmp_path: Path) -> None:
    from circus.db import migrations

    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "0001_initial.sql").write_text("SELECT 1;\n")
    path = migrations.create("add_things", folder)
    assert path.name == "0002_add_things.sql" and path.exists()
    with pytest.raises(migrations.MigrationError, match="lower-case"):
        migrations.create("Bad Name", folder)
