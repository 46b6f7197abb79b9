"""Configuration: precedence, env parsing, one-line errors naming the key, `config show`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from circus.app import config as configuration
from tests.helpers.suite import ROOT


def test_defaults_follow_the_option_table() -> None:
    cfg = configuration.load({}, cwd=Path("/nonexistent"))
    assert cfg.database.url is None
    assert (cfg.server.host, cfg.server.port, cfg.server.max_body_size) == ("127.0.0.1", 3000,
                                                                           10485760)
    assert cfg.evaluator.poll_interval == 60 and cfg.evaluator.restrict_eval is True
    assert cfg.queue_runner.workers == 4 and cfg.queue_runner.build_timeout == 3600
    assert cfg.gc.max_age_days == 30 and cfg.cache.compression == "zstd"
    assert cfg.notifications.max_retry_attempts == 5 and cfg.tracing.level == "info"
    assert cfg.declarative.projects == []


def test_precedence_defaults_file_configfile_env(tmp_path: Path) -> None:
    (tmp_path / "circus.toml").write_text(
        "[server]\nport = 4000\nhost = '0.0.0.0'\n[queue_runner]\nworkers = 2\n")
    other = tmp_path / "other.toml"
    other.write_text("[server]\nport = 5000\n")
    env = {"CIRCUS_CONFIG_FILE": str(other), "CIRCUS_QUEUE_RUNNER__WORKERS": "8",
           "CIRCUS_EVALUATOR__RESTRICT_EVAL": "false",
           "CIRCUS_SERVER__ALLOWED_URL_SCHEMES": '["https", "file"]'}
    cfg = configuration.load(env, cwd=tmp_path)
    assert cfg.server.host == "0.0.0.0"  # circus.toml
    assert cfg.server.port == 5000  # CIRCUS_CONFIG_FILE beats circus.toml
    assert cfg.queue_runner.workers == 8  # environment beats both
    assert cfg.evaluator.restrict_eval is False
    assert cfg.server.allowed_url_schemes == ["https", "file"]


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        ("[server]\nportt = 1\n", {}, "server.portt: unknown key"),
        ("[server]\nport = 'x'\n", {}, "server.port: expected int"),
        ("[queue_runner]\nworkers = 0\n", {}, "queue_runner.workers: must be greater than 0"),
        ("[tracing]\nlevel = 'loud'\n", {}, "tracing.level: expected one of"),
        ("", {"CIRCUS_QUEUE_RUNNER__WORKERS": "many"},
         "CIRCUS_QUEUE_RUNNER__WORKERS: expected an integer"),
        ("", {"CIRCUS_NOPE__KEY": "1"}, "unknown key nope.key"),
        ("[[declarative.api_keys]]\nname = 'a'\nrole = 'boss'\nkey = 'k'\n", {},
         "declarative.api_keys[0].role: expected one of"),
        ("[[declarative.projects]]\nname = 'a'\n", {},
         "declarative.projects[0].repository_url: required key is missing"),
    ],
)
def test_bad_configuration_names_the_key(tmp_path: Path, toml: str, env: dict, message: str
                                         ) -> None:
    (tmp_path / "circus.toml").write_text(toml)
    with pytest.raises(configuration.ConfigError) as info:
        configuration.load(env, cwd=tmp_path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_cli_bad_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "circus.toml").write_text("[server]\nport = 70000\n")
    result = subprocess.run([sys.executable, "-m", "circus.cli", "run"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "circus: invalid configuration: server.port: must be a TCP port between 0 and 65535,"
        " got 70000"
    ]


def test_config_show_redacts_secrets(tmp_path: Path) -> None:
    (tmp_path / "circus.toml").write_text(
        "[notifications]\ngithub_token = 'ghp_secret'\n[oauth.github]\nclient_secret = 's3'\n"
        "[[declarative.api_keys]]\nname = 'admin'\nrole = 'admin'\nkey = 'circus_raw'\n")
    result = subprocess.run([sys.executable, "-m", "circus.cli", "config", "show"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    import tomllib

    shown = tomllib.loads(result.stdout)
    assert shown["server"]["port"] == 3000
    assert shown["notifications"]["github_token"] == "(set)"
    assert shown["oauth"]["github"]["client_secret"] == "(set)"
    assert shown["declarative"]["api_keys"][0]["key"] == "(set)"
    assert "ghp_secret" not in result.stdout and "circus_raw" not in result.stdout


def test_declarative_saved_by_an_admin_is_read_at_start(tmp_path: Path) -> None:
    """PUT /api/v1/admin/config writes $state_dir/declarative.toml; the next start uses it."""
    state = tmp_path / "state"
    state.mkdir()
    (tmp_path / "circus.toml").write_text(
        f"state_dir = '{state}'\n[[declarative.api_keys]]\nname = 'k'\nrole = 'admin'\n"
        "key = 'circus_k'\n")
    (state / "declarative.toml").write_text(
        "[[declarative.projects]]\nname = 'saved'\nrepository_url = 'https://x.invalid/r'\n")
    cfg = configuration.load({}, cwd=tmp_path)
    assert [p.name for p in cfg.declarative.projects] == ["saved"]
    assert [k.name for k in cfg.declarative.api_keys] == ["k"]


@pytest.mark.parametrize(("toml", "key"), [
    ("[database]\nmax_lifetime = 1800\n", "database.max_lifetime"),
    ("[logs]\nlog_dir = '/var/lib/circus/logs'\n", "logs.log_dir"),
    ("[logs]\ncompress = false\n", "logs.compress"),
])
def test_a_key_nothing_acts_on_is_refused_by_name(tmp_path: Path, toml: str, key: str) -> None:
    (tmp_path / "circus.toml").write_text(toml)
    result = subprocess.run([sys.executable, "-m", "circus.cli", "config", "show"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"{key}: not supported yet (" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_unsupported_key_from_the_environment_is_refused_too(tmp_path: Path) -> None:
    with pytest.raises(configuration.ConfigError,
                       match=r"logs\.log_dir: not supported yet \(build logs are kept in the "
                             r"database\)"):
        configuration.load(environ={"CIRCUS_LOGS__LOG_DIR": "/tmp/x"}, cwd=tmp_path)


def test_the_example_configuration_loads_as_it_is(tmp_path: Path) -> None:
    example = ROOT / "etc" / "circus.example.toml"
    cfg = configuration.load(environ={"CIRCUS_CONFIG_FILE": str(example)}, cwd=tmp_path)
    assert cfg.logs.max_size == 64 << 20
