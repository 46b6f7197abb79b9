"""Notifications out: commit statuses to GitHub, Gitea and GitLab (peers that check every
request against the forge's published API description, tests/helpers/forge.py), the
generic JSON webhook, and email to a real SMTP server (aiosmtpd). The retry queue keeps
statuses in order through a forge that fails for a minute, and a `kill -9` of Circus with
deliveries pending loses none."""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from circus.app import config as configuration
from circus.app.context import Context
from circus.db.bus import Bus
from circus.notify import retry_queue
from circus.server.http.app import init_app
from tests.helpers import forge
from tests.helpers.api import ADMIN, ROLE_KEYS, bearer, insert_keys
from tests.helpers.e2e import ADMIN_KEY, NONCE, Circus
from tests.helpers.hooks import Recorder
from tests.helpers.repos import commit_files, git
from tests.helpers.runner import wait_for
from tests.helpers.suite import ROOT, free_port, host_system

FLAKE = (ROOT / "tests" / "data" / "forge-flake.nix").read_text()
COMMIT = "c" * 40
EVAL_CONTEXT = "circus/proj:main"


class Mailbox:
    """aiosmtpd's handler: every message the SMTP server accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], str]] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                              envelope.content.decode()))
        return "250 OK"


def states(peer: forge.ForgePeer, context: str = EVAL_CONTEXT) -> list[str]:
    return [state for _sha, ctx, state in peer.statuses() if ctx == context]


def assert_in_order(seen: list[str], final: str) -> None:
    """Pending first, the final state once and last: how many pendings there are depends
    on how the events fell into batches."""
    assert seen[0] == "pending" and seen[-1] == final, seen
    assert seen.count(final) == 1 and set(seen[:-1]) == {"pending"}, seen


# ---- the queue in this process, on rows written as the roles write them ----

@pytest.fixture
async def queue(make_config: Callable[..., configuration.Config], pool: asyncpg.Pool,
                database_url: str) -> AsyncIterator[Callable[..., Any]]:
    """Start the retry queue with these [notifications] settings; stopped at the end."""
    started: list[tuple[Context, asyncio.Task[None]]] = []
    await insert_keys(pool)

    async def start(**notifications: Any) -> Context:
        bus = Bus(database_url)
        await bus.start()
        cfg = make_config({"notifications": {"retry_poll_interval": 1, "http_timeout": 2,
                                             "allow_private_targets": True,
                                             **notifications}})
        ctx = Context(config=cfg, pool=pool, bus=bus, database_url=database_url)
        started.append((ctx, asyncio.create_task(retry_queue.run(ctx))))
        return ctx

    yield start
    for ctx, task in started:
        ctx.stopping.set()
        await asyncio.wait_for(task, 10)
        await ctx.bus.close()


async def _project(pool: asyncpg.Pool, settings: dict[str, Any] | None = None,
                   url: str = "https://github.com/octo/hello.git") -> tuple[int, int]:
    project_id = await pool.fetchval(
        "INSERT INTO projects (name, repository_url) VALUES ('proj', $1) RETURNING id", url)
    jobset_id = await pool.fetchval(
        "INSERT INTO jobsets (project_id, name) VALUES ($1, 'main') RETURNING id", project_id)
    if settings is not None:
        await pool.execute("INSERT INTO project_notifications (project_id, settings) "
                           "VALUES ($1, $2)", project_id, settings)
    return project_id, jobset_id


async def _evaluate(pool: asyncpg.Pool, jobset_id: int, jobs: dict[str, int | None]) -> int:
    """An evaluation that starts, queues `jobs`, finishes; then each build ends with its
    status (None: stays queued). The id of the evaluation."""
    eval_id = await pool.fetchval(
        "INSERT INTO evaluations (jobset_id, commit_hash, inputs_hash) VALUES ($1, $2, 'h') "
        "RETURNING id", jobset_id, COMMIT)
    ids = {}
    for job in jobs:
        ids[job] = await pool.fetchval(
            "INSERT INTO builds (jobset_id, project_id, job, drv_path, system) "
            "SELECT id, project_id, $2, '/nix/store/' || $2 || '.drv', 'x86_64-linux' "
            "FROM jobsets WHERE id = $1 RETURNING id", jobset_id, job)
        await pool.execute("INSERT INTO evaluation_builds (evaluation_id, build_id) "
                           "VALUES ($1, $2)", eval_id, ids[job])
    await pool.execute("UPDATE evaluations SET status = 'succeeded' WHERE id = $1", eval_id)
    for job, code in jobs.items():
        if code is not None:
            await pool.execute("UPDATE builds SET state = 'finished', buildstatus = $2 "
                               "WHERE id = $1", ids[job], code)
    return eval_id


async def test_statuses_arrive_in_order_through_a_forge_down_for_a_minute(
        queue: Callable[..., Any], pool: asyncpg.Pool) -> None:
    async with await forge.github_peer() as peer:
        await queue(github_api_url=peer.url, github_token=peer.token, max_retry_attempts=8)
        await _project(pool)
        peer.fail_for(60)
        await _evaluate(pool, (await pool.fetchval("SELECT id FROM jobsets")),
                        {"a": 0, "b": 0})
        await wait_for(lambda: states(peer)[-1:] == ["success"], 150)
        assert_in_order(states(peer), "success")
        assert peer.rejected == []
        assert {sha for sha, _, _ in peer.statuses()} == {COMMIT}
        # The peer records a status before its answer reaches the sender, which then
        # marks the delivery done.
        await wait_for(lambda: pool.fetchval(
            "SELECT count(*) = 0 FROM notification_tasks WHERE status <> 'done'"), 10)
        done = await pool.fetch("SELECT status, attempts FROM notification_tasks")
        assert {r["status"] for r in done} == {"done"}
        assert max(r["attempts"] for r in done) > 1


async def test_per_job_statuses_and_gitea_and_gitlab_vocabularies(
        queue: Callable[..., Any], pool: asyncpg.Pool) -> None:
    async with await forge.gitea_peer() as gitea, await forge.gitlab_peer() as gitlab:
        await queue(gitea_url=gitea.url, gitea_token=gitea.token, gitlab_url=gitlab.url,
                    gitlab_token=gitlab.token, commit_status="job")
        _, jobset_id = await _project(pool, {"forge": "gitea", "repository": "o/r"},
                                      url="/srv/local/repo")
        await _evaluate(pool, jobset_id, {"ok": 0, "ko": 1})
        await wait_for(lambda: states(gitea)[-1:] == ["failure"], 30)
        assert states(gitea, f"{EVAL_CONTEXT}:ok")[-1] == "success"
        assert states(gitea, f"{EVAL_CONTEXT}:ko")[-1] == "failure"
        assert gitea.rejected == []

        await pool.execute("UPDATE project_notifications SET settings = $1",
                           {"forge": "gitlab", "repository": "group/sub/r"})
        await _evaluate(pool, jobset_id, {"ok2": 0, "ko2": 1})
        await wait_for(lambda: states(gitlab)[-1:] == ["failed"], 30)
        assert gitlab.rejected == []
        assert all(r.path.startswith("/api/v4/projects/group%2Fsub%2Fr/statuses/")
                   for r in gitlab.requests)


async def test_a_private_target_is_refused_unless_allowed(
        queue: Callable[..., Any], pool: asyncpg.Pool) -> None:
    hook = await Recorder().start()
    try:
        await queue(webhook_url=hook.url, allow_private_targets=False, max_retry_attempts=0)
        _, jobset_id = await _project(pool)
        await _evaluate(pool, jobset_id, {"a": 0})
        rows = await wait_for(lambda: pool.fetch(
            "SELECT * FROM notification_tasks WHERE status = 'failed'"), 30)
        assert "private address" in rows[0]["last_error"]
        assert hook.bodies == []
    finally:
        await hook.close()


async def test_admins_see_and_retry_failed_deliveries(
        queue: Callable[..., Any], pool: asyncpg.Pool, aiohttp_client: Any) -> None:
    ctx = await queue(webhook_url="http://127.0.0.1:9/closed", max_retry_attempts=0)
    client = await aiohttp_client(await init_app(ctx))
    _, jobset_id = await _project(pool)
    await _evaluate(pool, jobset_id, {"a": 0})
    failed = await wait_for(lambda: pool.fetch(
        "SELECT id FROM notification_tasks WHERE status = 'failed'"), 30)
    listed = await client.get("/api/v1/admin/notification-tasks?status=failed", headers=ADMIN)
    page = await listed.json()
    assert listed.status == 200 and page["total"] >= 1
    assert page["items"][0]["last_error"] and page["items"][0]["target"] == "webhook"
    hidden = await client.get("/api/v1/admin/notification-tasks",
                              headers=bearer(ROLE_KEYS["read-only"]))
    assert hidden.status == 403
    bad = await client.get("/api/v1/admin/notification-tasks?status=lost", headers=ADMIN)
    assert bad.status == 400 and "status" in (await bad.json())["error"]
    task_id = failed[0]["id"]
    again = await client.post(f"/api/v1/admin/notification-tasks/{task_id}/retry",
                              headers=ADMIN)
    assert again.status == 200 and (await again.json())["attempts"] == 0
    twice = await client.post(f"/api/v1/admin/notification-tasks/{task_id}/retry",
                              headers=ADMIN)
    assert twice.status in (200, 409)
    missing = await client.post("/api/v1/admin/notification-tasks/999999/retry",
                                headers=ADMIN)
    assert missing.status == 404


async def test_project_settings_show_secrets_only_as_set(
        queue: Callable[..., Any], pool: asyncpg.Pool, aiohttp_client: Any) -> None:
    ctx = await queue()
    client = await aiohttp_client(await init_app(ctx))
    project_id, _ = await _project(pool)
    url = f"/api/v1/projects/{project_id}/notifications"
    token = "ghp_" + "s3cret" * 5
    changed = await client.put(url, headers=ADMIN, json={
        "github_token": token, "forge": "github", "repository": "octo/hello",
        "commit_status": "job"})
    assert changed.status == 200, await changed.text()
    shown = await (await client.get(url)).json()
    assert shown["secrets_set"] == ["github_token"] and shown["effective"]["github"] is True
    assert shown["settings"]["commit_status"] == "job"
    assert token not in json.dumps(shown)
    stored = await pool.fetchrow("SELECT * FROM project_notifications")
    assert token not in json.dumps(stored["settings"]) and token.encode() not in stored["secrets"]
    refused = await client.put(url, headers=bearer(ROLE_KEYS["create-projects"]),
                               json={"forge": "gitea"})
    assert refused.status == 403
    for body, field in (({"forge": "svn"}, "forge"), ({"colour": "red"}, "colour"),
                        ({"repository": "../etc"}, "repository"),
                        ({"webhook_url": "file:///etc/passwd"}, "webhook_url")):
        answer = await client.put(url, headers=ADMIN, json=body)
        assert answer.status == 400 and field in (await answer.json())["error"], body
    removed = await client.put(url, headers=ADMIN, json={"github_token": None})
    assert (await removed.json())["secrets_set"] == []


# ---- real `circus run` processes ----

def _flake_repo(path: Path, fail: str) -> tuple[Path, str]:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    text = FLAKE.replace("@SYSTEM@", host_system()).replace("@NONCE@", NONCE + fail)
    commit = commit_files(path, {"flake.nix": text.replace("@FAIL@", fail)}, "forge test")
    return path, commit


def _signed_push(secret: str, commit: str) -> tuple[bytes, dict[str, str]]:
    payload = forge.github_example("push")
    payload.update(ref="refs/heads/main", after=commit, deleted=False)
    payload["repository"]["default_branch"] = "main"
    body = json.dumps(payload).encode()
    return body, {"Content-Type": "application/json", "X-GitHub-Event": "push",
                  "X-GitHub-Delivery": f"push-{commit[:8]}",
                  "X-Hub-Signature-256": forge.github_sign(secret, body)}


async def _post(api: Circus, path: str, body: bytes, headers: dict[str, str]) -> int:
    def send() -> int:
        request = urllib.request.Request(api.url + path, data=body, headers=headers,
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status
        except urllib.error.HTTPError as err:
            return err.code

    return await asyncio.to_thread(send)


async def test_a_signed_push_ends_as_statuses_email_and_webhook_on_its_commit(
        tmp_path: Path, database_url: str) -> None:
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    hook, slack = await Recorder().start(), await Recorder().start()
    try:
        async with await forge.github_peer() as peer:
            repo, commit = _flake_repo(tmp_path / "repo", fail="1")
            api = Circus(tmp_path, database_url, "server,evaluator,runner", "all", settings={
                "CIRCUS_NOTIFICATIONS__GITHUB_API_URL": peer.url,
                "CIRCUS_NOTIFICATIONS__GITHUB_TOKEN": peer.token,
                "CIRCUS_NOTIFICATIONS__ALLOW_PRIVATE_TARGETS": "true",
                "CIRCUS_NOTIFICATIONS__RETRY_POLL_INTERVAL": "1",
                "CIRCUS_NOTIFICATIONS__WEBHOOK_URL": hook.url,
                "CIRCUS_NOTIFICATIONS__SLACK__WEBHOOK_URL": slack.url,
                "CIRCUS_NOTIFICATIONS__SLACK__ON_FAILURE_ONLY": "true",
                "CIRCUS_NOTIFICATIONS__EMAIL__SMTP_HOST": "127.0.0.1",
                "CIRCUS_NOTIFICATIONS__EMAIL__SMTP_PORT": str(smtp.port),
                "CIRCUS_NOTIFICATIONS__EMAIL__FROM_ADDRESS": "circus@example.com",
                "CIRCUS_NOTIFICATIONS__EMAIL__TO_ADDRESSES": '["dev@example.com"]',
            })
            await asyncio.to_thread(api.start)
            try:
                await _push_and_check(api, repo, commit, peer, mailbox, hook)
                # Failures only: the failed build, never the one that built.
                await wait_for(lambda: slack.bodies, 30)
                assert [list(b) for b in slack.bodies] == [["text"]]
                assert "proj:main:bad failed" in slack.bodies[0]["text"]
            finally:
                await asyncio.to_thread(api.stop)
    finally:
        smtp.stop()
        await hook.close()
        await slack.close()


async def _push_and_check(api: Circus, repo: Path, commit: str, peer: forge.ForgePeer,
                          mailbox: Mailbox, hook: Recorder) -> None:
    project = await asyncio.to_thread(api.post, "/api/v1/projects", {
        "name": "proj", "repository_url": f"file://{repo}"})
    await asyncio.to_thread(api.post, f"/api/v1/projects/{project['id']}/jobsets", {
        "name": "main", "branch": "main", "check_interval": 0})
    status, _ = await asyncio.to_thread(
        api.request, "PUT", f"/api/v1/projects/{project['id']}/notifications",
        {"forge": "github", "repository": "octo/hello"}, ADMIN_KEY)
    assert status == 200
    hooks = await asyncio.to_thread(api.post, f"/api/v1/projects/{project['id']}/webhooks",
                                    {"forge": "github"})
    body, headers = _signed_push(hooks["secret"], commit)
    assert await _post(api, f"/api/v1/webhooks/{project['id']}/github", body, headers) == 202

    await wait_for(lambda: states(peer)[-1:] == ["failure"], 180)
    assert_in_order(states(peer), "failure")
    assert {sha for sha, _, _ in peer.statuses()} == {commit}
    assert peer.rejected == []
    first = peer.requests[0]
    assert first.path == f"/repos/octo/hello/statuses/{commit}"
    assert first.headers["Authorization"] == f"Bearer {peer.token}"
    evaluation = (await asyncio.to_thread(
        api.get, f"/api/v1/evaluations?project_id={project['id']}"))["items"][0]
    assert (evaluation["webhook_forge"], evaluation["webhook_delivery"]) == \
        ("github", headers["X-GitHub-Delivery"])
    assert first.body["target_url"].endswith(f"/eval/{evaluation['id']}")

    await wait_for(lambda: mailbox.messages, 30)
    sender, recipients, text = mailbox.messages[0]
    assert sender == "circus@example.com" and recipients == ["dev@example.com"]
    assert "Subject: Circus: build" in text and "proj:main:bad failed" in text
    await wait_for(lambda: {b["event"] for b in hook.bodies} >= {
        "evaluation_started", "evaluation_finished", "build_finished"}, 30)
    finished = {b["job"]: b["buildstatus"] for b in hook.bodies
                if b["event"] == "build_finished"}
    assert finished == {"good": 0, "bad": 1}


async def test_deliveries_pending_at_a_kill_are_sent_after_restart(
        tmp_path: Path, database_url: str, pool: asyncpg.Pool) -> None:
    async with await forge.github_peer() as peer:
        settings = {"CIRCUS_NOTIFICATIONS__GITHUB_API_URL": peer.url,
                    "CIRCUS_NOTIFICATIONS__GITHUB_TOKEN": peer.token,
                    "CIRCUS_NOTIFICATIONS__ALLOW_PRIVATE_TARGETS": "true",
                    "CIRCUS_NOTIFICATIONS__RETRY_POLL_INTERVAL": "1",
                    "CIRCUS_NOTIFICATIONS__HTTP_TIMEOUT": "2"}
        server = Circus(tmp_path, database_url, "server", "server", settings=settings)
        await asyncio.to_thread(server.start)
        peer.fail_for(600)
        _, jobset_id = await _project(pool)
        await _evaluate(pool, jobset_id, {"a": 0, "b": 1})
        await wait_for(lambda: pool.fetchval(
            "SELECT count(*) FROM notification_tasks WHERE attempts >= 1"), 30)
        server.signal(signal.SIGKILL)
        await asyncio.to_thread(server.wait)
        assert peer.statuses() == []
        peer.fail_for(0)
        again = Circus(tmp_path, database_url, "server", "again", settings=settings)
        await asyncio.to_thread(again.start)
        try:
            await wait_for(lambda: states(peer)[-1:] == ["failure"], 60)
            await wait_for(lambda: pool.fetchval(
                "SELECT count(*) = 0 FROM notification_tasks WHERE status <> 'done'"), 10)
        finally:
            await asyncio.to_thread(again.stop)
        assert_in_order(states(peer), "failure")
        rows = await pool.fetch("SELECT status FROM notification_tasks")
        assert {r["status"] for r in rows} == {"done"}


async def _redirecting(received: list[str]) -> tuple[web.AppRunner, int]:
    """/away redirects to another host, /moved within this one, to /landed."""
    port = free_port()

    async def away(_request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.2:{port}/landed")

    async def moved(_request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect("/landed")

    async def landed(request: web.Request) -> web.Response:
        received.append(request.host)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/away", away)
    app.router.add_post("/moved", moved)
    app.router.add_post("/landed", landed)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    return runner, port


@pytest.mark.parametrize("path", ["away", "moved"])
async def test_redirects_are_followed_only_within_the_same_host(
        queue: Callable[..., Any], pool: asyncpg.Pool, path: str) -> None:
    """A webhook endpoint that redirects to another host (our request would carry its
    body there) is not followed; one that moves within its host is."""
    received: list[str] = []
    runner, port = await _redirecting(received)
    try:
        await queue(webhook_url=f"http://127.0.0.1:{port}/{path}", max_retry_attempts=0)
        _, jobset_id = await _project(pool)
        await _evaluate(pool, jobset_id, {"a": None})
        if path == "away":
            failed = await wait_for(lambda: pool.fetch(
                "SELECT last_error FROM notification_tasks WHERE status = 'failed'"), 30)
            assert "redirected to another host" in failed[0]["last_error"]
            assert received == []
        else:
            await wait_for(lambda: len(received) == 2, 30)
            assert set(received) == {f"127.0.0.1:{port}"}
    finally:
        await runner.cleanup()
