"""The set-up, CI script, example configuration, container, systemd units and NixOS
module: what they name exists and what they say matches the code."""

from __future__ import annotations

import re
import subprocess
import typing
from pathlib import Path

import attrs

from circus.app import config as configuration
from circus.app import supervisor

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()

def _ci_command() -> str:
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    commands = [line for line in lines if line and not line.startswith(("#", "set "))]
    return commands[-1]


def _setup_commands() -> list[str]:
    section = README.split("\n## Set-up\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", section, flags=re.M | re.S)
    return [line.strip() for block in blocks for line in block.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def test_ci_runs_the_readme_test_command() -> None:
    text = (ROOT / ".ci" / "run").read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert _ci_command() == "bash etc/dev.sh test"
    assert _ci_command() in README


def test_readme_setup_shows_exactly_two_commands() -> None:
    assert _setup_commands() == ["bash etc/dev.sh demo", "bash etc/dev.sh test"]


def test_setup_script_is_valid_bash_and_rejects_unknown_commands() -> None:
    script = ROOT / "etc" / "dev.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    result = subprocess.run(["bash", str(script), "nonsense"], capture_output=True, text=True)
    assert result.returncode == 2 and "usage:" in result.stderr


def test_readme_documents_keys_and_commands() -> None:
    for text in ("circus_demo_admin_key", "circus_demo_readonly_key", "circus run --roles=",
                 "CIRCUS_CONFIG_FILE", "CIRCUS_DATABASE__URL", "circus config show",
                 "circus migrate up", "circus migrate status", "circus migrate validate",
                 "circus migrate create", "curl -s"):
        assert text in README, text


def _config_keys(cls: type = configuration.Config, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    hints = typing.get_type_hints(cls)
    for field in attrs.fields(cls):
        hint = hints[field.name]
        if attrs.has(hint):
            keys |= _config_keys(hint, f"{prefix}{field.name}.")
        else:
            keys.add(prefix + field.name)
    return keys


def _example_keys(text: str) -> tuple[set[str], set[str]]:
    """Keys in the example, commented out or not: (all, those outside array tables)."""
    found: set[str] = set()
    plain: set[str] = set()
    section, in_array = "", False
    for raw in text.splitlines():
        line = raw.lstrip("#").strip()
        if match := re.match(r"^\[\[([a-z0-9_.]+)\]\]", line):
            section, in_array = match[1], True
            found.add(section)
        elif match := re.match(r"^\[([a-z0-9_.]+)\]", line):
            section, in_array = match[1], False
        elif match := re.match(r"^([a-z_]+) = ", line):
            key = f"{section}.{match[1]}" if section else match[1]
            found.add(key)
            if not in_array:
                plain.add(key)
    return found, plain


def test_example_config_loads_and_names_every_key() -> None:
    example = ROOT / "etc" / "circus.example.toml"
    cfg = configuration.load({"CIRCUS_CONFIG_FILE": str(example)}, cwd=ROOT / "etc")
    assert cfg.server.port == 3000
    found, plain = _example_keys(example.read_text())
    expected = _config_keys()
    assert expected - found == set()
    assert plain - expected == set()


def test_systemd_units_run_valid_roles() -> None:
    single = (ROOT / "etc" / "systemd" / "circus.service").read_text()
    roles = re.search(r"^ExecStart=\S+ run --roles=(\S+)$", single, flags=re.M)[1]
    assert supervisor.parse_roles(roles) == list(supervisor.ROLES)
    split = (ROOT / "etc" / "systemd" / "circus@.service").read_text()
    assert re.search(r"^ExecStart=\S+ run --roles=%i$", split, flags=re.M)
    for unit in (single, split):
        assert "Environment=CIRCUS_CONFIG_FILE=" in unit
        assert "CIRCUS_DATA_DIR" not in unit  # the package holds its own data
        assert "[Install]" in unit
