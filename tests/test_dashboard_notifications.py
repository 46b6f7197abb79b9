"""The dashboard's notifications: a project's page shows each notifier and which secrets
are set (never a secret), an admin changes the settings and the webhooks (a new
webhook's secret shown once), and /admin/notifications lists deliveries and retries a
failed one. Non-admins are refused by the server, not only shown fewer buttons."""

from __future__ import annotations

import re

import asyncpg
from aiohttp.test_utils import TestClient

from circus.server.http.keys import CONTEXT
from circus.services import forge
from tests.helpers.api import ADMIN_KEY, READONLY_KEY, seed_project
from tests.helpers.dashboard import login

TOKEN = "ghp_very_secret_token_4242"
SLACK = "https://hooks.slack.example/services/T0/B0/secretpart"
SECRET = re.compile(r'id="new-webhook-secret">([^<]+)<')


def _settings_form(token: str, **fields: str) -> list[tuple[str, str]]:
    """The settings form as a browser posts it (the checkbox after its hidden "off")."""
    form = [("csrf_token", token), ("slack_on_failure_only", "off")]
    form += [(k, v) for k, v in fields.items() if k != "slack_on_failure_only"]
    if fields.get("slack_on_failure_only") == "on":
        form.append(("slack_on_failure_only", "on"))
    return form


async def _failed_delivery(pool: asyncpg.Pool, project_id: int) -> int:
    return await pool.fetchval(
        "INSERT INTO notification_tasks (target, project_id, sequence_key, payload, status,"
        " attempts, max_attempts, last_error, done_at) VALUES ('webhook', $1, $2,"
        " '{\"kind\":\"webhook\",\"body\":{}}', 'failed', 3, 3, 'boom', now()) RETURNING id",
        project_id, f"webhook:{project_id}")


async def test_settings_show_secrets_as_set_never_their_value(client: TestClient,
                                                              pool: asyncpg.Pool) -> None:
    project = await seed_project(client, "demo")
    page = await (await client.get("/project/demo/notifications")).text()
    assert "does not send notifications yet" not in page
    assert 'id="notifiers"' in page and "found from the repository URL" in page

    token = await login(client, ADMIN_KEY)
    resp = await client.post(f"/dashboard/project/{project['id']}/notifications",
                             data=_settings_form(
                                 token, forge="github", repository="owner/name",
                                 commit_status="job", github_token=TOKEN,
                                 slack_webhook_url=SLACK, email_to_addresses="a@x.org, b@x.org",
                                 slack_on_failure_only="on"),
                             allow_redirects=False)
    assert resp.status == 303, await resp.text()
    assert resp.headers["Location"].startswith("/project/demo/notifications?notice=")
    stored = await pool.fetchrow("SELECT settings, secrets FROM project_notifications"
                                 " WHERE project_id = $1", project["id"])
    assert TOKEN.encode() not in bytes(stored["secrets"]), "stored sealed"
    assert TOKEN not in str(stored["settings"])

    for who in ("admin", "visitor"):
        if who == "visitor":
            client.session.cookie_jar.clear()
        resp = await client.get("/project/demo/notifications")
        page = await resp.text()
        assert resp.status == 200
        assert TOKEN not in page and SLACK not in page and "secretpart" not in page, who
        secrets = page[page.index('id="secrets"'):]
        assert re.search(r"github_token</td><td><span class=\"status status-ok\">set", secrets)
        assert re.search(r"gitlab_token</td><td><span class=\"muted\">not set", secrets)
        assert "github: owner/name" in page and "one per job" in page
        assert re.search(r"GitHub commit status</td><td><span class=\"status status-ok\">on"
                         r"</span></td><td class=\"small\">project", page)
        assert re.search(r"Slack</td><td><span class=\"status status-ok\">on", page)
        assert "failures only" in page and "a@x.org, b@x.org" in page
        assert ('id="notification-settings"' in page) == (who == "admin"), who

    # An empty secret keeps its value; "remove" removes it; an empty field follows the
    # server again.
    token = await login(client, ADMIN_KEY)
    resp = await client.post(f"/dashboard/project/{project['id']}/notifications",
                             data=_settings_form(token, forge="", repository="",
                                                 commit_status="", github_token="",
                                                 remove_slack_webhook_url="on"),
                             allow_redirects=False)
    assert resp.status == 303, await resp.text()
    shown = await (await client.get(f"/api/v1/projects/{project['id']}/notifications")).json()
    assert shown["secrets_set"] == ["github_token"]
    assert shown["settings"] == {"email_to_addresses": ["a@x.org", "b@x.org"]}
    assert shown["effective"]["slack"] is False

    # A bad value is the API's 400, named, on an HTML page; nothing changes.
    resp = await client.post(f"/dashboard/project/{project['id']}/notifications",
                             data=_settings_form(token, repository="not a repository"))
    assert resp.status == 400 and resp.content_type == "text/html"
    assert "repository: expected" in await resp.text()
    resp = await client.post(f"/dashboard/project/{project['id']}/notifications",
                             data=_settings_form(token, github_token="new",
                                                 remove_github_token="on"))
    assert resp.status == 400 and "not both" in await resp.text()
    assert (await (await client.get(f"/api/v1/projects/{project['id']}/notifications"))
            .json())["settings"] == shown["settings"]


async def test_only_an_admin_changes_settings_and_webhooks(client: TestClient,
                                                           pool: asyncpg.Pool) -> None:
    project = await seed_project(client, "demo")
    base = f"/dashboard/project/{project['id']}"
    resp = await client.post(f"{base}/notifications", data={"github_token": TOKEN})
    assert resp.status == 401 and "Please log in" in await resp.text()

    token = await login(client, READONLY_KEY)
    page = await (await client.get("/project/demo/notifications")).text()
    assert 'id="notification-settings"' not in page and 'id="create-webhook"' not in page
    resp = await client.post(f"{base}/notifications",
                             data=_settings_form(token, github_token=TOKEN))
    assert resp.status == 403 and "may not administer" in await resp.text()
    resp = await client.post(f"{base}/webhooks", data={"csrf_token": token,
                                                       "forge": "github"})
    assert resp.status == 403 and "may not administer" in await resp.text()
    # Without the CSRF token even an admin's session is refused.
    client.session.cookie_jar.clear()
    await login(client, ADMIN_KEY)
    resp = await client.post(f"{base}/notifications", data={"github_token": TOKEN})
    assert resp.status == 403 and "CSRF" in await resp.text()
    assert await pool.fetchval("SELECT count(*) FROM project_notifications") == 0
    assert await pool.fetchval("SELECT count(*) FROM project_webhooks") == 0


async def test_a_new_webhook_shows_its_secret_once(client: TestClient,
                                                   pool: asyncpg.Pool) -> None:
    project = await seed_project(client, "demo")
    token = await login(client, ADMIN_KEY)
    resp = await client.post("/dashboard/project/demo/webhooks",
                             data={"csrf_token": token, "forge": "gitea"},
                             allow_redirects=False)
    page = await resp.text()
    assert resp.status == 200, page
    assert resp.headers["Cache-Control"] == "no-store"
    secret = SECRET.search(page).group(1)
    config = client.app[CONTEXT].config
    assert await forge.secret_of(pool, config, project["id"], "gitea") == secret
    assert f"/api/v1/webhooks/{project['id']}/gitea" in page
    assert secret not in resp.headers.get("Set-Cookie", "")

    page = await (await client.get("/project/demo/notifications")).text()
    assert secret not in page and 'id="new-webhook-secret"' not in page
    listed = page[page.index('id="webhook-list"'):]
    assert "gitea" in listed and f"/api/v1/webhooks/{project['id']}/gitea" in listed

    resp = await client.post(f"/dashboard/project/{project['id']}/webhooks",
                             data={"csrf_token": token, "forge": "gitea"})
    assert resp.status == 409 and "webhook already" in await resp.text()
    resp = await client.post(f"/dashboard/project/{project['id']}/webhooks",
                             data={"csrf_token": token, "forge": "svn"})
    assert resp.status == 400 and "forge: expected one of" in await resp.text()

    webhook_id = await pool.fetchval("SELECT id FROM project_webhooks")
    resp = await client.post(
        f"/dashboard/project/{project['id']}/webhooks/{webhook_id}/delete",
        data={"csrf_token": token}, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    assert await pool.fetchval("SELECT count(*) FROM project_webhooks") == 0
    page = await (await client.get("/project/demo/notifications")).text()
    assert "No webhooks" in page
    resp = await client.post(
        f"/dashboard/project/{project['id']}/webhooks/{webhook_id}/delete",
        data={"csrf_token": token})
    assert resp.status == 404


async def test_a_failed_delivery_is_listed_and_retried(client: TestClient,
                                                       pool: asyncpg.Pool) -> None:
    project = await seed_project(client, "demo")
    task_id = await _failed_delivery(pool, project["id"])
    for path in ("/admin/notifications", f"/dashboard/notification-tasks/{task_id}/retry"):
        resp = await (client.get(path) if path.startswith("/admin") else client.post(path))
        assert resp.status == 401, path
    ro_token = await login(client, READONLY_KEY)
    assert (await client.get("/admin/notifications")).status == 403
    resp = await client.post(f"/dashboard/notification-tasks/{task_id}/retry",
                             data={"csrf_token": ro_token})
    assert resp.status == 403

    client.session.cookie_jar.clear()
    token = await login(client, ADMIN_KEY)
    admin = await (await client.get("/admin")).text()
    assert "1 failed" in admin and 'href="/admin/notifications"' in admin
    page = await (await client.get("/admin/notifications?status=failed")).text()
    row = page[page.index(f'data-task-id="{task_id}"'):]
    row = row[:row.index("</tr>")]
    assert "webhook" in row and "3/3" in row and "boom" in row and "failed" in row
    assert f"/dashboard/notification-tasks/{task_id}/retry" in row
    page = await (await client.get("/admin/notifications?status=done")).text()
    assert f'data-task-id="{task_id}"' not in page and "No deliveries match" in page
    resp = await client.get("/admin/notifications?status=bogus")
    assert resp.status == 400 and "status: expected one of" in await resp.text()
    page = await (await client.get(f"/admin/notifications?project_id={project['id']}")).text()
    assert f'data-task-id="{task_id}"' in page

    resp = await client.post(f"/dashboard/notification-tasks/{task_id}/retry",
                             data={"csrf_token": token}, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    assert resp.headers["Location"].startswith("/admin/notifications?notice=")
    row = await pool.fetchrow("SELECT status, attempts, last_error, done_at"
                              " FROM notification_tasks WHERE id = $1", task_id)
    assert row["status"] == "pending" and row["attempts"] == 0
    assert row["last_error"] is None and row["done_at"] is None
    page = await (await client.get("/admin/notifications")).text()
    row_html = page[page.index(f'data-task-id="{task_id}"'):]
    row_html = row_html[:row_html.index("</tr>")]
    assert ">pending<" in row_html and "/retry" not in row_html

    # Retrying what is not failed is a readable 409, not a 500.
    resp = await client.post(f"/dashboard/notification-tasks/{task_id}/retry",
                             data={"csrf_token": token})
    body = await resp.text()
    assert resp.status == 409 and resp.content_type == "text/html"
    assert "Conflict" in body and "only a failed one is retried" in body
    resp = await client.post("/dashboard/notification-tasks/999999/retry",
                             data={"csrf_token": token})
    assert resp.status == 404
