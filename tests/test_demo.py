"""`circus demo`'s repository and configuration, checked with the real git and Nix."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from circus.app import demo
from circus.proc.nix import legacy, nix


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo.create_repo(tmp_path_factory.mktemp("demo"))


def test_repo_is_a_clean_git_repository_created_once(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    assert git(repo, "status", "--porcelain") == ""
    assert demo.create_repo(repo.parent) == repo
    assert git(repo, "rev-parse", "HEAD") == head


def test_flake_evaluates_to_the_demo_jobs(repo: Path) -> None:
    result = _run(nix("eval", "--json", f"{repo}#hydraJobs", "--apply", "builtins.attrNames"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == sorted(demo.JOBS)
    # Evaluating must not leave Nix-written files (a lock file) behind.
    assert git(repo, "status", "--porcelain") == ""


def test_hello_builds(repo: Path) -> None:
    result = _run(nix("build", "--no-link", "--json", f"{repo}#hydraJobs.hello"))
    assert result.returncode == 0, result.stderr
    out = Path(json.loads(result.stdout)[0]["outputs"]["out"])
    assert (out / "greeting").read_text() == "Hello, world!\n"


def test_docs_declares_a_product_and_a_metric(repo: Path) -> None:
    result = _run(nix("build", "--no-link", "--json", f"{repo}#hydraJobs.docs"))
    assert result.returncode == 0, result.stderr
    out = Path(json.loads(result.stdout)[0]["outputs"]["out"])
    product = (out / "nix-support" / "hydra-build-products").read_text().split()
    assert product[:2] == ["doc", "manual"] and Path(product[2], product[3]).is_file()
    assert (out / "nix-support" / "hydra-metrics").read_text() == "pages 1 count\n"


def test_broken_fails_with_its_message(repo: Path) -> None:
    result = _run(nix("build", "--no-link", f"{repo}#hydraJobs.broken"))
    assert result.returncode != 0
    assert "this job fails on purpose" in result.stderr


def test_release_is_an_aggregate_over_hello_and_docs(repo: Path) -> None:
    apply = "r: { agg = r._hydraAggregate; names = map (c: c.name) r.constituents; }"
    result = _run(nix("eval", "--json", f"{repo}#hydraJobs.release", "--apply", apply))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"agg": True, "names": ["hello", "docs"]}


def test_greeting_depends_on_hello(repo: Path) -> None:
    drvs = {}
    for name in ("greeting", "hello"):
        result = _run(nix("eval", "--raw", f"{repo}#hydraJobs.{name}.drvPath"))
        assert result.returncode == 0, result.stderr
        drvs[name] = result.stdout
    closure = _run(legacy("nix-store", "--query", "--requisites", drvs["greeting"]))
    assert drvs["hello"] in closure.stdout.split()


def test_config_has_the_demo_keys_and_project(tmp_path: Path) -> None:
    cfg = demo.load_config(tmp_path, 3123, environ={}, cwd=tmp_path)
    keys = {(k.name, k.role, k.key) for k in cfg.declarative.api_keys}
    assert keys == {("demo-admin", "admin", "circus_demo_admin_key"),
                    ("demo-readonly", "read-only", "circus_demo_readonly_key")}
    (project,) = cfg.declarative.projects
    repo_url = (tmp_path / demo.REPO_DIR).resolve().as_uri()
    assert (project.name, project.repository_url) == ("demo", repo_url)
    assert [(j.name, j.flake, j.check_interval) for j in project.jobsets] == [("main", True, 60)]
    assert cfg.database.url is None and cfg.server.port == 3123
    assert "file" in cfg.server.allowed_url_schemes
    assert cfg.gc.gc_roots_dir.startswith(str(tmp_path))


def test_config_honours_the_users_file_and_environment(tmp_path: Path) -> None:
    (tmp_path / "circus.toml").write_text("[server]\nhost = '0.0.0.0'\n[evaluator]\n"
                                          "poll_interval = 30\n")
    env = {"CIRCUS_EVALUATOR__POLL_INTERVAL": "9", "CIRCUS_QUEUE_RUNNER__WORKERS": "2"}
    cfg = demo.load_config(tmp_path, 3123, environ=env, cwd=tmp_path)
    assert cfg.server.host == "0.0.0.0"
    assert cfg.evaluator.poll_interval == 9
    assert cfg.queue_runner.workers == 2
    assert len(cfg.declarative.api_keys) == 2
