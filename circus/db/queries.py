"""Named queries from `circus/sql/queries/*.sql`.

A file holds blocks that start with `-- name: some_name`; everything up to the next such
line is the statement. Names are unique across files so a caller needs only the name.
"""

from __future__ import annotations

import re
from pathlib import Path

from circus.app.paths import QUERIES_DIR

_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


class Queries(dict[str, str]):
    def __getattr__(self, name: str) -> str:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no query named {name!r} in circus/sql/queries") from None


def parse(text: str, origin: str) -> dict[str, str]:
    parts = _NAME.split(text)
    found: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        sql = body.strip()
        if not sql:
            raise ValueError(f"{origin}: query {name!r} is empty")
        found[name] = sql
    return found


def load(directory: Path = QUERIES_DIR) -> Queries:
    queries = Queries()
    for path in sorted(directory.glob("*.sql")):
        for name, sql in parse(path.read_text(), path.name).items():
            if name in queries:
                raise ValueError(f"{path.name}: query {name!r} is defined twice")
            queries[name] = sql
    return queries


Q = load()
