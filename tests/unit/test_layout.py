"""The layout holds: named queries are all defined and all used, no role imports another,
no module shadows one of Python's own, each front end of the server has its folder, and the
tests share code only through tests/helpers/ and fixtures only through tests/conftest.py.
Pure reads of the source tree; no database."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

from circus.db import queries
from tests.helpers.suite import ROOT

PACKAGE = ROOT / "circus"
ROLES = ("circus.evaluator", "circus.runner", "circus.server")
FRONT_ENDS = ("http", "api", "accounts", "hydra", "dashboard", "cache")


def _sources() -> dict[str, str]:
    """Each module of the package by dotted name."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path.read_text()
    return found


def _imports(text: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _query_uses(text: str) -> tuple[set[str], set[str]]:
    """(names read as `Q.name`, prefixes of names built as `Q[f"prefix_{...}"]`)."""
    direct = set(re.findall(r"\bQ\.([a-z_][a-z0-9_]*)", text))
    prefixes = set(re.findall(r"\bQ\[f[\"']([a-z_0-9]+)\{", text))
    return direct, prefixes


def test_every_query_read_in_code_is_defined() -> None:
    defined = set(queries.load())
    missing = {}
    for path in [*PACKAGE.rglob("*.py"), *(ROOT / "tests").rglob("*.py"),
                 *(ROOT / "bench").glob("*.py")]:
        if path.name == Path(__file__).name:
            continue
        direct, _ = _query_uses(path.read_text())
        for name in direct - defined - {"values", "items", "keys", "get"}:
            missing.setdefault(name, []).append(str(path.relative_to(ROOT)))
    assert missing == {}


def test_every_defined_query_is_used_by_circus() -> None:
    """A query only a test or a benchmark reads is still dead in the product; the code's
    own use is what counts (a name passed as a string to a helper counts too)."""
    code = "\n".join(_sources().values())
    direct, prefixes = _query_uses(code)
    strings = set(re.findall(r"[\"']([a-z_][a-z0-9_]*)[\"']", code))
    unused = sorted(name for name in queries.load()
                    if name not in direct and name not in strings
                    and not any(name.startswith(prefix) for prefix in prefixes))
    assert unused == []


def test_no_role_imports_another() -> None:
    offenders = []
    for module, text in _sources().items():
        own = next((role for role in ROLES if module.startswith(role)), None)
        for imported in _imports(text):
            other = next((role for role in ROLES if imported.startswith(role + ".")
                          or imported == role), None)
            if own and other and other != own:
                offenders.append(f"{module} imports {imported}")
    assert offenders == []


def test_no_module_shares_a_name_with_a_standard_module() -> None:
    shadowing = sorted(str(path.relative_to(ROOT)) for path in PACKAGE.rglob("*.py")
                       if path.stem in sys.stdlib_module_names)
    assert shadowing == []


def test_the_server_is_one_folder_per_front_end() -> None:
    server = PACKAGE / "server"
    loose = sorted(p.name for p in server.glob("*.py") if p.name != "__init__.py")
    folders = {p.name for p in server.iterdir() if (p / "__init__.py").exists()}
    assert loose == []
    assert set(FRONT_ENDS) <= folders


def test_only_the_data_layer_runs_named_queries() -> None:
    """Front ends, services and roles call `circus.store`; none reads `Q` itself."""
    outside = sorted(module for module, text in _sources().items()
                     if not module.startswith("circus.store.")
                     and module != "circus.db.queries" and any(_query_uses(text)))
    assert outside == []


def test_the_data_layer_imports_no_role_and_no_service() -> None:
    offenders = sorted(f"{module} imports {imported}"
                       for module, text in _sources().items()
                       if module.startswith("circus.store.")
                       for imported in _imports(text)
                       if imported.startswith((*ROLES, "circus.services")))
    assert offenders == []


def test_tests_share_helpers_from_one_place() -> None:
    """No test module imports another or conftest, none loads fixtures through
    `pytest_plugins`, and tests/helpers/ holds plain code, no fixture."""
    offenders = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        text, where = path.read_text(), str(path.relative_to(ROOT))
        for imported in _imports(text):
            if imported.startswith("tests.test_") or "conftest" in imported:
                offenders.append(f"{where} imports {imported}")
        if re.search(r"^pytest_plugins\s*=", text, re.M):
            offenders.append(f"{where} sets pytest_plugins")
        if path.parent.name == "helpers" and "pytest.fixture" in text:
            offenders.append(f"{where} defines a fixture")
    assert offenders == []
