"""What a forge's webhook delivery means, read from its headers and JSON body: a push to
a branch, a pull (merge) request opened, updated or closed, or something Circus ignores.
One reading for `/api/v1/webhooks/...` and Hydra's `/api/push-github`/`push-gitea`.

GitHub, Gitea and Forgejo send GitHub-shaped payloads (`ref`, `after`,
`repository.default_branch`, `pull_request.base/head`); GitLab its own (`Push Hook`,
`Merge Request Hook` with `object_attributes`). A value of the wrong type is an
InvalidValue naming it (a 400), never a crash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from circus.domain.errors import InvalidValue
from circus.services.forge import PullRequest, Push

ZERO_COMMIT = "0" * 40
# The header that names the event, and the one that names the delivery, per forge.
EVENT_HEADERS = {"github": "X-GitHub-Event", "gitea": "X-Gitea-Event",
                 "forgejo": "X-Forgejo-Event", "gitlab": "X-Gitlab-Event"}
DELIVERY_HEADERS = {"github": "X-GitHub-Delivery", "gitea": "X-Gitea-Delivery",
                    "forgejo": "X-Forgejo-Delivery", "gitlab": "X-Gitlab-Event-UUID"}
_PR_ACTIONS = {"opened": "open", "reopened": "open", "synchronize": "update",
               "synchronized": "update", "closed": "close",
               # GitLab's object_attributes.action
               "open": "open", "reopen": "open", "update": "update", "close": "close",
               "merge": "close"}


def event_name(forge: str, headers: Mapping[str, str]) -> str:
    name = headers.get(EVENT_HEADERS[forge]) or headers.get("X-Gitea-Event", "")
    if not name:
        raise InvalidValue(EVENT_HEADERS[forge], "missing: it names the event")
    return name.strip()


def delivery_id(forge: str, headers: Mapping[str, str], body: bytes) -> str:
    """The forge's id of this delivery; without one, the body's hash (a resend of the
    same body is the same delivery)."""
    given = headers.get(DELIVERY_HEADERS[forge]) or headers.get("X-Gitea-Delivery")
    return given.strip()[:200] if given else "sha256:" + hashlib.sha256(body).hexdigest()


def is_ping(forge: str, event: str) -> bool:
    return event == "ping" or (forge == "gitlab" and event == "System Hook")


def change_of(forge: str, event: str, body: dict[str, Any]) -> Push | PullRequest | None:
    """The push or pull request the delivery tells of; None when Circus ignores it."""
    if forge == "gitlab":
        if event == "Push Hook":
            return _push(body, _str(body, "checkout_sha", "after"),
                         _str(_obj(body, "project"), "default_branch"))
        if event == "Merge Request Hook":
            return _merge_request(body)
        return None
    if event == "push":
        return _push(body, _str(body, "after"),
                     _str(_obj(body, "repository"), "default_branch"))
    if event == "pull_request":
        return _pull_request(body)
    return None


def repository_urls(body: dict[str, Any]) -> list[str]:
    """The repository's URLs as projects are compared with them (projects_by_repository):
    lower case, no ".git", no trailing slash."""
    repo = _obj(body, "repository")
    found = {str(repo[k]) for k in ("html_url", "clone_url", "git_url", "ssh_url", "url")
             if isinstance(repo.get(k), str) and repo[k]}
    return sorted({u.lower().removesuffix("/").removesuffix(".git") for u in found})


def _push(body: dict[str, Any], commit: str, default_branch: str) -> Push | None:
    ref = _str(body, "ref")
    if not ref.startswith("refs/heads/") or commit in ("", ZERO_COMMIT):
        return None  # a tag, or a deleted branch
    return Push(branch=ref.removeprefix("refs/heads/"), commit=commit,
                default_branch=default_branch or None)


def _pull_request(body: dict[str, Any]) -> PullRequest | None:
    action = _PR_ACTIONS.get(_str(body, "action"))
    if action is None:
        return None
    pr = _obj(body, "pull_request")
    number = _int(body, "number") or _int(pr, "number")
    if not number:
        raise InvalidValue("number", "missing: it names the pull request")
    base, head = _obj(pr, "base"), _obj(pr, "head")
    return PullRequest(number=number, action=action,  # type: ignore[arg-type]
                       ref=f"refs/pull/{number}/head", base_branch=_str(base, "ref"),
                       title=_str(pr, "title"), from_fork=_from_fork(base, head))


def _from_fork(base: dict[str, Any], head: dict[str, Any]) -> bool:
    """A head in another repository than the base (or in one since deleted)."""
    base_repo, head_repo = base.get("repo"), head.get("repo")
    if not isinstance(base_repo, dict) or not isinstance(head_repo, dict):
        return True
    return (base_repo.get("id"), base_repo.get("full_name")) != \
        (head_repo.get("id"), head_repo.get("full_name"))


def _merge_request(body: dict[str, Any]) -> PullRequest | None:
    attrs = _obj(body, "object_attributes")
    action = _PR_ACTIONS.get(_str(attrs, "action"))
    if action is None:
        return None
    number = _int(attrs, "iid")
    if not number:
        raise InvalidValue("object_attributes.iid", "missing: it names the merge request")
    source, target = attrs.get("source_project_id"), attrs.get("target_project_id")
    return PullRequest(number=number, action=action,  # type: ignore[arg-type]
                       ref=f"refs/merge-requests/{number}/head",
                       base_branch=_str(attrs, "target_branch"), title=_str(attrs, "title"),
                       from_fork=source is None or source != target)


def _obj(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidValue(key, f"expected an object, got {type(value).__name__}")
    return value


def _str(body: dict[str, Any], *keys: str) -> str:
    for key in keys:
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidValue(key, f"expected a string, got {type(value).__name__}")
        return value
    return ""


def _int(body: dict[str, Any], key: str) -> int:
    value = body.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**31:
        raise InvalidValue(key, "expected a positive number")
    return value
