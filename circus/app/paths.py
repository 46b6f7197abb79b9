"""Where the files that ship inside the package live (SQL, templates, static files).

They are package data, read through `importlib.resources`, so a plain `pip install` of
the wheel is complete. Circus needs them as real directories (aiohttp serves static
files from one, migrations are listed), so a zipped install is refused here, at import.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def _directory(*parts: str) -> Path:
    resource = files("circus").joinpath(*parts)
    path = Path(str(resource))
    if not path.is_dir():
        raise RuntimeError(
            f"circus is installed without its {'/'.join(parts)} directory ({path}); "
            "reinstall the package from a wheel or a checkout")
    return path


SQL_DIR = _directory("sql")
MIGRATIONS_DIR = SQL_DIR / "migrations"
QUERIES_DIR = SQL_DIR / "queries"
TEMPLATES_DIR = _directory("server", "dashboard", "templates")
STATIC_DIR = _directory("server", "dashboard", "static")
NIX_DIR = _directory("nix")
