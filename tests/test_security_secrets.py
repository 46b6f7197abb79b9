"""Issue 10, hole 6: secrets never reach a page. The anonymous notifications page, the
admin's GET /api/v1/admin/config and `circus config show` (a real `circus run` and the
real CLI) show only whether a secret is set; a URL's userinfo is masked."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path

from tests.helpers.e2e import ADMIN_KEY, Circus

SECRETS = {
    "webhook": "https://hooks.example.com/T0KEN-webhook-s3cret",
    "slack": "https://hooks.slack.com/services/SLACK-s3cret",
    "github": "ghp_github_s3cret",
    "gitea": "gitea_s3cret",
    "client": "oauth_client_s3cret",
    "dbpass": "db_pass_s3cret",
    "userpass": "declared_user_s3cret",
    "apikey": "circus_declared_key_s3cret",
    "ldap": "ldap_bind_s3cret",
}

CONFIG = f"""
[notifications]
webhook_url = "{SECRETS['webhook']}"
github_token = "{SECRETS['github']}"
gitea_url = "https://ci-bot:{SECRETS['gitea']}@gitea.example.com"
gitea_token = "{SECRETS['gitea']}"
[notifications.slack]
webhook_url = "{SECRETS['slack']}"
[oauth.github]
client_id = "public-client-id"
client_secret = "{SECRETS['client']}"
[server.ldap]
url = "ldap://binder:{SECRETS['ldap']}@ldap.example.com"
[[declarative.users]]
username = "declared"
role = "read-only"
password = "{SECRETS['userpass']}"
[[declarative.api_keys]]
name = "admin"
key = "{ADMIN_KEY}"
role = "admin"
[[declarative.api_keys]]
name = "ci"
key = "{SECRETS['apikey']}"
role = "read-only"
"""


def _with_password(url: str) -> str:
    """The test database's URL with a password in it (trust auth ignores it)."""
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user.split(':')[0]}:{SECRETS['dbpass']}@{host}"


def _leaks(text: str) -> list[str]:
    return [name for name, secret in SECRETS.items() if secret in text]


def _circus(tmp_path: Path, database_url: str) -> Circus:
    (tmp_path / "circus-e2e.toml").write_text(CONFIG)
    return Circus(tmp_path, _with_password(database_url), "server", "secrets")


def test_notifications_page_shows_no_secret_to_a_visitor(tmp_path: Path,
                                                        database_url: str) -> None:
    api = _circus(tmp_path, database_url).start()
    try:
        project = api.post("/api/v1/projects", {"name": "p",
                                                "repository_url": "https://example.com/r"})
        status, page = api.request("GET", f"/project/{project['id']}/notifications", key=None)
        assert status == 200, page
        assert _leaks(page) == []
        # Still says what is on, and where a server is.
        assert "Generic webhook" in page and '<span class="status status-ok">on</span>' in page
        assert "https://***@gitea.example.com" in page
    finally:
        api.stop()


def test_admin_config_shows_only_that_secrets_are_set(tmp_path: Path,
                                                      database_url: str) -> None:
    api = _circus(tmp_path, database_url).start()
    try:
        # The declarative file an admin saved holds secrets too.
        saved = {"declarative": {"users": [{"username": "saved", "role": "read-only",
                                            "password": SECRETS["userpass"]}],
                                 "api_keys": [{"name": "admin", "role": "admin",
                                               "key": ADMIN_KEY}]}}
        status, body = api.request("PUT", "/api/v1/admin/config", saved)
        assert status == 200, body
        req_status, raw = _get_text(api, "/api/v1/admin/config")
        assert req_status == 200, raw
        assert _leaks(raw) == [] and ADMIN_KEY not in raw
        shown = json.loads(raw)
        effective = shown["effective"]
        assert effective["notifications"]["webhook_url"] == "(set)"
        assert effective["notifications"]["slack"]["webhook_url"] == "(set)"
        assert effective["notifications"]["github_token"] == "(set)"
        assert effective["oauth"]["github"]["client_secret"] == "(set)"
        assert effective["oauth"]["github"]["client_id"] == "public-client-id"
        assert effective["declarative"]["users"][0]["password"] == "(set)"
        assert effective["database"]["url"].startswith("postgresql://***@")
        assert effective["server"]["ldap"]["url"] == "ldap://***@ldap.example.com"
        assert shown["declarative"]["users"][0]["password"] == "(set)"
        assert 'password = "(set)"' in shown["declarative_toml"]
        # Saving the shown file back would write the marker as a password: refused.
        status, body = api.request("PUT", "/api/v1/admin/config",
                                   {"declarative": shown["declarative"]})
        assert status == 400, body
        assert body["error"].startswith("declarative.users[0].password:"), body
    finally:
        api.stop()


def _get_text(api: Circus, path: str) -> tuple[int, str]:
    """The harness sends no key with a GET; the admin's page needs one."""
    req = urllib.request.Request(api.url + path,
                                 headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, resp.read().decode()


def test_config_show_prints_no_secret(tmp_path: Path, database_url: str) -> None:
    (tmp_path / "circus.toml").write_text(CONFIG)
    env = {"PATH": "/usr/bin:/bin", "CIRCUS_DATABASE__URL": _with_password(database_url),
           "CIRCUS_STATE_DIR": str(tmp_path / "state")}
    done = subprocess.run([sys.executable, "-m", "circus.cli", "config", "show"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert _leaks(done.stdout) == [] and ADMIN_KEY not in done.stdout
    shown = tomllib.loads(done.stdout)
    assert shown["notifications"]["webhook_url"] == "(set)"
    assert shown["declarative"]["api_keys"][1]["key"] == "(set)"
    assert shown["database"]["url"].startswith("postgresql://***@")
    # An unset secret is left out, so "(set)" always means set.
    assert "gitlab_token" not in shown["notifications"]
