"""Where the files that ship beside the package live (SQL, templates, static files).

In a checkout or an editable install they sit beside `circus/`; an installed copy can
point elsewhere with CIRCUS_DATA_DIR (the container and the NixOS module do).
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR = Path(os.environ.get("CIRCUS_DATA_DIR") or Path(__file__).resolve().parent.parent)
SQL_DIR = DATA_DIR / "sql"
MIGRATIONS_DIR = SQL_DIR / "migrations"
QUERIES_DIR = SQL_DIR / "queries"
WEB_DIR = DATA_DIR / "web"
NIX_DIR = Path(__file__).resolve().parent / "nix"
