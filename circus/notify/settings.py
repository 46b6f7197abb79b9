"""What one project's notifications go to: the global `[notifications]` table, with the
project's own settings (the per-project notifications page and API) on top.

A project's secrets (tokens, webhook URLs that hold a key) are stored sealed
(services/sealed); `SECRET_KEYS` names them, and they are never shown back.
"""

from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import urlsplit

import attrs

from circus.app.config import Config

Forge = Literal["github", "gitea", "gitlab"]
FORGES = ("github", "gitea", "gitlab")
SECRET_KEYS = ("github_token", "gitea_token", "gitlab_token", "webhook_url",
               "slack_webhook_url")
# Key → expected type of what a project may set; see `check`.
PLAIN_KEYS: dict[str, type | tuple[type, ...]] = {
    "gitea_url": str, "gitlab_url": str, "commit_status": str, "forge": str,
    "repository": str, "slack_on_failure_only": bool, "email_to_addresses": list,
}
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$")


@attrs.frozen
class Settings:
    webhook_url: str | None = None
    github_api_url: str = "https://api.github.com"
    github_token: str | None = None
    gitea_url: str | None = None
    gitea_token: str | None = None
    gitlab_url: str | None = None
    gitlab_token: str | None = None
    slack_webhook_url: str | None = None
    slack_on_failure_only: bool = False
    smtp_host: str | None = None
    smtp_port: int | None = None
    email_from_address: str | None = None
    email_to_addresses: tuple[str, ...] = ()
    commit_status: str = "evaluation"
    # The forge repository statuses go to; found from the project's URL when unset.
    forge: str | None = None
    repository: str | None = None

    @classmethod
    def of(cls, config: Config, project: dict[str, Any] | None = None) -> Settings:
        n = config.notifications
        base = cls(
            webhook_url=n.webhook_url, github_api_url=n.github_api_url,
            github_token=n.github_token, gitea_url=n.gitea_url, gitea_token=n.gitea_token,
            gitlab_url=n.gitlab_url, gitlab_token=n.gitlab_token,
            slack_webhook_url=n.slack.webhook_url,
            slack_on_failure_only=n.slack.on_failure_only, smtp_host=n.email.smtp_host,
            smtp_port=n.email.smtp_port, email_from_address=n.email.from_address,
            email_to_addresses=tuple(n.email.to_addresses), commit_status=n.commit_status)
        if not project:
            return base
        own = dict(project)
        if "email_to_addresses" in own:
            own["email_to_addresses"] = tuple(own["email_to_addresses"])
        return attrs.evolve(base, **{k: v for k, v in own.items() if v not in (None, "")})

    def status_repository(self, repository_url: str) -> tuple[Forge, str] | None:
        """(forge, "owner/name") that commit statuses go to, if any forge has a token."""
        forge, repository = self.forge, self.repository
        if not (forge and repository):
            found = _forge_of(repository_url, self.gitea_url, self.gitlab_url)
            if found is None:
                return None
            forge, repository = found
        token = {"github": self.github_token, "gitea": self.gitea_token,
                 "gitlab": self.gitlab_token}.get(forge)
        if not token or forge not in FORGES:
            return None
        return forge, repository  # type: ignore[return-value]


def _forge_of(url: str, gitea_url: str | None,
              gitlab_url: str | None) -> tuple[str, str] | None:
    """("github"|"gitea"|"gitlab", owner/name) when the repository URL is on one."""
    host, path = _host_and_path(url)
    if host is None or not path:
        return None
    if host == "github.com":
        return "github", path
    for forge, base in (("gitea", gitea_url), ("gitlab", gitlab_url)):
        if base and _host_and_path(base)[0] == host:
            return forge, path
    return None


def _host_and_path(url: str) -> tuple[str | None, str]:
    scp = re.match(r"^[^@/:]+@([^:/]+):(.*)$", url)  # git@github.com:owner/name.git
    if scp:
        host, path = scp.group(1), scp.group(2)
    else:
        parts = urlsplit(url.removeprefix("git+"))
        host, path = parts.hostname, parts.path
    path = re.sub(r"(\.git)?/*$", "", path).strip("/")
    return (host.lower() if host else None), path


def check(settings: dict[str, Any]) -> None:
    """ValueError naming the first key a project may not set or set so."""
    for key, value in settings.items():
        if key in SECRET_KEYS:
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{key}: expected a string or null")
            continue
        if key not in PLAIN_KEYS:
            raise ValueError(f"{key}: not a notification setting; known: "
                             f"{', '.join(sorted((*PLAIN_KEYS, *SECRET_KEYS)))}")
        if value is not None and not isinstance(value, PLAIN_KEYS[key]):
            raise ValueError(f"{key}: expected {PLAIN_KEYS[key].__name__}")  # type: ignore[union-attr]
    _check_values(settings)


def _check_values(settings: dict[str, Any]) -> None:
    if settings.get("commit_status") not in (None, "evaluation", "job"):
        raise ValueError("commit_status: expected 'evaluation' or 'job'")
    if settings.get("forge") not in (None, *FORGES):
        raise ValueError(f"forge: expected one of {', '.join(FORGES)}")
    repository = settings.get("repository")
    if repository is not None and (not _REPOSITORY.match(repository) or any(
            part in (".", "..") for part in repository.split("/"))):
        raise ValueError("repository: expected 'owner/name' (GitLab: 'group/sub/name')")
    addresses = settings.get("email_to_addresses") or []
    if not all(isinstance(a, str) and "@" in a for a in addresses):
        raise ValueError("email_to_addresses: expected a list of email addresses")
    for key in ("gitea_url", "gitlab_url", "webhook_url", "slack_webhook_url"):
        value = settings.get(key)
        if value and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError(f"{key}: expected an http or https URL")
