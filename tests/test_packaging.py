"""The set-up, CI script, example configuration, container, systemd units and NixOS
module: what they name exists and what they say matches the code."""

from __future__ import annotations

import json
import re
import subprocess
import typing
from pathlib import Path

import attrs

from circus import config as configuration
from circus import supervisor
from circus.nix.cli import legacy

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()

# Evaluates the module with just enough of nixpkgs' `lib` and `pkgs` to force every
# value it defines; an unknown function or a typo fails here.
MODULE_STUB = """
{ module }:
let
  lib = {
    mkEnableOption = d: { _type = "option"; description = d; };
    mkOption = a: a // { _type = "option"; };
    mkIf = c: v: { _type = "if"; condition = c; content = v; };
    mkDefault = v: { _type = "override"; priority = 1000; content = v; };
    types = { package = "package"; bool = "bool"; listOf = t: { listOf = t; };
              enum = xs: { enum = xs; }; };
    optional = c: x: if c then [ x ] else [ ];
    concatStringsSep = builtins.concatStringsSep;
  };
  pkgs = {
    formats.toml = _: { type = "toml";
                        generate = n: v: builtins.toFile n (builtins.toJSON v); };
    git = "/nix/store/git"; openssh = "/nix/store/openssh";
  };
  cfg = { enable = true; package = "/nix/store/circus"; roles = [ "server" "runner" ];
          settings = { }; database.createLocally = true; };
  m = import module {
    inherit lib pkgs;
    config = { services.circus = cfg; nix.package = "/nix/store/nix"; };
  };
  svc = m.config.content.systemd.services.circus;
in builtins.deepSeq m {
  options = builtins.attrNames m.options.services.circus;
  exec = svc.serviceConfig.ExecStart;
  inherit (svc) environment;
  postgres = m.config.content.services.postgresql.content.ensureDatabases;
}
"""


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


def test_containerfile_copies_existing_files_and_points_at_them() -> None:
    text = (ROOT / "etc" / "Containerfile").read_text()
    copies = re.findall(r"^COPY\s+(.+)$", text, flags=re.M)
    assert copies
    destinations = []
    for copy in copies:
        *sources, dest = copy.split()
        destinations.append(dest)
        for source in sources:
            assert (ROOT / source).exists(), source
    data_dir = re.search(r"CIRCUS_DATA_DIR=(\S+)", text)[1]
    assert f"{data_dir}/sql" in destinations and f"{data_dir}/web" in destinations
    assert 'ENTRYPOINT ["circus", "run"]' in text
    assert text.startswith("#") and "FROM python:3.11-slim" in text


def test_systemd_units_run_valid_roles() -> None:
    single = (ROOT / "etc" / "systemd" / "circus.service").read_text()
    roles = re.search(r"^ExecStart=\S+ run --roles=(\S+)$", single, flags=re.M)[1]
    assert supervisor.parse_roles(roles) == list(supervisor.ROLES)
    split = (ROOT / "etc" / "systemd" / "circus@.service").read_text()
    assert re.search(r"^ExecStart=\S+ run --roles=%i$", split, flags=re.M)
    for unit in (single, split):
        assert "Environment=CIRCUS_CONFIG_FILE=" in unit
        assert "Environment=CIRCUS_DATA_DIR=" in unit
        assert "[Install]" in unit


def test_nixos_module_parses() -> None:
    result = subprocess.run(legacy("nix-instantiate", "--parse", str(ROOT / "nixos" /
                                                                     "module.nix")),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_nixos_module_evaluates_against_a_stub_lib(tmp_path: Path) -> None:
    stub = tmp_path / "stub.nix"
    stub.write_text(MODULE_STUB)
    result = subprocess.run(
        legacy("nix-instantiate", "--eval", "--strict", "--json", str(stub),
               "--arg", "module", str(ROOT / "nixos" / "module.nix")),
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    module = json.loads(result.stdout)
    assert module["options"] == ["database", "enable", "package", "roles", "settings"]
    assert module["exec"] == "/nix/store/circus/bin/circus run --roles=server,runner"
    assert module["environment"]["CIRCUS_DATA_DIR"] == "/nix/store/circus/share/circus"
    assert module["environment"]["CIRCUS_CONFIG_FILE"].endswith("-circus.toml")
    assert module["postgres"] == ["circus"]
