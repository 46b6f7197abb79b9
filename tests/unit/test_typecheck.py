"""The code is typed and linted: mypy (strict, configured in pyproject.toml) and ruff
on the whole tree report nothing. A finding is printed whole in the assertion."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def test_mypy_strict_on_circus_finds_nothing() -> None:
    done = _run("mypy", "--no-incremental")
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_finds_nothing() -> None:
    done = _run("ruff", "check", "circus", "tests", "bench")
    assert done.returncode == 0, done.stdout + done.stderr
