"""The web dashboard: server-rendered pages (aiohttp-jinja2, `templates/`), a small
stylesheet and script (`static/`), forms for the writes, and live updates over SSE.

Hydra's JSON API shares some of our paths (`/`, `/project/..`, `/jobset/..`, `/build/..`,
`/eval/..`, `/login`, `/logout`): `SHARED_PAGES` holds our pages there, and
`http/routes.SHARED` decides who answers each and registers them; `add_routes` registers
the paths only the dashboard serves.
"""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from circus.app.paths import STATIC_DIR, TEMPLATES_DIR
from circus.server.accounts.users import USERNAME
from circus.server.dashboard import admin as dashboard_admin
from circus.server.dashboard import build as dashboard_build
from circus.server.dashboard import forms as dashboard_forms
from circus.server.dashboard import live as dashboard_live
from circus.server.dashboard import pages as dashboard_pages
from circus.server.dashboard.view import Handler, jinja_helpers
from circus.server.http import openapi
from circus.server.http.openapi import NAME, Schema, obj
from circus.services.forge import FORGES

_HTML = {"type": "string"}
_PAGE_DOC = {"content_type": "text/html", "error_content_type": "text/html",
             "response": _HTML, "tags": ("dashboard",),
             "extra": {303: (None, None, "a redirect to the page's canonical address")}}
_FORM_DOC = {"status": 303, "content_type": None, "error_content_type": "text/html",
             "body": {"type": "object"}, "body_required": False,
             "body_content_type": "application/x-www-form-urlencoded", "tags": ("dashboard",),
             "extra": {200: ("text/html", _HTML, "the page again, with the result"),
                       302: (None, None, "logged in: to the page asked for")},
             "description": "A dashboard form: the session's csrf_token comes as a field."}
_TEXT = {"type": "string", "pattern": r"\S"}  # stripped, then not empty
_URL = {"type": "string", "minLength": 1}
# The fields a form cannot do without, as its handler checks them.
_FORM_FIELDS: dict[Handler, Schema] = {
    dashboard_forms.create_project: obj(("name", "repository_url"), name=NAME, repository_url=_URL),
    dashboard_forms.wizard_probe: obj(("repository_url",), repository_url=_URL),
    dashboard_forms.wizard_create: obj(("name", "repository_url"), name=NAME,
                                       repository_url=_URL),
    dashboard_forms.create_jobset: obj(("name",), name=NAME),
    dashboard_forms.create_news: obj(("title",), title={**_TEXT, "maxLength": 200}),
    dashboard_admin.create_key: obj(("name",), name={**_TEXT, "maxLength": 100}),
    dashboard_admin.create_user: obj(("username",), username=USERNAME),
    dashboard_forms.create_webhook: obj(("forge",), forge={"type": "string",
                                                           "enum": list(FORGES)}),
}
_SPECIAL_DOC: dict[Handler, dict[str, Any]] = {
    dashboard_build.log_before: {
        "response": {"type": "object", "properties": {"html": _HTML,
                                                      "start": {"type": "integer"}}},
        "tags": ("dashboard",)},
    dashboard_build.log_live: {"content_type": "text/event-stream", "response": {},
                               "tags": ("dashboard",)},
    dashboard_live.events: {"content_type": "text/event-stream", "response": {},
                            "tags": ("dashboard",)},
}


_ID = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}


def _documented(handler: Handler, summary: str, spec: dict[str, Any], path: str) -> Handler:
    """The OpenAPI document lists every route: the dashboard's say they are HTML."""
    if openapi.operation_of(handler) is None:
        fields = dict(_SPECIAL_DOC.get(handler, spec))
        # Only digits reach these JSON handlers; anything else is the router's 404.
        if r"{id:\d+}" in path:
            fields["path"] = {"id": _ID}
        openapi.doc(summary, **fields)(handler)
    return handler


def _page(path: str, handler: Handler) -> tuple[str, Handler]:
    return path, _documented(handler, f"Dashboard page {path}", _PAGE_DOC, path)


def _form(path: str, handler: Handler) -> tuple[str, Handler]:
    spec = _FORM_DOC
    if handler in _FORM_FIELDS:
        spec = {**_FORM_DOC, "body": _FORM_FIELDS[handler], "body_required": True}
    return path, _documented(handler, f"Dashboard form {path}", spec, path)


# Declared as they are listed: a handler on two paths is named by its first.
_PAGES: tuple[tuple[str, Handler], ...] = tuple(_page(*row) for row in (
    ("/projects", dashboard_pages.projects),
    ("/projects/new", dashboard_forms.wizard),
    ("/project/{id}/notifications", dashboard_pages.notifications),
    ("/jobset/{id}", dashboard_pages.jobset_by_id),
    ("/evaluations", dashboard_pages.evaluations),
    ("/evaluation/{id}", dashboard_pages.evaluation),
    ("/builds", dashboard_pages.builds_list),
    ("/channels", dashboard_pages.channels),
    ("/channel/{id}", dashboard_pages.channel),
    ("/news", dashboard_pages.news),
    ("/admin", dashboard_admin.admin),
    ("/admin/notifications", dashboard_admin.notification_tasks),
    ("/users", dashboard_admin.users),
    ("/starred", dashboard_pages.starred),
    ("/metrics", dashboard_pages.metrics),
    (r"/dashboard/build/{id:\d+}/log", dashboard_build.log_before),
    (r"/dashboard/build/{id:\d+}/log/live", dashboard_build.log_live),
    ("/dashboard/events", dashboard_live.events),
))
_FORMS: tuple[tuple[str, Handler], ...] = tuple(_form(*row) for row in (
    ("/dashboard/login", dashboard_forms.login),
    ("/dashboard/logout", dashboard_forms.logout),
    ("/dashboard/projects", dashboard_forms.create_project),
    ("/dashboard/projects/probe", dashboard_forms.wizard_probe),
    ("/dashboard/projects/setup", dashboard_forms.wizard_create),
    ("/dashboard/project/{id}/jobsets", dashboard_forms.create_jobset),
    ("/dashboard/jobset/{id}/trigger", dashboard_forms.trigger),
    ("/dashboard/build/{id}/cancel", dashboard_forms.cancel_build),
    ("/dashboard/build/{id}/restart", dashboard_forms.restart_build),
    ("/dashboard/build/{id}/bump", dashboard_forms.bump_build),
    ("/dashboard/build/{id}/star", dashboard_forms.star),
    ("/dashboard/news", dashboard_forms.create_news),
    ("/dashboard/news/{id}/delete", dashboard_forms.delete_news),
    ("/dashboard/api-keys", dashboard_admin.create_key),
    ("/dashboard/api-keys/{id}/delete", dashboard_admin.delete_key),
    ("/dashboard/users", dashboard_admin.create_user),
    ("/dashboard/users/{id}", dashboard_admin.update_user),
    ("/dashboard/users/{id}/delete", dashboard_admin.delete_user),
    ("/dashboard/project/{id}/notifications", dashboard_forms.update_notifications),
    ("/dashboard/project/{id}/webhooks", dashboard_forms.create_webhook),
    ("/dashboard/project/{id}/webhooks/{webhook_id}/delete", dashboard_forms.delete_webhook),
    ("/dashboard/notification-tasks/{id}/retry", dashboard_admin.retry_notification_task),
))


# Our pages on the paths another front end shares, declared here like the others.
SHARED_PAGES: dict[str, Handler] = dict(_page(*row) for row in (
    ("/", dashboard_pages.home),
    ("/project/{id}", dashboard_pages.project),
    ("/jobset/{project}/{jobset}", dashboard_pages.jobset),
    ("/build/{id}", dashboard_build.build),
    ("/eval/{id}", dashboard_pages.evaluation),
    ("/queue", dashboard_pages.queue),
    ("/login", dashboard_forms.login_page),
    ("/logout", dashboard_forms.logout_page),
))


def add_routes(router: web.UrlDispatcher) -> None:
    for path, handler in _PAGES:
        router.add_get(path, handler)
    for path, handler in _FORMS:
        router.add_post(path, handler)
    router.add_static("/static/", STATIC_DIR, name="static")


def setup(app: web.Application) -> None:
    """The templates the pages render."""
    env = aiohttp_jinja2.setup(
        app, loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=jinja2.select_autoescape(default=True), undefined=jinja2.StrictUndefined)
    env.globals.update(jinja_helpers())
