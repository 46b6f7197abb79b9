"""Events into deliveries. The database's triggers write an event in the transaction that
starts or ends an evaluation or ends a build; here, in one transaction, a batch of events
becomes the deliveries each project's settings ask for, and the events are deleted. So
each event is expanded exactly once, even when a process dies halfway.

One process expands at a time (an advisory lock), in event order: the deliveries of one
commit status context get ids in the order things happened, and the queue sends them in
that order.

Commit statuses are one per evaluation (context `circus/<project>:<jobset>`: pending while
it evaluates and builds, then success or failure once every build is done, error when the
evaluation failed), or with `commit_status = "job"` one per job as well
(`circus/<project>:<jobset>:<job>`). A final state is reported once (dedup key), however
many builds finish at the same moment.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import attrs
import structlog

from circus.app.config import Config
from circus.domain.status import CODE_NAMES, BuildStatus
from circus.notify.settings import Settings
from circus.services import notifications as project_notifications
from circus.store import notifications as rows
from circus.store.notifications import NewTask

log = structlog.get_logger(__name__)

BATCH = 500
# A build in more evaluations than this (one derivation in many commits) tells the newest.
EVALUATIONS_PER_BUILD = 20
DESCRIPTION_LIMIT = 140  # GitHub's limit for a status description


async def expand(pool: asyncpg.Pool, config: Config) -> int:
    """Expand one batch of events; how many there were (0: none, or another process is
    at it)."""
    async with pool.acquire() as conn, conn.transaction():
        if not await rows.lock_events(conn):
            return 0
        events = await rows.take_events(conn, BATCH)
        if not events:
            return 0
        planner = _Planner(conn, config)
        for event in events:
            await planner.add(event)
        await planner.finish()
        attempts = config.notifications.max_retry_attempts + 1
        if not config.notifications.enable_retry_queue:
            attempts = 1
        await rows.insert_tasks(conn, planner.tasks, attempts)
        await rows.delete_events(conn, [e["id"] for e in events])
    if planner.tasks:
        log.info("notifications queued", events=len(events), deliveries=len(planner.tasks))
    return len(events)


@attrs.define
class _Planner:
    conn: asyncpg.Connection
    config: Config
    tasks: list[NewTask] = attrs.Factory(list)
    _settings: dict[int, Settings] = attrs.Factory(dict)
    _touched: set[int] = attrs.Factory(set)

    async def settings(self, project_id: int) -> Settings:
        if project_id not in self._settings:
            self._settings[project_id] = await project_notifications.effective(
                self.conn, self.config, project_id)
        return self._settings[project_id]

    def url(self, path: str) -> str:
        server = self.config.server
        base = server.public_url or f"http://{server.host}:{server.port}"
        return base.rstrip("/") + path

    async def add(self, event: asyncpg.Record) -> None:
        if event["kind"] == "build_finished":
            await self._build_finished(event["build_id"])
        else:
            ev = await rows.evaluation(self.conn, event["evaluation_id"])
            if ev is not None:
                await self._evaluation(event["kind"], ev)

    async def _evaluation(self, kind: str, ev: asyncpg.Record) -> None:
        settings = await self.settings(ev["project_id"])
        url = self.url(f"/eval/{ev['id']}")
        self._webhook(settings, ev["project_id"], _evaluation_body(kind, ev, url))
        if kind == "evaluation_finished" and ev["status"] == "failed":
            self._alert(settings, ev["project_id"], failed=True,
                        subject=f"Circus: evaluation of {ev['project']}:{ev['jobset']} failed",
                        text=f"{_first_line(ev['error_message'])}\n{url}")
        await self._evaluation_status(settings, ev, started=kind == "evaluation_started")
        if kind == "evaluation_finished" and ev["status"] == "succeeded" \
                and settings.commit_status == "job":
            for build in await rows.evaluation_builds(self.conn, ev["id"]):
                self._job_status(settings, ev, build)

    async def _build_finished(self, build_id: int) -> None:
        build = await rows.build(self.conn, build_id)
        if build is None:
            return
        settings = await self.settings(build["project_id"])
        evaluations = await rows.evaluations_of_build(self.conn, build_id,
                                                      EVALUATIONS_PER_BUILD)
        commit = evaluations[0]["commit_hash"] if evaluations else None
        url = self.url(f"/build/{build_id}")
        self._webhook(settings, build["project_id"], _build_body(build, commit, url))
        failed = build["buildstatus"] != BuildStatus.SUCCEEDED
        label = f"{build['project']}:{build['jobset']}:{build['job']}"
        self._alert(settings, build["project_id"], failed=failed,
                    subject=f"Circus: build {build_id} of {label} "
                            f"{CODE_NAMES.get(build['buildstatus'], 'finished')}",
                    text=f"{_first_line(build['error_message']) or build['nix_name']}\n{url}")
        if not evaluations or settings.status_repository(evaluations[0]["repository_url"]) \
                is None:
            return
        for ev in evaluations:
            if settings.commit_status == "job":
                self._job_status(settings, ev, build)
            self._touched.add(ev["id"])

    async def finish(self) -> None:
        """The statuses of the evaluations whose builds ended in this batch: counted once
        per batch, not once per build (an evaluation of 100 000 builds)."""
        for evaluation_id in sorted(self._touched):
            ev = await rows.evaluation(self.conn, evaluation_id)
            if ev is not None and ev["unfinished"] == 0:
                await self._evaluation_status(await self.settings(ev["project_id"]), ev,
                                              started=False)

    async def _evaluation_status(self, settings: Settings, ev: asyncpg.Record, *,
                                 started: bool) -> None:
        context = f"circus/{ev['project']}:{ev['jobset']}"
        url = self.url(f"/eval/{ev['id']}")
        final = None
        if started:
            state, text = "pending", "Evaluating"
        elif ev["status"] == "failed":
            state, text = "error", f"Evaluation failed: {_first_line(ev['error_message'])}"
            final = state
        elif ev["status"] != "succeeded":
            state, text = "error", f"Evaluation {ev['status']}"
            final = state
        elif ev["unfinished"]:
            state = "pending"
            text = f"{ev['total'] - ev['unfinished']} of {ev['total']} builds done"
        else:
            state = "failure" if ev["failed"] else "success"
            text = (f"{ev['failed']} of {ev['total']} builds failed" if ev["failed"]
                    else f"{ev['total']} builds succeeded")
            final = state
        dedup = f"evaluation:{ev['id']}:{final}" if final else None
        self._status(settings, ev, context, state, text, url, dedup)

    def _job_status(self, settings: Settings, ev: asyncpg.Record,
                    build: asyncpg.Record) -> None:
        context = f"circus/{ev['project']}:{ev['jobset']}:{build['job']}"
        if build["state"] != "finished":
            state, text, dedup = "pending", f"Build {build['state']}", None
        else:
            code = build["buildstatus"]
            state = "success" if code == BuildStatus.SUCCEEDED else "failure"
            text = f"Build {CODE_NAMES.get(code, code)}"
            dedup = f"evaluation:{ev['id']}:build:{build['id']}:{state}"
        self._status(settings, ev, context, state, text, self.url(f"/build/{build['id']}"),
                     dedup)

    def _status(self, settings: Settings, ev: asyncpg.Record, context: str, state: str,
                text: str, url: str, dedup: str | None) -> None:
        where = settings.status_repository(ev["repository_url"])
        if where is None or not ev["commit_hash"]:
            return
        forge, repository = where
        payload = {"kind": "status", "forge": forge, "repository": repository,
                   "commit": ev["commit_hash"], "state": state, "context": context,
                   "description": text[:DESCRIPTION_LIMIT], "target_url": url}
        sequence = f"{forge}:{repository}:{ev['commit_hash']}:{context}"
        self.tasks.append(NewTask(forge, ev["project_id"], sequence,
                                  dedup and f"{forge}:{sequence}:{dedup}", payload))

    def _webhook(self, settings: Settings, project_id: int, body: dict[str, Any]) -> None:
        if settings.webhook_url:
            self.tasks.append(NewTask("webhook", project_id, f"webhook:{project_id}", None,
                                      {"kind": "webhook", "body": body}))

    def _alert(self, settings: Settings, project_id: int, *, failed: bool, subject: str,
               text: str) -> None:
        """Slack (every result, or failures only) and email (failures)."""
        if settings.slack_webhook_url and (failed or not settings.slack_on_failure_only):
            self.tasks.append(NewTask("slack", project_id, f"slack:{project_id}", None,
                                      {"kind": "slack", "text": f"{subject}\n{text}"}))
        if failed and settings.smtp_host and settings.email_to_addresses:
            self.tasks.append(NewTask("email", project_id, f"email:{project_id}", None,
                                      {"kind": "email", "subject": subject, "body": text}))


def _evaluation_body(kind: str, ev: asyncpg.Record, url: str) -> dict[str, Any]:
    return {"event": kind, "project": ev["project"], "jobset": ev["jobset"],
            "evaluation_id": ev["id"], "status": ev["status"], "commit": ev["commit_hash"],
            "error": ev["error_message"], "builds": ev["total"],
            "builds_unfinished": ev["unfinished"], "builds_failed": ev["failed"], "url": url}


def _build_body(build: asyncpg.Record, commit: str | None, url: str) -> dict[str, Any]:
    return {"event": "build_finished", "project": build["project"], "jobset": build["jobset"],
            "job": build["job"], "build_id": build["id"], "system": build["system"],
            "drv_path": build["drv_path"], "buildstatus": build["buildstatus"],
            "status": CODE_NAMES.get(build["buildstatus"], "finished"), "commit": commit,
            "url": url}


def _first_line(text: str | None) -> str:
    return (text or "").strip().split("\n", 1)[0]
