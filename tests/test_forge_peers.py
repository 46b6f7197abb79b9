"""The forge peers themselves (tests/helpers/forge.py): each accepts what its forge's
published API description allows, and each of its checks can fail — a wrong body, path,
method or token is answered 4xx and kept in `peer.rejected`, never in `peer.requests`.
The payload helpers give payloads that pass the published types, and signatures that
Python's hmac verifies."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.helpers import forge, npm

SHA = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
GITHUB_HEADERS = {"Authorization": "Bearer ghs_test", "Accept": "application/vnd.github+json",
                  "X-GitHub-Api-Version": "2022-11-28"}
GITEA_HEADERS = {"Authorization": "token gitea_test_token"}
GITLAB_HEADERS = {"PRIVATE-TOKEN": "glpat-test"}
STATUS = {"state": "success", "target_url": "http://circus.test/build/1",
          "description": "Build succeeded", "context": "circus/demo:main"}
GITLAB_STATUS = {"state": "success", "name": "circus/demo:main",
                 "target_url": "http://circus.test/build/1", "description": "Build succeeded"}
GITHUB_PATH = f"/repos/octo/demo/statuses/{SHA}"
GITEA_PATH = f"/api/v1/repos/alice/demo/statuses/{SHA}"
GITLAB_PATH = f"/api/v4/projects/group%2Fdemo/statuses/{SHA}"


async def send(peer: forge.ForgePeer, method: str, path: str, headers: dict[str, str],
               body: Any = None, data: bytes | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.request(
            method, peer.url + path, headers=headers, json=body, data=data) as resp:
        return resp.status, await resp.json(content_type=None)


def only_rejection(peer: forge.ForgePeer) -> str:
    assert peer.requests == [] and peer.statuses() == []
    assert len(peer.rejected) == 1, peer.rejected
    return peer.rejected[0][1]


async def test_github_status_is_accepted_and_recorded() -> None:
    async with await forge.github_peer() as peer:
        status, answer = await send(peer, "POST", GITHUB_PATH, GITHUB_HEADERS, STATUS)
        assert status == 201, answer
        assert answer["state"] == "success" and answer["context"] == STATUS["context"]
        assert answer["url"] == peer.url + GITHUB_PATH
        assert peer.rejected == []
        (rec,) = peer.requests
        assert (rec.method, rec.path, rec.status) == ("POST", GITHUB_PATH, 201)
        assert rec.headers["authorization"] == "Bearer ghs_test"
        assert rec.params == {"owner": "octo", "repo": "demo", "sha": SHA}
        assert peer.statuses() == [(SHA, STATUS["context"], "success")]
        # The description's default context when none is given
        await send(peer, "POST", GITHUB_PATH, GITHUB_HEADERS, {"state": "pending"})
        assert peer.statuses()[-1] == (SHA, "default", "pending")


@pytest.mark.parametrize(("method", "path", "headers", "body", "code", "why"), [
    ("POST", GITHUB_PATH, GITHUB_HEADERS, STATUS | {"state": "green"}, 422, "'green'"),
    ("POST", GITHUB_PATH, GITHUB_HEADERS, {"context": "ci"}, 422, "'state' is a required"),
    ("POST", GITHUB_PATH, GITHUB_HEADERS, STATUS | {"context": 7}, 422, "7 is not"),
    ("POST", f"/repos/octo/demo/status/{SHA}", GITHUB_HEADERS, STATUS, 404, "no such path"),
    ("DELETE", GITHUB_PATH, GITHUB_HEADERS, None, 405, "no such operation"),
    ("POST", GITHUB_PATH, {k: v for k, v in GITHUB_HEADERS.items() if k != "Authorization"},
     STATUS, 401, "Authorization"),
    ("POST", GITHUB_PATH, GITHUB_HEADERS | {"Authorization": "Bearer other"}, STATUS, 401,
     "Authorization"),
    ("POST", GITHUB_PATH, {k: v for k, v in GITHUB_HEADERS.items() if k != "Accept"},
     STATUS, 415, "Accept"),
    ("POST", GITHUB_PATH, {k: v for k, v in GITHUB_HEADERS.items()
                           if k != "X-GitHub-Api-Version"}, STATUS, 400, "Api-Version"),
], ids=["state-green", "no-state", "context-not-string", "wrong-path", "wrong-method",
        "no-auth", "wrong-token", "no-accept", "no-api-version"])
async def test_github_peer_rejects(method: str, path: str, headers: dict[str, str],
                                   body: Any, code: int, why: str) -> None:
    async with await forge.github_peer() as peer:
        status, answer = await send(peer, method, path, headers, body)
        assert status == code, answer
        reason = only_rejection(peer)
        assert why in reason, reason
        assert peer.rejected[0][0].status == code


@pytest.mark.parametrize(("content_type", "data", "code", "why"), [
    ("application/json", b"{not json", 400, "Problems parsing JSON"),
    ("text/plain", b'{"state": "success"}', 415, "only application/json"),
    ("application/json", b"", 422, "Missing required request body"),
], ids=["not-json", "not-json-media-type", "no-body"])
async def test_github_peer_rejects_a_body_that_is_not_json(content_type: str, data: bytes,
                                                           code: int, why: str) -> None:
    async with await forge.github_peer() as peer:
        status, _ = await send(peer, "POST", GITHUB_PATH,
                               GITHUB_HEADERS | {"Content-Type": content_type}, data=data)
        assert status == code
        assert why in only_rejection(peer)


async def test_github_operation_not_served_is_told_apart() -> None:
    async with await forge.github_peer() as peer:
        status, answer = await send(peer, "GET", f"/repos/octo/demo/commits/{SHA}/status",
                                    GITHUB_HEADERS)
        assert status == 501, answer
        assert "not served" in only_rejection(peer)


async def test_gitea_status_is_accepted_and_recorded() -> None:
    async with await forge.gitea_peer() as peer:
        status, answer = await send(peer, "POST", GITEA_PATH, GITEA_HEADERS, STATUS)
        assert status == 201, answer
        assert answer["status"] == "success" and answer["context"] == STATUS["context"]
        assert peer.rejected == []
        assert peer.statuses() == [(SHA, STATUS["context"], "success")]
        # Gitea takes a `Bearer` token as well
        status, _ = await send(peer, "POST", GITEA_PATH,
                               {"Authorization": "Bearer gitea_test_token"}, STATUS)
        assert status == 201 and len(peer.requests) == 2


@pytest.mark.parametrize(("method", "path", "headers", "body", "code", "why"), [
    ("POST", GITEA_PATH, GITEA_HEADERS, STATUS | {"state": "green"}, 422, "'green'"),
    ("POST", GITEA_PATH, GITEA_HEADERS, STATUS | {"context": 7}, 422, "7 is not"),
    ("POST", GITEA_PATH, GITEA_HEADERS, STATUS | {"name": "ci"}, 422, "'name' was unexpected"),
    ("POST", f"/api/v1/repos/alice/demo/status/{SHA}", GITEA_HEADERS, STATUS, 404,
     "no such path"),
    ("POST", f"/repos/alice/demo/statuses/{SHA}", GITEA_HEADERS, STATUS, 404, "no such path"),
    ("PUT", GITEA_PATH, GITEA_HEADERS, STATUS, 405, "no such operation"),
    ("GET", f"/api/v1/repos/alice/demo/commits/{SHA}/status", GITEA_HEADERS, None, 501,
     "not served"),
    ("POST", GITEA_PATH, {}, STATUS, 401, "Authorization"),
    ("POST", GITEA_PATH, {"Authorization": "token other"}, STATUS, 401, "Authorization"),
], ids=["state-green", "context-not-string", "unknown-field", "wrong-path", "no-api-prefix",
        "wrong-method", "not-served", "no-auth", "wrong-token"])
async def test_gitea_peer_rejects(method: str, path: str, headers: dict[str, str],
                                  body: Any, code: int, why: str) -> None:
    async with await forge.gitea_peer() as peer:
        status, answer = await send(peer, method, path, headers, body)
        assert status == code, answer
        reason = only_rejection(peer)
        assert why in reason, reason


async def test_gitlab_status_is_accepted_and_recorded() -> None:
    async with await forge.gitlab_peer() as peer:
        status, answer = await send(peer, "POST", GITLAB_PATH, GITLAB_HEADERS, GITLAB_STATUS)
        assert status == 201, answer
        assert answer["status"] == "success" and answer["name"] == GITLAB_STATUS["name"]
        (rec,) = peer.requests
        assert rec.path == GITLAB_PATH
        assert rec.params == {"projectId": "group/demo", "sha": SHA}
        assert peer.statuses() == [(SHA, GITLAB_STATUS["name"], "success")]


@pytest.mark.parametrize(("method", "path", "headers", "body", "code", "why"), [
    # GitHub's and Gitea's "failure" is not a GitLab state
    ("POST", GITLAB_PATH, GITLAB_HEADERS, GITLAB_STATUS | {"state": "failure"}, 400,
     "'failure'"),
    ("POST", GITLAB_PATH, GITLAB_HEADERS, {"name": "ci"}, 400, "'state' is a required"),
    ("POST", GITLAB_PATH, GITLAB_HEADERS, GITLAB_STATUS | {"targetUrl": "x"}, 400,
     "'targetUrl' was unexpected"),
    # the project's path not URL-encoded: not the route
    ("POST", f"/api/v4/projects/group/demo/statuses/{SHA}", GITLAB_HEADERS, GITLAB_STATUS,
     404, "editStatus"),
    ("GET", GITLAB_PATH, GITLAB_HEADERS, None, 405, "POST"),
    ("POST", GITLAB_PATH, {}, GITLAB_STATUS, 401, "PRIVATE-TOKEN"),
    ("POST", GITLAB_PATH, {"PRIVATE-TOKEN": "other"}, GITLAB_STATUS, 401, "PRIVATE-TOKEN"),
], ids=["state-failure", "no-state", "camel-case-key", "path-not-encoded", "wrong-method",
        "no-auth", "wrong-token"])
async def test_gitlab_peer_rejects(method: str, path: str, headers: dict[str, str],
                                   body: Any, code: int, why: str) -> None:
    async with await forge.gitlab_peer() as peer:
        status, answer = await send(peer, method, path, headers, body)
        assert status == code, answer
        reason = only_rejection(peer)
        assert why in reason, reason


async def test_gitlab_peer_rejects_a_form_body() -> None:
    async with await forge.gitlab_peer() as peer:
        status, _ = await send(peer, "POST", GITLAB_PATH,
                               GITLAB_HEADERS | {"Content-Type":
                                                 "application/x-www-form-urlencoded"},
                               data=b"state=success&name=ci")
        assert status == 415
        only_rejection(peer)
        assert peer.rejected[0][0].body == {"state": "success", "name": "ci"}


async def test_fail_for_answers_valid_requests_with_the_status_then_recovers() -> None:
    async with await forge.github_peer() as peer:
        peer.fail_for(0.3, status=503)
        status, _ = await send(peer, "POST", GITHUB_PATH, GITHUB_HEADERS, STATUS)
        assert status == 503
        assert [r.status for r in peer.requests] == [503] and peer.statuses() == []
        # An invalid request is still rejected for what it is
        status, _ = await send(peer, "POST", GITHUB_PATH, GITHUB_HEADERS, {"state": "x"})
        assert status == 422 and len(peer.rejected) == 1
        await asyncio.sleep(0.35)
        status, _ = await send(peer, "POST", GITHUB_PATH, GITHUB_HEADERS, STATUS)
        assert status == 201
        assert peer.statuses() == [(SHA, STATUS["context"], "success")]


async def test_close_frees_the_port() -> None:
    peer = await forge.gitea_peer()
    url = peer.url
    await peer.close()
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as session:
            await session.get(url + GITEA_PATH)


@pytest.mark.parametrize(("event", "action"), [
    ("push", None), ("ping", None), ("pull_request", "opened"),
    ("pull_request", "synchronize"), ("pull_request", "closed")])
def test_github_examples_load(event: str, action: str | None) -> None:
    payload = forge.github_example(event, action)
    assert payload["repository"]["full_name"]
    if action is not None:
        assert payload["action"] == action and payload["pull_request"]["head"]["sha"]
    # a deep copy: changing it changes no later example
    payload["repository"]["full_name"] = "changed"
    assert forge.github_example(event, action)["repository"]["full_name"] != "changed"


def test_github_example_that_does_not_exist() -> None:
    with pytest.raises(KeyError, match="opened"):
        forge.github_example("pull_request", "no-such-action")
    with pytest.raises(KeyError):
        forge.github_example("no-such-event")


def test_github_signature_verifies_with_hmac() -> None:
    body = json.dumps(forge.github_example("push")).encode()
    signature = forge.github_sign("It's a Secret to Everybody", body)
    expected = hmac.new(b"It's a Secret to Everybody", body, hashlib.sha256).hexdigest()
    assert signature == f"sha256={expected}"
    assert forge.github_sign("another", body) != signature


def test_gitea_signature_is_hex_hmac() -> None:
    body = b'{"ref":"refs/heads/main"}'
    assert hmac.compare_digest(forge.gitea_sign("s", body),
                               hmac.new(b"s", body, hashlib.sha256).hexdigest())


def test_gitea_payloads_pass_the_published_types() -> None:
    push = forge.gitea_push_event("https://gitea.test/alice/demo.git", "refs/heads/main",
                                  "a" * 40)
    assert push["after"] == "a" * 40 and push["head_commit"]["id"] == "a" * 40
    assert push["repository"]["clone_url"] == "https://gitea.test/alice/demo.git"
    assert push["repository"]["default_branch"] == "main"
    pull = forge.gitea_pull_request_event(
        "https://gitea.test/alice/demo.git", 7, "b" * 40, action="synchronized",
        fork_clone_url="https://gitea.test/bob/demo.git")
    assert pull["number"] == 7 and pull["pull_request"]["head"]["sha"] == "b" * 40
    assert pull["pull_request"]["head"]["repo"]["full_name"] == "bob/demo"
    assert pull["pull_request"]["base"]["repo"]["full_name"] == "alice/demo"


@pytest.mark.parametrize(("change", "why"), [
    (lambda p: p.pop("after"), "'after' is a required"),
    (lambda p: p.update(total_commits="1"), "'1' is not of type 'number'"),
    (lambda p: p["repository"].update(clone_uri="x"), "'clone_uri' was unexpected"),
    (lambda p: p["commits"][0].update(id=5), "5 is not of type 'string'"),
])
def test_gitea_payload_that_breaks_the_types_is_refused(change: Any, why: str) -> None:
    push = forge.gitea_push_event("https://gitea.test/alice/demo.git", "refs/heads/main",
                                  "a" * 40)
    change(push)
    with pytest.raises(ValueError, match=why):
        forge.validate_gitea_event("push", push)


def test_gitea_pull_request_action_is_one_of_giteas() -> None:
    with pytest.raises(ValueError, match="'synchronize' is not one of"):
        forge.gitea_pull_request_event("https://gitea.test/alice/demo.git", 7, "b" * 40,
                                       action="synchronize")


def test_gitlab_payloads_pass_the_published_types() -> None:
    push = forge.gitlab_push_event("https://gitlab.test/group/demo.git", "refs/heads/main",
                                   "c" * 40)
    assert push["object_kind"] == "push" and push["checkout_sha"] == "c" * 40
    assert push["project"]["git_http_url"] == "https://gitlab.test/group/demo.git"
    merge = forge.gitlab_merge_request_event("https://gitlab.test/group/demo.git", 4,
                                             "d" * 40, action="update")
    attributes = merge["object_attributes"]
    assert (attributes["iid"], attributes["action"]) == (4, "update")
    assert attributes["last_commit"]["id"] == "d" * 40
    assert attributes["source_project_id"] == attributes["target_project_id"]


@pytest.mark.parametrize(("change", "why"), [
    (lambda p: p.pop("checkout_sha"), "'checkout_sha' is a required"),
    (lambda p: p.update(object_kind="tag_push"), "'push' was expected"),
    (lambda p: p["project"].update(visibility_level="public"), "is not of type 'number'"),
])
def test_gitlab_payload_that_breaks_the_types_is_refused(change: Any, why: str) -> None:
    push = forge.gitlab_push_event("https://gitlab.test/group/demo.git", "refs/heads/main",
                                   "c" * 40)
    change(push)
    with pytest.raises(ValueError, match=why):
        forge.validate_gitlab_event("push", push)


def test_a_machine_without_npm_fails_with_a_clear_message(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(npm, "PREFIX", tmp_path / "npm")
    monkeypatch.setattr(npm, "_MARKER", tmp_path / "npm" / ".installed")
    monkeypatch.setattr(npm, "_installed", False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="`npm` is not on PATH"):
        npm.ensure()
