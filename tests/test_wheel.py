"""The wheel is the product: built from this checkout and installed into a new virtualenv,
`circus` finds its migrations, queries, templates and static files from any directory."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.helpers.e2e import wait_for
from tests.helpers.suite import ROOT, free_port


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True, timeout=600)
    (path,) = out.glob("circus_ci-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtualenv with the wheel and its dependencies (from PyPI or pip's cache)."""
    venv = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], check=True,
                   capture_output=True, timeout=900)
    return venv


def test_the_wheel_holds_sql_templates_and_static_files(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("circus/sql/migrations/0001_initial.sql", "circus/sql/queries/builds.sql",
                     "circus/server/dashboard/templates/base.html",
                     "circus/server/dashboard/static/circus.css", "circus/nix/walk.nix"):
        assert required in names, required
    migrations = sorted(n for n in names if n.startswith("circus/sql/migrations/"))
    assert migrations == sorted(
        f"circus/sql/migrations/{p.name}" for p in (ROOT / "circus/sql/migrations").glob("*.sql"))


def test_installed_circus_migrates_and_serves_pages_from_anywhere(
        installed: Path, database_url: str, tmp_path: Path) -> None:
    elsewhere = tmp_path / "unrelated"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CIRCUS_DATA_DIR")}
    env.update(CIRCUS_DATABASE__URL=database_url, CIRCUS_STATE_DIR=str(tmp_path / "state"))
    circus = str(installed / "bin" / "circus")
    # The code that runs is the installed copy, not this checkout.
    where = subprocess.run([str(installed / "bin" / "python"), "-c",
                            "import circus; print(circus.__file__)"], cwd=elsewhere, env=env,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(installed))
    status = subprocess.run([circus, "migrate", "status"], cwd=elsewhere, env=env,
                            capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr
    assert "0001_initial.sql\tapplied" in status.stdout
    up = subprocess.run([circus, "migrate", "up"], cwd=elsewhere, env=env,
                        capture_output=True, text=True, timeout=120)
    assert up.returncode == 0 and "applied 0 migration(s)" in up.stdout, up.stderr
    port = free_port()
    server = subprocess.Popen([circus, "run", "--roles=server"], cwd=elsewhere,
                              env={**env, "CIRCUS_SERVER__PORT": str(port)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _get(base + "/health")[0] == 200, 60, "installed server up")
        code, body = _get(base + "/projects")
        assert code == 200 and "<html" in body.lower()
        code, css = _get(base + "/static/circus.css")
        assert code == 200 and css == (
            ROOT / "circus/server/dashboard/static/circus.css").read_text()
    finally:
        server.terminate()
        server.wait(30)


def test_a_missing_migrations_directory_is_an_error(installed: Path, database_url: str,
                                                    tmp_path: Path) -> None:
    site = next((installed / "lib").glob("python3*/site-packages"))
    migrations = site / "circus" / "sql" / "migrations"
    migrations.rename(migrations.with_name("moved"))
    try:
        env = {**os.environ, "CIRCUS_DATABASE__URL": database_url}
        result = subprocess.run([str(installed / "bin" / "circus"), "migrate", "status"],
                                cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=120)
    finally:
        migrations.with_name("moved").rename(migrations)
    assert result.returncode != 0
    assert f"the migrations directory {migrations} does not exist" in result.stderr


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, resp.read().decode()
