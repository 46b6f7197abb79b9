"""Webhooks in: per-project secrets, each forge's signature, deliveries once, pushes that
trigger the jobsets of their branch, pull requests as jobsets, Hydra's push-github.

Payloads are the forges' published examples (@octokit/webhooks-examples) or built and
checked against their published types (tests/helpers/forge.py); GitHub's signatures are
made by GitHub's own implementation (@octokit/webhooks-methods)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from circus.app.context import Context
from circus.db.bus import Bus
from circus.server.http.app import init_app
from circus.services import forge as forge_service
from tests.helpers import forge
from tests.helpers.api import ADMIN, ROLE_KEYS, bearer, insert_keys, seed_jobset, seed_project
from tests.helpers.evaluator import evaluate_now
from tests.helpers.repos import commit_files, git
from tests.helpers.suite import ROOT, host_system

COMMIT = "a" * 40


async def _webhook(client: TestClient, project_id: int, kind: str = "github") -> str:
    resp = await client.post(f"/api/v1/projects/{project_id}/webhooks", headers=ADMIN,
                             json={"forge": kind})
    assert resp.status == 201, await resp.text()
    return (await resp.json())["secret"]


def _github_push(branch: str = "main", commit: str = COMMIT) -> dict[str, Any]:
    payload = forge.github_example("push")
    payload["ref"] = f"refs/heads/{branch}"
    payload["after"] = commit
    payload["deleted"] = False
    payload["repository"]["default_branch"] = "main"
    return payload


async def _deliver_github(client: TestClient, project_id: int, secret: str,
                          payload: dict[str, Any], event: str = "push",
                          delivery: str = "d-1", signature: str | None = None) -> Any:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "X-GitHub-Event": event,
               "X-GitHub-Delivery": delivery,
               "X-Hub-Signature-256": signature or forge.github_sign(secret, body)}
    return await client.post(f"/api/v1/webhooks/{project_id}/github", data=body,
                             headers=headers)


async def _setup(client: TestClient) -> tuple[int, int]:
    project = await seed_project(client)
    jobset = await seed_jobset(client, project["id"])
    resp = await client.put(f"/api/v1/projects/{project['id']}/jobsets/{jobset['id']}",
                            headers=ADMIN, json={"branch": "main", "check_interval": 0})
    assert resp.status == 200, await resp.text()
    return project["id"], jobset["id"]


async def _trigger(pool: asyncpg.Pool, jobset_id: int) -> asyncpg.Record:
    return await pool.fetchrow(
        "SELECT j.trigger_time, d.delivery, d.forge FROM jobsets j "
        "LEFT JOIN webhook_deliveries d ON d.id = j.trigger_delivery WHERE j.id = $1",
        jobset_id)


async def test_a_webhook_secret_is_shown_once_and_stored_sealed(
        client: TestClient, pool: asyncpg.Pool) -> None:
    project = await seed_project(client)
    secret = await _webhook(client, project["id"])
    listed = await (await client.get(f"/api/v1/projects/{project['id']}/webhooks")).json()
    assert [w["forge"] for w in listed["items"]] == ["github"]
    assert secret not in json.dumps(listed)
    stored = await pool.fetchval("SELECT secret FROM project_webhooks")
    assert secret.encode() not in bytes(stored)
    again = await client.post(f"/api/v1/projects/{project['id']}/webhooks", headers=ADMIN,
                              json={"forge": "github"})
    assert again.status == 409
    refused = await client.post(f"/api/v1/projects/{project['id']}/webhooks",
                                headers=bearer(ROLE_KEYS["create-projects"]),
                                json={"forge": "gitea"})
    assert refused.status == 403
    unknown = await client.post(f"/api/v1/projects/{project['id']}/webhooks", headers=ADMIN,
                                json={"forge": "bitbucket"})
    assert unknown.status == 400 and "forge" in (await unknown.json())["error"]


async def test_a_signed_push_triggers_the_branch_jobset_once(
        client: TestClient, pool: asyncpg.Pool) -> None:
    project_id, jobset_id = await _setup(client)
    other = await seed_jobset(client, project_id, "release")
    await client.put(f"/api/v1/projects/{project_id}/jobsets/{other['id']}", headers=ADMIN,
                     json={"branch": "release", "check_interval": 0})
    secret = await _webhook(client, project_id)
    resp = await _deliver_github(client, project_id, secret, _github_push())
    assert resp.status == 202, await resp.text()
    answer = await resp.json()
    assert answer["jobsets"] == ["main"] and answer["delivery"] == "d-1"
    row = await _trigger(pool, jobset_id)
    assert row["trigger_time"] is not None and row["delivery"] == "d-1"
    assert (await _trigger(pool, other["id"]))["trigger_time"] is None

    # The same delivery again (a forge's redelivery) triggers nothing.
    await pool.execute("UPDATE jobsets SET trigger_time = NULL WHERE id = $1", jobset_id)
    again = await _deliver_github(client, project_id, secret, _github_push())
    assert again.status == 200 and (await again.json())["duplicate"] is True
    assert (await _trigger(pool, jobset_id))["trigger_time"] is None
    assert await pool.fetchval("SELECT count(*) FROM webhook_deliveries") == 1


async def test_forged_replayed_and_oversized_deliveries_change_nothing(
        client: TestClient, pool: asyncpg.Pool) -> None:
    project_id, jobset_id = await _setup(client)
    secret = await _webhook(client, project_id)
    payload = _github_push()
    forged = await _deliver_github(client, project_id, secret, payload,
                                   signature=forge.github_sign("not-the-secret",
                                                               json.dumps(payload).encode()))
    assert forged.status == 401
    assert "X-Hub-Signature-256" in (await forged.json())["error"]
    body = json.dumps(payload).encode()
    unsigned = await client.post(f"/api/v1/webhooks/{project_id}/github", data=body,
                                 headers={"X-GitHub-Event": "push",
                                          "Content-Type": "application/json"})
    assert unsigned.status == 401
    huge = b'{"x": "' + b"a" * (6 * 1024 * 1024) + b'"}'
    too_big = await client.post(f"/api/v1/webhooks/{project_id}/github", data=huge,
                                headers={"X-GitHub-Event": "push",
                                         "X-Hub-Signature-256": forge.github_sign(secret, huge),
                                         "Content-Type": "application/json"})
    assert too_big.status == 413
    bad_json = b"{not json"
    malformed = await client.post(
        f"/api/v1/webhooks/{project_id}/github", data=bad_json,
        headers={"X-GitHub-Event": "push", "Content-Type": "application/json",
                 "X-Hub-Signature-256": forge.github_sign(secret, bad_json)})
    assert malformed.status == 400
    wrong_type = {**payload, "ref": 12}
    typed = await _deliver_github(client, project_id, secret, wrong_type, delivery="d-2")
    assert typed.status == 400 and "ref" in (await typed.json())["error"]
    nobody = await _deliver_github(client, 999999, secret, payload)
    assert nobody.status == 404
    assert (await _trigger(pool, jobset_id))["trigger_time"] is None
    assert await pool.fetchval("SELECT count(*) FROM webhook_deliveries") == 0


async def test_a_ping_and_a_tag_are_answered_and_ignored(
        client: TestClient, pool: asyncpg.Pool) -> None:
    project_id, jobset_id = await _setup(client)
    secret = await _webhook(client, project_id)
    ping = await _deliver_github(client, project_id, secret, forge.github_example("ping"),
                                 event="ping", delivery="p-1")
    assert ping.status == 200 and (await ping.json())["accepted"] is False
    tag = {**_github_push(), "ref": "refs/tags/v1"}
    tagged = await _deliver_github(client, project_id, secret, tag, delivery="t-1")
    assert tagged.status == 200
    assert (await _trigger(pool, jobset_id))["trigger_time"] is None


async def test_deliveries_past_the_rate_limit_get_429(
        aiohttp_client: Any, context: Any, pool: asyncpg.Pool) -> None:
    context.config.webhooks.rate_limit_per_minute = 2
    client = await aiohttp_client(await init_app(context))
    project_id, _ = await _setup(client)
    secret = await _webhook(client, project_id)
    # Forged deliveries are refused before they count: they cannot use up the project's.
    forged = [(await _deliver_github(client, project_id, "guess", _github_push(),
                                     delivery=f"f-{n}")).status for n in range(3)]
    assert forged == [401, 401, 401]
    statuses = [(await _deliver_github(client, project_id, secret, _github_push(),
                                       delivery=f"r-{n}")).status for n in range(3)]
    assert statuses == [202, 202, 429]


async def test_gitea_forgejo_and_gitlab_sign_their_own_way(
        client: TestClient, pool: asyncpg.Pool) -> None:
    project_id, jobset_id = await _setup(client)
    for kind in ("gitea", "forgejo", "gitlab"):
        secret = await _webhook(client, project_id, kind)
        if kind == "gitlab":
            payload = forge.gitlab_push_event("https://gitlab.example/o/r.git",
                                              "refs/heads/main", COMMIT)
            headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": secret,
                       "X-Gitlab-Event-UUID": f"{kind}-1"}
            wrong = {**headers, "X-Gitlab-Token": secret + "x"}
        else:
            payload = forge.gitea_push_event("https://gitea.example/o/r.git",
                                             "refs/heads/main", COMMIT)
            body = json.dumps(payload).encode()
            mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            prefix = "X-Forgejo" if kind == "forgejo" else "X-Gitea"
            headers = {f"{prefix}-Event": "push", f"{prefix}-Signature": mac,
                       f"{prefix}-Delivery": f"{kind}-1"}
            wrong = {**headers, f"{prefix}-Signature": "0" * 64}
        body = json.dumps(payload).encode()
        url = f"/api/v1/webhooks/{project_id}/{kind}"
        bad = await client.post(url, data=body, headers={**wrong,
                                                         "Content-Type": "application/json"})
        assert bad.status == 401, kind
        await pool.execute("UPDATE jobsets SET trigger_time = NULL")
        good = await client.post(url, data=body, headers={**headers,
                                                          "Content-Type": "application/json"})
        assert good.status == 202, (kind, await good.text())
        row = await _trigger(pool, jobset_id)
        assert (row["forge"], row["delivery"]) == (kind, f"{kind}-1")


async def test_a_pull_request_gets_a_hidden_jobset_and_forks_are_refused(
        client: TestClient, pool: asyncpg.Pool) -> None:
    project_id, _ = await _setup(client)
    secret = await _webhook(client, project_id)
    payload = forge.github_example("pull_request", "opened")
    payload["pull_request"]["base"]["ref"] = "main"
    payload["pull_request"]["head"]["repo"] = payload["pull_request"]["base"]["repo"]
    number = payload["number"]

    off = await _deliver_github(client, project_id, secret, payload, "pull_request", "pr-0")
    assert off.status == 200 and "does not build pull requests" in (await off.json())["reason"]
    resp = await client.put(f"/api/v1/projects/{project_id}", headers=ADMIN,
                            json={"pull_requests": True})
    assert resp.status == 200 and (await resp.json())["pull_requests"] is True

    opened = await _deliver_github(client, project_id, secret, payload, "pull_request", "pr-1")
    assert opened.status == 202, await opened.text()
    assert (await opened.json())["jobsets"] == [f"pr-{number}"]
    row = await pool.fetchrow("SELECT * FROM jobsets WHERE name = $1", f"pr-{number}")
    assert (row["hidden"], row["branch"], row["pull_request"], row["check_interval"]) == \
        (True, f"refs/pull/{number}/head", number, 0)
    assert row["trigger_time"] is not None

    fork = forge.github_example("pull_request", "opened")
    fork["number"] = fork["pull_request"]["number"] = number + 1
    fork["pull_request"]["head"]["repo"] = {**fork["pull_request"]["base"]["repo"],
                                            "id": 1, "full_name": "mallory/fork"}
    refused = await _deliver_github(client, project_id, secret, fork, "pull_request", "pr-2")
    assert refused.status == 200 and "fork" in (await refused.json())["reason"]
    assert await pool.fetchval("SELECT count(*) FROM jobsets WHERE name = $1",
                               f"pr-{number + 1}") == 0

    closed = {**payload, "action": "closed"}
    done = await _deliver_github(client, project_id, secret, closed, "pull_request", "pr-3")
    assert done.status == 202
    row = await pool.fetchrow("SELECT enabled, closed_at FROM jobsets WHERE name = $1",
                              f"pr-{number}")
    assert row["enabled"] == 0 and row["closed_at"] is not None


async def test_hydra_push_github_needs_the_projects_signature(
        client: TestClient, pool: asyncpg.Pool) -> None:
    payload = _github_push()
    repo_url = payload["repository"]["clone_url"]
    resp = await client.post("/api/v1/projects", headers=ADMIN,
                             json={"name": "hy", "repository_url": repo_url})
    assert resp.status == 201, await resp.text()
    project_id = (await resp.json())["id"]
    jobset = await seed_jobset(client, project_id)
    await client.put(f"/api/v1/projects/{project_id}/jobsets/{jobset['id']}", headers=ADMIN,
                     json={"branch": "main"})
    secret = await _webhook(client, project_id)
    body = json.dumps(payload).encode()
    unsigned = await client.post("/api/push-github", data=body,
                                 headers={"Content-Type": "application/json"})
    assert unsigned.status == 401
    signed = await client.post("/api/push-github", data=body, headers={
        "Content-Type": "application/json", "X-GitHub-Event": "push",
        "X-Hub-Signature-256": forge.github_sign(secret, body)})
    assert signed.status == 200, await signed.text()
    assert (await signed.json()) == {"jobsetsTriggered": ["hy:main"]}
    assert (await _trigger(pool, jobset["id"]))["trigger_time"] is not None


async def test_a_pull_request_jobset_evaluates_the_request_head(
        aiohttp_client: Any, make_config: Any, pool: asyncpg.Pool, database_url: str,
        make_repo: Any) -> None:
    """A real repository whose refs/pull/7/head is a commit on no branch: the request's
    jobset evaluates that commit, and the evaluation names the delivery."""

    flake = (ROOT / "tests" / "data" / "forge-flake.nix").read_text().replace(
        "@SYSTEM@", host_system()).replace("@NONCE@", "pr").replace("@FAIL@", "0")
    repo = make_repo({"flake.nix": flake})
    git(repo, "checkout", "-q", "-b", "feature")
    head = commit_files(repo, {"flake.nix": flake.replace("good builds", "good, changed")},
                        "the request's change")
    git(repo, "update-ref", "refs/pull/7/head", head)
    git(repo, "checkout", "-q", "main")
    git(repo, "branch", "-D", "feature")

    bus = Bus(database_url)
    await bus.start()
    try:
        await insert_keys(pool)
        ctx = Context(config=make_config({"server": {"allowed_url_schemes": ["file"]}}),
                      pool=pool, bus=bus, database_url=database_url)
        client = await aiohttp_client(await init_app(ctx))
        resp = await client.post("/api/v1/projects", headers=ADMIN, json={
            "name": "prs", "repository_url": str(repo), "pull_requests": True})
        assert resp.status == 201, await resp.text()
        project_id = (await resp.json())["id"]
        await client.post(f"/api/v1/projects/{project_id}/jobsets", headers=ADMIN,
                          json={"name": "main", "branch": "main", "check_interval": 0})
        secret = await _webhook(client, project_id)
        payload = forge.github_example("pull_request", "opened")
        payload["number"] = payload["pull_request"]["number"] = 7
        payload["pull_request"]["base"]["ref"] = "main"
        payload["pull_request"]["head"]["repo"] = payload["pull_request"]["base"]["repo"]
        opened = await _deliver_github(client, project_id, secret, payload, "pull_request",
                                       "pr-7")
        assert opened.status == 202, await opened.text()
        jobset_id = await pool.fetchval("SELECT id FROM jobsets WHERE name = 'pr-7'")
        evaluation = await evaluate_now(ctx, jobset_id)
        assert evaluation["status"] == "succeeded", evaluation["error_message"]
        assert evaluation["commit_hash"] == head
        assert await pool.fetchval("SELECT delivery FROM webhook_deliveries WHERE id = $1",
                                   evaluation["webhook_delivery_id"]) == "pr-7"
        jobs = await pool.fetch("SELECT job FROM builds WHERE jobset_id = $1", jobset_id)
        assert sorted(r["job"] for r in jobs) == ["bad", "good"]
    finally:
        await bus.close()


async def test_a_closed_pull_requests_jobset_is_deleted_after_the_retention(
        client: TestClient, context: Context, pool: asyncpg.Pool) -> None:
    project_id, _ = await _setup(client)
    await client.put(f"/api/v1/projects/{project_id}", headers=ADMIN,
                     json={"pull_requests": True})
    secret = await _webhook(client, project_id)
    payload = forge.github_example("pull_request", "opened")
    payload["pull_request"]["head"]["repo"] = payload["pull_request"]["base"]["repo"]
    number = payload["number"]
    await _deliver_github(client, project_id, secret, payload, "pull_request", "o-1")
    await _deliver_github(client, project_id, secret, {**payload, "action": "closed"},
                          "pull_request", "c-1")
    days = context.config.webhooks.pull_request_retention_days
    await forge_service.sweep(pool, context.config)
    assert await pool.fetchval("SELECT count(*) FROM jobsets WHERE name = $1",
                               f"pr-{number}") == 1
    await pool.execute("UPDATE jobsets SET closed_at = now() - make_interval(days => $1 + 1) "
                       "WHERE pull_request = $2", days, number)
    await forge_service.sweep(pool, context.config)
    assert await pool.fetchval("SELECT count(*) FROM jobsets WHERE name = $1",
                               f"pr-{number}") == 0
    assert await pool.fetchval("SELECT count(*) FROM jobsets WHERE name = 'main'") == 1


def _gitea_request(secret: str, fork: bool) -> tuple[dict[str, Any], dict[str, str]]:
    payload = forge.gitea_pull_request_event(
        "https://gitea.example/o/r.git", 5, COMMIT,
        fork_clone_url="https://gitea.example/m/fork.git" if fork else None)
    mac = hmac.new(secret.encode(), json.dumps(payload).encode(), hashlib.sha256).hexdigest()
    return payload, {"X-Gitea-Event": "pull_request", "X-Gitea-Signature": mac,
                     "X-Gitea-Delivery": f"gitea-pr-{fork}"}


def _gitlab_request(secret: str, fork: bool) -> tuple[dict[str, Any], dict[str, str]]:
    payload = forge.gitlab_merge_request_event(
        "https://gitlab.example/o/r.git", 5, COMMIT,
        source_http_url="https://gitlab.example/m/fork.git" if fork else None)
    return payload, {"X-Gitlab-Event": "Merge Request Hook", "X-Gitlab-Token": secret,
                     "X-Gitlab-Event-UUID": f"gitlab-mr-{fork}"}


@pytest.mark.parametrize(("kind", "make", "ref"), [
    ("gitea", _gitea_request, "refs/pull/5/head"),
    ("gitlab", _gitlab_request, "refs/merge-requests/5/head"),
])
async def test_gitea_and_gitlab_requests_become_jobsets_unless_from_a_fork(
        client: TestClient, pool: asyncpg.Pool, kind: str, make: Any, ref: str) -> None:
    project_id, _ = await _setup(client)
    await client.put(f"/api/v1/projects/{project_id}", headers=ADMIN,
                     json={"pull_requests": True})
    secret = await _webhook(client, project_id, kind)
    for fork in (True, False):
        payload, headers = make(secret, fork)
        resp = await client.post(f"/api/v1/webhooks/{project_id}/{kind}",
                                 data=json.dumps(payload).encode(),
                                 headers={**headers, "Content-Type": "application/json"})
        answer = await resp.json()
        if fork:
            assert resp.status == 200 and "fork" in answer["reason"], answer
        else:
            assert resp.status == 202 and answer["jobsets"] == ["pr-5"], answer
    assert await pool.fetchval("SELECT branch FROM jobsets WHERE name = 'pr-5'") == ref
