"""How one delivery is sent to its target: a commit status to GitHub, Gitea/Forgejo or
GitLab (each forge's own REST call and vocabulary), the generic JSON webhook, Slack's
incoming webhook, or an email over SMTP. Tokens and URLs are read from the project's
effective settings at send time, never from the stored payload."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any
from urllib.parse import quote

import aiosmtplib

from circus.notify.client import Client, DeliveryFailed
from circus.notify.settings import Settings

GITHUB_API_VERSION = "2022-11-28"
# GitLab names the states its own way (and has no "error").
_GITLAB_STATES = {"pending": "pending", "success": "success", "failure": "failed",
                  "error": "failed"}


async def send(target: str, payload: dict[str, Any], settings: Settings,
               http: Client, time_limit: float) -> None:
    if target == "github":
        await _github(payload, settings, http)
    elif target == "gitea":
        await _gitea(payload, settings, http)
    elif target == "gitlab":
        await _gitlab(payload, settings, http)
    elif target == "webhook":
        # A builds.sr.ht trigger names its own URL; the client's address rules still hold.
        url = payload.get("url") or _needed(settings.webhook_url, "webhook_url")
        await http.post(url, payload["body"])
    elif target == "slack":
        await http.post(_needed(settings.slack_webhook_url, "slack.webhook_url"),
                        {"text": payload["text"]})
    elif target == "email":
        await _email(payload, settings, time_limit)
    else:
        raise DeliveryFailed(f"unknown target {target!r}")


def _status_body(payload: dict[str, Any]) -> dict[str, str]:
    return {"state": payload["state"], "target_url": payload["target_url"],
            "description": payload["description"], "context": payload["context"]}


async def _github(payload: dict[str, Any], settings: Settings, http: Client) -> None:
    token = _needed(settings.github_token, "github_token")
    url = (f"{settings.github_api_url.rstrip('/')}/repos/{payload['repository']}"
           f"/statuses/{payload['commit']}")
    await http.post(url, _status_body(payload), {
        "Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": GITHUB_API_VERSION})


async def _gitea(payload: dict[str, Any], settings: Settings, http: Client) -> None:
    token = _needed(settings.gitea_token, "gitea_token")
    base = _needed(settings.gitea_url, "gitea_url").rstrip("/")
    url = f"{base}/api/v1/repos/{payload['repository']}/statuses/{payload['commit']}"
    await http.post(url, _status_body(payload), {"Authorization": f"token {token}"})


async def _gitlab(payload: dict[str, Any], settings: Settings, http: Client) -> None:
    token = _needed(settings.gitlab_token, "gitlab_token")
    base = _needed(settings.gitlab_url, "gitlab_url").rstrip("/")
    project = quote(payload["repository"], safe="")
    url = f"{base}/api/v4/projects/{project}/statuses/{payload['commit']}"
    body = {"state": _GITLAB_STATES[payload["state"]], "name": payload["context"],
            "target_url": payload["target_url"], "description": payload["description"]}
    await http.post(url, body, {"PRIVATE-TOKEN": token})


async def _email(payload: dict[str, Any], settings: Settings, time_limit: float) -> None:
    host = _needed(settings.smtp_host, "email.smtp_host")
    message = EmailMessage()
    message["From"] = _needed(settings.email_from_address, "email.from_address")
    message["To"] = ", ".join(settings.email_to_addresses)
    message["Subject"] = payload["subject"]
    message.set_content(payload["body"])
    try:
        await aiosmtplib.send(message, hostname=host, port=settings.smtp_port or 25,
                              timeout=time_limit, start_tls=None)
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise DeliveryFailed(f"SMTP {host}: {exc}") from None


def _needed(value: str | None, key: str) -> str:
    if not value:
        raise DeliveryFailed(f"notifications.{key} is not set (any more)")
    return value
