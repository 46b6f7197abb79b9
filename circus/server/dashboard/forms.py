"""The dashboard's HTML forms: log in and out, create projects (form and wizard) and
jobsets, trigger evaluations, cancel/restart/bump builds, star jobs, post news, change a
project's notification settings and webhooks.

Every write is a POST of a form carrying the session's CSRF token, checked by the same
`auth.requires(permission)` as /api/v1, and runs the same named queries as the API. A
refused or invalid write renders an error page with the API's message and status; a good
one redirects (POST/redirect/GET) with a notice.
"""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web

from circus.notify.settings import SECRET_KEYS
from circus.server.accounts import auth, sessions
from circus.server.accounts import login as accounts
from circus.server.api import setup
from circus.server.api.jobsets import JobsetSpec
from circus.server.api.projects import ProjectSpec, answered, check_repository_url
from circus.server.dashboard.pages import notifications_page, project_row
from circus.server.dashboard.view import html_errors, redirect, render
from circus.server.http import params
from circus.server.http.errors import bad_field, not_found, refusals
from circus.server.http.keys import CONTEXT
from circus.services import build_actions, forge, notifications, projects
from circus.services import evaluations as evaluation_requests
from circus.services import login as logins
from circus.services.sources import Policy
from circus.store import builds as build_rows
from circus.store import jobsets as jobset_store
from circus.store import news as news_rows
from circus.store import projects as project_store
from circus.store import starred as starred_rows

log = structlog.get_logger(__name__)

PROJECT_FIELDS = ("name", "display_name", "description", "repository_url", "homepage")


async def form_fields(request: web.Request) -> dict[str, str]:
    form = await request.post()
    return {k: v for k, v in form.items() if isinstance(v, str) and k != auth.CSRF_FIELD}


def _github(request: web.Request) -> bool:
    return bool(getattr(request.app[CONTEXT].config.oauth.github, "client_id", None))


async def _login_form(request: web.Request, status: int = 200, **context: Any
                      ) -> web.Response:
    """The login page, with the pre-session token its form posts back (login CSRF)."""
    token = sessions.login_token(request)
    context.setdefault("next", "/")
    response = await render(request, "login.html", {
        "error": None, "github": _github(request), "login_token": token, **context},
                            status=status)
    sessions.set_login_cookie(request, response, token)
    return response


@html_errors
async def login_page(request: web.Request) -> web.StreamResponse:
    return await _login_form(request, next=logins.safe_next(request.query.get("next")))


@html_errors
async def login(request: web.Request) -> web.StreamResponse:
    data = await accounts.body(request)
    pool = request.app[CONTEXT].pool
    target = logins.safe_next(data.get("next"))
    client = accounts.client(request, data)
    try:
        if data.get("api_key"):
            key_id = await logins.key_login(pool, client, data["api_key"])
            return await accounts.logged_in(request, api_key_id=key_id, redirect=target)
        user_id = await logins.password_login(pool, accounts.limits(request), client,
                                              data.get("username", ""),
                                              data.get("password", ""))
    except logins.Refused as exc:
        return await _login_refused(request, exc, data, target)
    return await accounts.logged_in(request, user_id=user_id, redirect=target)


async def _login_refused(request: web.Request, exc: logins.Refused, data: dict[str, str],
                         target: str) -> web.Response:
    error = "this account is disabled" if isinstance(exc, logins.Disabled) else exc.message
    response = await _login_form(request, status=exc.status, next=target, error=error,
                                 username=data.get("username", ""))
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


@html_errors
async def logout_page(request: web.Request) -> web.StreamResponse:
    return await render(request, "logout.html", {})


@html_errors
async def logout(request: web.Request) -> web.StreamResponse:
    session = await sessions.current(request)
    if session is not None and not await auth.csrf_ok(request, session.csrf_token):
        raise auth.csrf_refused()
    response = web.Response(status=303, headers={"Location": "/?notice=You+are+logged+out."})
    await sessions.end(request, response)
    return response


def _jobset_body(data: dict[str, str]) -> dict[str, Any]:
    """A jobset form as the API's JSON body: checkboxes and numbers typed."""
    body: dict[str, Any] = {k: data[k] for k in ("name", "nix_expression", "description",
                                                 "branch") if k in data}
    body["flake"] = data.get("flake") in ("on", "true", "1")
    for field in ("check_interval", "scheduling_shares", "keep_evaluations", "enabled"):
        raw = data.get(field, "").strip()
        if raw:
            try:
                body[field] = int(raw)
            except ValueError:
                raise bad_field(field, f"expected an integer, got {raw!r}") from None
    return body


@html_errors
@auth.requires(auth.needs("create-project"))
async def create_project(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    data = await form_fields(request)
    spec = ProjectSpec.from_body({k: data[k] for k in PROJECT_FIELDS if k in data})
    check_repository_url(spec.repository_url, ctx.config)
    with answered():
        await projects.create_project(ctx.pool, auth.principal(request),
                                      Policy.of(ctx.config), spec)
    raise redirect(f"/project/{spec.name}", f"Project {spec.name} created.")


@html_errors
async def wizard(request: web.Request) -> web.StreamResponse:
    return await render(request, "project_new.html", {"step": 1, "data": {}, "probe": None})


@html_errors
@auth.requires(auth.CREATE_PROJECT)
async def wizard_probe(request: web.Request) -> web.StreamResponse:
    """Step 2 of the wizard: what the repository looks like, and the rest of the form."""
    data = await form_fields(request)
    url = data.get("repository_url", "").strip()
    check_repository_url(url, request.app[CONTEXT].config)
    if url.startswith("-"):
        raise bad_field("repository_url", "must not start with '-'")
    found = None
    # Probing runs git against the URL: the API allows it to admins only, so do we.
    if auth.principal(request).may(auth.ADMIN):
        found = await setup.probe_repository(url, request.app[CONTEXT].config)
    suggested = url.rstrip("/").removesuffix(".git").rsplit("/", 1)[-1]
    name = "".join(c if c.isalnum() or c in "_.-" else "-" for c in suggested) or "project"
    if not name[0].isalpha():
        name = "p-" + name
    data.setdefault("name", name)
    data.setdefault("template", found["suggested_template"] if found else "flake")
    if found and found.get("default_branch"):
        data.setdefault("branch", found["default_branch"])
    data["repository_url"] = url
    return await render(request, "project_new.html", {"step": 2, "data": data,
                                                      "probe": found})


@html_errors
@auth.requires(auth.needs("create-project"))
async def wizard_create(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    data = await form_fields(request)
    spec = ProjectSpec.from_body({k: data[k] for k in PROJECT_FIELDS if k in data})
    check_repository_url(spec.repository_url, ctx.config)
    template = data.get("template", "flake")
    if template not in setup.TEMPLATES:
        raise bad_field("template", f"must be one of {', '.join(setup.TEMPLATES)}")
    # The form's name and description are the project's; the jobset takes the template's.
    jobset_form = _jobset_body({k: v for k, v in data.items()
                                if k not in ("name", "description")})
    jobsets = []
    for item in setup.TEMPLATES[template]:
        body = {**item, **jobset_form}
        body["flake"] = item["flake"]
        body.setdefault("name", item["name"])
        if not body.get("nix_expression"):
            body["nix_expression"] = item["nix_expression"]
        jobsets.append(JobsetSpec.from_body(body))
    with answered():
        await projects.create_project(ctx.pool, auth.principal(request),
                                      Policy.of(ctx.config), spec, jobsets)
    log.info("project set up from the dashboard wizard", project=spec.name,
             jobsets=[j.name for j in jobsets])
    raise redirect(f"/project/{spec.name}", f"Project {spec.name} set up.")


async def _project_id(request: web.Request) -> tuple[int, str]:
    raw = request.match_info["id"]
    key_id = int(raw) if params.digits(raw) and int(raw) <= params.MAX_ID else None
    row = await project_store.by_key(request.app[CONTEXT].pool, key_id, raw)
    if row is None:
        raise not_found(f"project {raw!r}")
    return row["id"], row["name"]


@html_errors
@auth.requires(auth.needs("create-jobset"))
async def create_jobset(request: web.Request) -> web.StreamResponse:
    project_id, project_name = await _project_id(request)
    spec = JobsetSpec.from_body(_jobset_body(await form_fields(request)))
    with answered():
        await projects.create_jobset(request.app[CONTEXT].pool, auth.principal(request),
                                     project_id, spec)
    raise redirect(f"/jobset/{project_name}/{spec.name}", f"Jobset {spec.name} created.")


@html_errors
@auth.requires(auth.TRIGGER)
async def trigger(request: web.Request) -> web.StreamResponse:
    jobset_id = params.path_id(request, "id", "jobset")
    pool = request.app[CONTEXT].pool
    with refusals():
        await evaluation_requests.request(pool, jobset_id)
    jobset = await jobset_store.by_id(pool, jobset_id)
    if jobset is None:  # deleted since: there is no page to go back to
        raise not_found(f"jobset {jobset_id}")
    raise redirect(f"/jobset/{jobset['project']}/{jobset['name']}",
                   "Evaluation requested: the evaluator picks it up now.")


@html_errors
@auth.requires(auth.CANCEL)
async def cancel_build(request: web.Request) -> web.StreamResponse:
    build_id = params.path_id(request, "id", "build")
    pool = request.app[CONTEXT].pool
    with refusals():
        await build_actions.cancel(pool, build_id)
    log.info("build cancelled from the dashboard", build_id=build_id)
    raise redirect(f"/build/{build_id}", "Build cancelled.")


@html_errors
@auth.requires(auth.RESTART)
async def restart_build(request: web.Request) -> web.StreamResponse:
    build_id = params.path_id(request, "id", "build")
    pool = request.app[CONTEXT].pool
    with refusals():
        await build_actions.restart(pool, build_id)
    log.info("build restarted from the dashboard", build_id=build_id)
    raise redirect(f"/build/{build_id}", "Build queued again.")


@html_errors
@auth.requires(auth.BUMP)
async def bump_build(request: web.Request) -> web.StreamResponse:
    build_id = params.path_id(request, "id", "build")
    pool = request.app[CONTEXT].pool
    with refusals():
        await build_actions.bump(pool, build_id)
    raise redirect(f"/build/{build_id}", "Build bumped to the front of the queue.")


@html_errors
@auth.requires_user
async def star(request: web.Request) -> web.StreamResponse:
    build_id = params.path_id(request, "id", "build")
    pool = request.app[CONTEXT].pool
    build = await build_rows.get(pool, build_id)
    if build is None:
        raise not_found(f"build {build_id}")
    user_id = auth.principal(request).user_id or 0  # requires_user: a user's id
    existing = await starred_rows.find(pool, user_id, build["jobset_id"], build["job"])
    if existing is None:
        await starred_rows.add(pool, user_id, build["jobset_id"], build["job"])
        raise redirect(f"/build/{build_id}", f"Starred {build['job']}.")
    await starred_rows.delete(pool, existing, user_id)
    raise redirect(f"/build/{build_id}", f"Unstarred {build['job']}.")


@html_errors
@auth.requires(auth.ADMIN)
async def create_news(request: web.Request) -> web.StreamResponse:
    data = await form_fields(request)
    title = data.get("title", "").strip()
    if not title or len(title) > 200:
        raise bad_field("title", "must be 1 to 200 characters")
    await news_rows.insert(request.app[CONTEXT].pool, title, data.get("content", ""),
                           auth.principal(request).name)
    raise redirect("/news", "News posted.")


@html_errors
@auth.requires(auth.ADMIN)
async def delete_news(request: web.Request) -> web.StreamResponse:
    news_id = params.path_id(request, "id", "news item")
    if not await news_rows.delete(request.app[CONTEXT].pool, news_id):
        raise not_found(f"news item {news_id}")
    raise redirect("/news", "News item deleted.")


# The settings form's text fields: empty removes the project's own value (the server's
# configuration applies again); a field the form does not send is left as it is.
_NOTIFICATION_TEXT = ("forge", "repository", "commit_status", "gitea_url", "gitlab_url")


def _checked(value: str | None) -> bool:
    return value in ("on", "true", "1")


def _notification_changes(data: dict[str, str], server_failures_only: bool
                          ) -> dict[str, Any]:
    """The settings form as `services.notifications.update`'s changes (null removes)."""
    changes: dict[str, Any] = {}
    for key in _NOTIFICATION_TEXT:
        if key in data:
            changes[key] = data[key].strip() or None
    if "email_to_addresses" in data:
        addresses = [a.strip() for a in data["email_to_addresses"].split(",") if a.strip()]
        changes["email_to_addresses"] = addresses or None
    if "slack_on_failure_only" in data:
        # The form sends "off" from a hidden field before the checkbox, so an unticked
        # box still arrives. The server's value is not copied into the project.
        wanted = _checked(data["slack_on_failure_only"])
        changes["slack_on_failure_only"] = None if wanted == server_failures_only else wanted
    for key in SECRET_KEYS:
        value = data.get(key, "").strip()
        remove = _checked(data.get(f"remove_{key}"))
        if remove and value:
            raise bad_field(key, "give a new value or tick remove, not both")
        if remove:
            changes[key] = None
        elif value:  # empty: the current secret stays
            changes[key] = value
    return changes


@html_errors
@auth.requires(auth.needs("manage-notifications"))
async def update_notifications(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    row = await project_row(request, request.match_info["id"])
    changes = _notification_changes(await form_fields(request),
                                    ctx.config.notifications.slack.on_failure_only)
    with refusals():
        await notifications.update(ctx.pool, ctx.config, auth.principal(request), row["id"],
                                   changes)
    raise redirect(f"/project/{row['name']}/notifications", "Notification settings saved.")


@html_errors
@auth.requires(auth.needs("manage-webhooks"))
async def create_webhook(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    row = await project_row(request, request.match_info["id"])
    data = await form_fields(request)
    with refusals():
        hook, secret = await forge.create_webhook(ctx.pool, ctx.config,
                                                  auth.principal(request), row["id"],
                                                  data.get("forge", "").strip())
    # Shown this once, on this answer: stored sealed, never in the session or a URL.
    return await notifications_page(request, row, created=(hook, secret))


@html_errors
@auth.requires(auth.needs("manage-webhooks"))
async def delete_webhook(request: web.Request) -> web.StreamResponse:
    row = await project_row(request, request.match_info["id"])
    webhook_id = params.path_id(request, "webhook_id", "webhook")
    with refusals():
        await forge.delete_webhook(request.app[CONTEXT].pool, auth.principal(request),
                                   row["id"], webhook_id)
    raise redirect(f"/project/{row['name']}/notifications", "Webhook deleted.")
