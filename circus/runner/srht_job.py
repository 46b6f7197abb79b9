"""One builds.sr.ht job, from its claim to its end: the setup (the manifest's packages
built from its image's package set, its sources cloned, `~/.buildenv` written) logged as
task 0, then each task in a fresh bubblewrap sandbox (circus.proc.sandbox) with the
job's home as its only writable place, then the artifacts of a successful job.

What the job controls (its manifest, its tasks' output, the files in its home) never
reaches outside its home: sources are cloned by the runner under the same URL rules as
every git URL, artifacts are regular files inside the home (never through a symlink),
and logs and artifacts are capped.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import attrs
import structlog

from circus.app.context import Context
from circus.domain import manifest
from circus.domain.errors import CircusError, InvalidValue
from circus.proc import child, git, nix, sandbox
from circus.services import sources
from circus.store import notifications
from circus.store import srht_jobs as rows
from circus.store.srht_jobs import ARTIFACT_CHUNK

log = structlog.get_logger(__name__)

HOME = "/home/build"
FLUSH_SECONDS = 0.2


class SetupFailed(CircusError):
    """The job cannot start: the message goes to the setup log."""


@attrs.define(eq=False)
class TaskLog:
    """A task's log lines, written as chunks a few times a second and cut at `limit`."""

    pool: asyncpg.Pool
    job_id: int
    task_nr: int
    limit: int
    seq: int = 0
    size: int = 0
    cut: bool = False
    pending: list[str] = attrs.Factory(list)
    _last: float = attrs.field(factory=time.monotonic)

    async def line(self, text: str) -> None:
        if self.cut:
            return
        data = text if text.endswith("\n") else text + "\n"
        self.size += len(data.encode())
        if self.size > self.limit:
            self.cut, data = True, f"[circus: the log is cut at {self.limit} bytes]\n"
        self.pending.append(data)
        if time.monotonic() - self._last >= FLUSH_SECONDS or self.cut:
            await self.flush()

    async def flush(self) -> None:
        self._last = time.monotonic()
        if self.pending:
            data, self.pending = "".join(self.pending), []
            await rows.append_log(self.pool, self.job_id, self.task_nr, self.seq, data)
            self.seq += 1


@attrs.define(eq=False)
class Job:
    ctx: Context
    row: asyncpg.Record
    work: Path
    cancel: asyncio.Event
    spec: manifest.Manifest = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.spec = manifest.parse(self.row["manifest"])

    @property
    def id(self) -> int:
        return int(self.row["id"])

    @property
    def home(self) -> Path:
        return self.work / "home"

    def log(self, task_nr: int) -> TaskLog:
        return TaskLog(self.ctx.pool, self.id, task_nr, self.ctx.config.srht.max_log_bytes)


async def run(ctx: Context, row: asyncpg.Record, work: Path, cancel: asyncio.Event) -> str:
    """Run the claimed job to its end; the status it ended with."""
    job = Job(ctx, row, work, cancel)
    bound = log.bind(job_id=job.id)
    deadline = time.monotonic() + ctx.config.srht.job_timeout
    shutil.rmtree(work, ignore_errors=True)
    job.home.mkdir(parents=True)
    try:
        status, error = await _run(job, deadline)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not job.cancel.is_set():
        await _finish(job, status, error)
    bound.info("job ended", status=status, error=error)
    return status


async def _finish(job: Job, status: str, error: str | None) -> None:
    """The job's end and its triggers' deliveries, in one transaction: a runner killed
    between the two can neither lose a delivery nor queue one twice (dedup keys)."""
    cfg = job.ctx.config.notifications
    attempts = cfg.max_retry_attempts + 1 if cfg.enable_retry_queue else 1
    async with job.ctx.pool.acquire() as conn, conn.transaction():
        if not await rows.finish(conn, job.id, job.ctx.instance, status, error):
            return
        tasks = (await rows.tasks_of(conn, [job.id]))[job.id]
        await notifications.insert_tasks(conn, _deliveries(job, status, tasks), attempts)


def _deliveries(job: Job, status: str,
                tasks: list[asyncpg.Record]) -> list[notifications.NewTask]:
    """The manifest's webhook triggers whose condition the end meets, each with the job
    as sr.ht's API shows it."""
    body = {"id": job.id, "status": status, "note": job.row["note"],
            "tags": list(job.row["tags"]), "runner": job.ctx.instance,
            "owner": {"canonical_name": f"~{job.row['owner_name']}",
                      "name": job.row["owner_name"]},
            "tasks": [{"name": t["name"], "status": t["status"]} for t in tasks]}
    met = {"always", "success" if status == "success" else "failure"}
    return [notifications.NewTask("webhook", None, f"srht-job:{job.id}",
                                  f"srht-job:{job.id}:trigger:{i}",
                                  {"url": t.url, "body": body})
            for i, t in enumerate(job.spec.triggers)
            if t.action == "webhook" and t.condition in met]


async def _run(job: Job, deadline: float) -> tuple[str, str | None]:
    parsed = job.spec
    setup = job.log(0)
    try:
        env = await _setup(job, parsed, setup)
    except (SetupFailed, InvalidValue, sources.SourceRefused, child.ChildError) as exc:
        await setup.line(f"setup failed: {exc}")
        await setup.flush()
        return "failed", f"setup: {exc}"
    await setup.flush()
    for nr, task in enumerate(parsed.tasks, start=1):
        outcome = await _task(job, nr, task, env, deadline)
        if outcome == "complete":
            await _skip_rest(job, nr + 1, len(parsed.tasks))
            break
        if outcome != "success":
            return outcome, None if outcome != "failed" else f"task {task.name} failed"
    await _keep_artifacts(job, parsed, job.log(0))
    return "success", None


async def _skip_rest(job: Job, first: int, last: int) -> None:
    for nr in range(first, last + 1):
        await rows.set_task(job.ctx.pool, job.id, nr, "skipped", job.ctx.instance)


async def _task(job: Job, nr: int, task: manifest.Task, env: sandbox.Sandbox,
                deadline: float) -> str:
    """success, complete (complete-build: the rest is skipped), failed, timeout or
    cancelled."""
    pool, me = job.ctx.pool, job.ctx.instance
    await rows.set_task(pool, job.id, nr, "running", me)
    out = job.log(nr)
    script = job.home / ".circus" / f"task-{nr}"
    script.write_text(manifest.task_script(task))
    result = await sandbox.run(env, ["/bin/bash", f"{HOME}/.circus/task-{nr}"], out.line,
                               timeout=max(1.0, deadline - time.monotonic()),
                               cancel=job.cancel)
    await out.flush()
    if result.cancelled:
        return "cancelled"
    if result.timed_out:
        await out.line("[circus: the job ran past [srht] job_timeout]")
        await out.flush()
        await rows.set_task(pool, job.id, nr, "failed", me)
        return "timeout"
    ok = result.exit_code in (0, manifest.COMPLETE_BUILD_EXIT)
    await rows.set_task(pool, job.id, nr, "success" if ok else "failed", me)
    if result.exit_code == manifest.COMPLETE_BUILD_EXIT:
        return "complete"
    return "success" if ok else "failed"


async def _setup(job: Job, parsed: manifest.Manifest, out: TaskLog) -> sandbox.Sandbox:
    cfg = job.ctx.config
    await out.line(f"circus: job {job.id}, image {parsed.image}")
    if parsed.image not in cfg.srht.images:
        raise SetupFailed(f"image {parsed.image!r} is no longer configured ([srht] images)")
    bins = await _packages(cfg.srht.images[parsed.image], parsed.packages, out)
    await _clone(job, parsed.sources, out)
    tools = job.home / ".circus" / "bin"
    tools.mkdir(parents=True)
    (tools / "complete-build").write_text(manifest.COMPLETE_BUILD_SCRIPT)
    (tools / "complete-build").chmod(0o755)
    (job.home / ".buildenv").write_text(manifest.buildenv(parsed))
    env = {"JOB_ID": str(job.id), "BUILD_SUBMITTER": "circus",
           "JOB_URL": f"/api/jobs/{job.id}"}
    if parsed.repositories:
        env["NIX_PATH"] = ":".join(f"{k}={v}" for k, v in parsed.repositories.items())
    return sandbox.Sandbox(home=job.home, env=env,
                           path=(*bins, f"{HOME}/.circus/bin", "/usr/bin", "/bin"))


async def _packages(package_set: str, packages: tuple[str, ...], out: TaskLog) -> list[str]:
    """Each package built (or substituted) from the image's package set: its bin dirs."""
    if not packages:
        return []
    attrs_ = [p.removeprefix("nixos.") for p in packages]
    await out.line(f"circus: building packages {', '.join(attrs_)} from {package_set}")
    lines: list[str] = []
    result = await child.run(nix.nix("build", "--json", "--no-link",
                                     *(f"{package_set}#{a}" for a in attrs_)),
                             name="nix build", on_stderr_line=lines.append)
    for line in lines:
        await out.line(line)
    if not result.ok:
        raise SetupFailed(f"the packages could not be built: {result.stderr[-500:]}")
    outputs = [path for item in json.loads(result.stdout)
               for path in item["outputs"].values()]
    return [f"{path}/bin" for path in outputs]


async def _clone(job: Job, wanted: tuple[manifest.Source, ...], out: TaskLog) -> None:
    policy = sources.Policy.of(job.ctx.config)
    for i, source in enumerate(wanted):
        field = f"sources[{i}]"
        sources.check_git_url(source.url, policy, field)
        await sources.check_resolved(source.url, policy, field)
        target = job.home / manifest.source_dir(source)
        await out.line(f"circus: cloning {sources.redact(source.url)}")
        await _git(policy, out, "clone", "--recurse-submodules", "--", source.url,
                   str(target))
        if source.ref:
            await _git(policy, out, "-C", str(target), "checkout", "-q", source.ref, "--")
            await _git(policy, out, "-C", str(target), "submodule", "update", "--init",
                       "--recursive")


async def _git(policy: sources.Policy, out: TaskLog, *args: str) -> None:
    result = await git.run(policy, *args, limit=600)
    if not result.ok:
        await out.line(sources.redact(result.stderr))
        raise SetupFailed(f"{git.command(args)} failed")


async def _keep_artifacts(job: Job, parsed: manifest.Manifest, out: TaskLog) -> None:
    limit = job.ctx.config.srht.max_artifact_bytes
    for wanted in parsed.artifacts:
        found = _artifact_file(job.home, wanted)
        if isinstance(found, str):
            await out.line(f"circus: artifact {wanted}: {found}")
            continue
        fd, size = found
        if size > limit:
            os.close(fd)
            await out.line(f"circus: artifact {wanted}: {size} bytes, more than {limit}")
            continue
        await rows.add_artifact(job.ctx.pool, job.id, job.ctx.instance, wanted,
                                Path(wanted).name, _pieces(fd), size)
    await out.flush()


def _artifact_file(home: Path, wanted: str) -> tuple[int, int] | str:
    """An open descriptor and size of the regular file `wanted` names inside `home`
    (never through a symlink), or why not."""
    rel = wanted.removeprefix("~/") if wanted.startswith("~/") else wanted
    if rel.startswith(HOME + "/"):
        rel = rel[len(HOME) + 1:]
    parts = Path(rel).parts
    if rel.startswith("/") or not parts or ".." in parts:
        return f"not a path inside {HOME}"
    try:
        fd = _open_below(home, parts)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        return "not a regular file"
    return fd, info.st_size


def _open_below(home: Path, parts: tuple[str, ...]) -> int:
    """Open each component with O_NOFOLLOW from the home down: a symlink anywhere on the
    way fails, so the job cannot point an artifact at the runner's files."""
    fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            flags = os.O_RDONLY | os.O_NOFOLLOW | (0 if last else os.O_DIRECTORY)
            next_fd = os.open(part, flags | os.O_NONBLOCK, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        return fd
    except OSError:
        os.close(fd)
        raise


async def _pieces(fd: int) -> AsyncIterator[bytes]:
    with os.fdopen(fd, "rb") as f:
        while piece := await asyncio.to_thread(f.read, ARTIFACT_CHUNK):
            yield piece
