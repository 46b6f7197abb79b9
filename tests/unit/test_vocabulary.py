"""The vocabulary is defined once, in circus/domain/, and the rest of the tree keeps to it:
every bus channel notified in SQL or Python is listed, every listed one has a writer and a
listener; the build status is Hydra's codes, as Hydra's API documents them, and no other
module defines a status code as a bare number. Pure reads of the source tree; no database."""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Iterator
from pathlib import Path

from circus.domain import bus, status
from circus.domain.status import BuildStatus
from tests.helpers.suite import ROOT, SHARED

PACKAGE = ROOT / "circus"
DOMAIN_BUS = PACKAGE / "domain" / "bus.py"
DOMAIN_STATUS = PACKAGE / "domain" / "status.py"
HYDRA_SPEC = SHARED / "specs" / "hydra-api.yaml"

KNOWN = set(bus.CHANNELS) | set(bus.SIGNALS)
# The domain's names, e.g. BUILD_LOG → "circus_build_log", as code refers to them.
CONSTANTS = {name: value for name, value in vars(bus).items()
             if name.isupper() and isinstance(value, str)}
# The calls whose arguments are channels (for `add_listener` only the first).
LISTENING = {"subscribe", "listening", "add_listener", "remove_listener"}

_PG_NOTIFY = re.compile(r"pg_notify\(\s*'([^']*)'", re.IGNORECASE)
_NOTIFY = re.compile(r"\bNOTIFY\s+([A-Za-z_]\w*)", re.IGNORECASE)
_LISTEN = re.compile(r"\bLISTEN\s+([A-Za-z_]\w*)", re.IGNORECASE)


# -- reading the tree --------------------------------------------------------------------

def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _sql() -> Iterator[tuple[Path, str]]:
    """Each SQL file without its `--` comments (which say things like "NOTIFY wakes")."""
    for path in sorted((PACKAGE / "sql").rglob("*.sql")):
        yield path, "\n".join(line.split("--", 1)[0] for line in path.read_text().splitlines())


def _modules() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text(), str(path))


def _sql_notified() -> dict[str, list[str]]:
    """Channel → where SQL notifies it (`pg_notify('name', ...)`, `NOTIFY name`)."""
    found: dict[str, list[str]] = {}
    for path, code in _sql():
        for pattern in (_PG_NOTIFY, _NOTIFY):
            for match in pattern.finditer(code):
                line = code.count("\n", 0, match.start()) + 1
                found.setdefault(match.group(1), []).append(f"{_rel(path)}:{line}")
    return found


def _named(node: ast.expr, strict: bool) -> str | None:
    """The channel a node denotes: a string, or a name of the domain's (`bus.BUILD_LOG`,
    `EVAL_CHANGED`). None for a variable. Where only channels can appear (`strict`) an
    unknown upper-case name is returned as `?NAME`, so it fails the check; elsewhere only
    strings that look like Circus's (`circus_...`) and the domain's names count."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value if strict or node.value.startswith("circus_") else None
    ident = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
    if not isinstance(ident, str) or not ident.isupper():
        return None
    if ident in CONSTANTS:
        return CONSTANTS[ident]
    return f"?{ident}" if strict else None


def _python_uses() -> list[tuple[str, str, str]]:
    """(kind, channel, where) for every channel Python names outside domain/bus.py:
    `listen` (subscribed), `notify` (passed with a `Q.*notify*` query, or in SQL text),
    `signal` (put into a subscriber's queue), `compare` (tested against a notification)."""
    uses: list[tuple[str, str, str]] = []
    for path, tree in _modules():
        if path == DOMAIN_BUS:
            continue
        for node in ast.walk(tree):
            where = f"{_rel(path)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                args = node.args
                if called in LISTENING:
                    for arg in args[:1] if called.endswith("_listener") else args:
                        if (channel := _named(arg, strict=True)) is not None:
                            uses.append(("listen", channel, where))
                if (called == "put_nowait" and args and isinstance(args[0], ast.Tuple)
                        and args[0].elts
                        and (channel := _named(args[0].elts[0], strict=False)) is not None):
                    uses.append(("signal", channel, where))
                for query, arg in itertools.pairwise(args):
                    if (isinstance(query, ast.Attribute) and isinstance(query.value, ast.Name)
                            and query.value.id == "Q" and "notify" in query.attr
                            and (channel := _named(arg, strict=True)) is not None):
                        uses.append(("notify", channel, where))
            elif isinstance(node, ast.Compare):
                for side in [node.left, *node.comparators]:
                    items = side.elts if isinstance(side, ast.Tuple | ast.List | ast.Set) \
                        else [side]
                    for item in items:
                        if (channel := _named(item, strict=False)) is not None:
                            uses.append(("compare", channel, where))
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                # SQL written in Python (the named queries are the rule, but still).
                for kind, pattern in (("notify", _PG_NOTIFY), ("notify", _NOTIFY),
                                      ("listen", _LISTEN)):
                    if pattern is not _PG_NOTIFY:
                        pattern = re.compile(pattern.pattern)  # SQL keywords: upper case
                    uses += [(kind, m.group(1), where) for m in pattern.finditer(node.value)]
    return uses


# -- the bus -----------------------------------------------------------------------------

def test_every_channel_sql_notifies_is_listed() -> None:
    notified = _sql_notified()
    assert notified, "no pg_notify found in circus/sql: the scan is broken"
    unlisted = {name: places for name, places in notified.items() if name not in bus.CHANNELS}
    assert unlisted == {}, "notified in SQL but not in circus/domain/bus.py CHANNELS"


def test_every_channel_python_names_is_listed() -> None:
    uses = _python_uses()
    assert {kind for kind, _, _ in uses} >= {"listen", "notify", "signal", "compare"}
    unknown = sorted((channel, kind, where) for kind, channel, where in uses
                     if channel not in KNOWN)
    assert unknown == [], "channels named in Python but not in circus/domain/bus.py"


def test_channel_names_are_spelled_only_in_the_domain() -> None:
    """Elsewhere a channel is `bus.BUILD_LOG`, never the string again."""
    spelled = sorted(f"{_rel(path)}:{node.lineno} {node.value}"
                     for path, tree in _modules() if path != DOMAIN_BUS
                     for node in ast.walk(tree)
                     if isinstance(node, ast.Constant) and node.value in KNOWN)
    assert spelled == []


def test_every_listed_channel_has_a_writer_and_a_listener() -> None:
    uses = _python_uses()
    written = set(_sql_notified()) | {c for kind, c, _ in uses if kind == "notify"}
    listened = {c for kind, c, _ in uses if kind == "listen"}
    assert [c for c in bus.CHANNELS if c not in written] == [], "listed, never notified"
    assert [c for c in bus.CHANNELS if c not in listened] == [], "listed, nobody subscribes"
    # The in-process signals: put into subscribers' queues, and read by someone.
    signalled = {c for kind, c, _ in uses if kind == "signal"}
    read = {c for kind, c, _ in uses if kind == "compare"}
    assert [s for s in bus.SIGNALS if s not in signalled] == [], "signal never sent"
    assert [s for s in bus.SIGNALS if s not in read] == [], "signal never read"
    assert not set(bus.CHANNELS) & set(bus.SIGNALS)


# -- the build status --------------------------------------------------------------------

def _documented_codes() -> dict[int, str]:
    """Hydra's buildstatus codes as its OpenAPI document lists them (`<li>N : text</li>`;
    `*: failed`, any other code, is left out)."""
    text = HYDRA_SPEC.read_text()
    start = text.index("buildstatus:")
    block = text[start:text.index("</ul>", start)]
    return {int(code): words.strip()
            for code, words in re.findall(r"<li>\s*(\d+)\s*:\s*([^<]+)</li>", block)}


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower().replace("cancelled", "canceled")))


def test_build_status_is_hydras_codes() -> None:
    assert {code.name: code.value for code in BuildStatus} == {
        "SUCCEEDED": 0, "FAILED": 1, "DEP_FAILED": 2, "ABORTED": 3, "CANCELLED": 4,
        "FAILED_WITH_OUTPUT": 6, "TIMED_OUT": 7, "CACHED_FAILURE": 8, "UNSUPPORTED": 9,
        "LOG_LIMIT_EXCEEDED": 10, "OUTPUT_LIMIT_EXCEEDED": 11}
    documented = _documented_codes()
    # Hydra's document lists no 8: its "*: failed" covers it (Hydra's source: cached
    # failure), as every code but 0 is a failure here.
    assert set(documented) == {code.value for code in BuildStatus} - {8}
    for code, text in documented.items():
        label = BuildStatus(code).label
        if text == "aborted" and code != BuildStatus.ABORTED:
            # Hydra's document files 9 (in Hydra's source: unsupported system type)
            # under "aborted", and so does its "restart-aborted".
            assert code in status.ABORTED_CODES, (code, label)
        else:
            assert _words(label) <= _words(text), (code, label, text)


def test_code_names_are_the_build_status_both_ways() -> None:
    assert {code.value: code.label for code in BuildStatus} == status.CODE_NAMES
    assert all(type(code) is int for code in status.CODE_NAMES)
    assert len(set(status.CODE_NAMES.values())) == len(status.CODE_NAMES)
    assert max(status.CODE_NAMES) == status.MAX_CODE
    for code, label in status.CODE_NAMES.items():
        assert status.name("finished", code) == label
        assert status.parse_filter(label) == (None, code)
        assert status.parse_filter(str(code)) == (None, code)
    for state in status.STATES:
        assert status.parse_filter(state) == (state, None)
    assert set(status.FAILED_CODES) == set(BuildStatus) - {BuildStatus.SUCCEEDED}
    assert set(status.ABORTED_CODES) < set(status.FAILED_CODES)


def test_the_schema_checks_the_same_values() -> None:
    """The migrations' CHECKs say what the domain says (the last one of each wins)."""
    checks: dict[str, list[str]] = {}
    buildstatus_range = None
    for _, code in _sql():
        for table, column, values in re.findall(
                r"(?:CREATE TABLE (\w+)[^;]*?)?CHECK\s*\(\s*(state|status)\s+IN\s*\(([^)]*)\)",
                code, re.IGNORECASE):
            key = {"notification_tasks": "notification", "srht_jobs": "srht_job",
                   "srht_tasks": "srht_task"}.get(table, column.lower())
            checks[key] = re.findall(r"'([^']*)'", values)
        found = re.findall(r"buildstatus\s+BETWEEN\s+(\d+)\s+AND\s+(\d+)", code, re.IGNORECASE)
        buildstatus_range = found[-1] if found else buildstatus_range
    assert tuple(checks["state"]) == status.STATES
    assert tuple(checks["status"]) == status.EVALUATION_STATUSES
    assert tuple(checks["notification"]) == status.NOTIFICATION_STATUSES
    assert tuple(checks["srht_job"]) == status.SRHT_JOB_STATUSES
    assert tuple(checks["srht_task"]) == status.SRHT_TASK_STATUSES
    assert buildstatus_range == ("0", str(status.MAX_CODE))


_STATUS_WORDS = ("SUCCE", "FAIL", "ABORT", "CANCEL")


def _int_literal(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return type(node.value) is int
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return bool(node.elts) and all(_int_literal(e) for e in node.elts)
    return False


def _assigned(target: ast.expr, value: ast.expr) -> Iterator[tuple[str, ast.expr]]:
    """(name, value) pairs of an assignment, through `A, B = 0, 1`."""
    if isinstance(target, ast.Name):
        yield target.id, value
    elif (isinstance(target, ast.Tuple | ast.List) and isinstance(value, ast.Tuple | ast.List)
          and len(target.elts) == len(value.elts)):
        for t, v in zip(target.elts, value.elts, strict=True):
            yield from _assigned(t, v)


def _module_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    for stmt in body:
        yield stmt
        if isinstance(stmt, ast.If | ast.Try):
            for block in (stmt.body, stmt.orelse, getattr(stmt, "finalbody", [])):
                yield from _module_level(block)


def test_no_other_module_defines_a_status_code() -> None:
    offenders = []
    for path, tree in _modules():
        if path == DOMAIN_STATUS:
            continue
        for stmt in _module_level(tree.body):
            if isinstance(stmt, ast.Assign):
                pairs = [p for t in stmt.targets for p in _assigned(t, stmt.value)]
            elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                pairs = list(_assigned(stmt.target, stmt.value))
            else:
                continue
            offenders += [f"{_rel(path)}:{stmt.lineno} {name}" for name, value in pairs
                          if any(w in name.upper() for w in _STATUS_WORDS)
                          and _int_literal(value)]
    assert offenders == [], "use circus.domain.status.BuildStatus"


def test_no_status_is_compared_with_a_bare_number() -> None:
    """`row["buildstatus"] == 0` says BuildStatus.SUCCEEDED. (HTTP statuses, 100 and up,
    are not build statuses.)"""
    def small(node: ast.expr) -> bool:
        items = node.elts if isinstance(node, ast.Tuple | ast.List | ast.Set) else [node]
        return any(isinstance(i, ast.Constant) and type(i.value) is int
                   and 0 <= i.value <= status.MAX_CODE for i in items)

    offenders = [f"{_rel(path)}:{node.lineno} {ast.unparse(node)}"
                 for path, tree in _modules() if path != DOMAIN_STATUS
                 for node in ast.walk(tree) if isinstance(node, ast.Compare)
                 for sides in [[node.left, *node.comparators]]
                 if any("status" in ast.unparse(s) for s in sides) and any(map(small, sides))]
    assert offenders == []


def test_evaluation_statuses_and_states_are_defined_once() -> None:
    """No literal tuple of them outside the domain (the dashboard, the API and the
    metrics all read circus.domain.status)."""
    wanted = {frozenset(status.EVALUATION_STATUSES), frozenset(status.STATES)}
    offenders = []
    for path, tree in _modules():
        if path == DOMAIN_STATUS:
            continue
        for node in ast.walk(tree):
            if (isinstance(node, ast.Tuple | ast.List | ast.Set)
                    and all(isinstance(e, ast.Constant) and isinstance(e.value, str)
                            for e in node.elts)
                    and frozenset(e.value for e in node.elts) in wanted):  # type: ignore[attr-defined]
                offenders.append(f"{_rel(path)}:{node.lineno} {ast.unparse(node)}")
    assert offenders == []
