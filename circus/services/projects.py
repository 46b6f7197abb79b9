"""Creating, changing and deleting projects and jobsets: the operations behind /api/v1,
Hydra's PUT/DELETE, the dashboard's forms and wizard, and `/api/v1/projects/setup`.

Each operation asks the role table (`domain/roles.OPERATIONS`) whether the caller may,
checks what the project may fetch (`services/sources`), and runs one named query. A
front end parses its request into a `Project` or a `Jobset`, calls one function, and
words the domain error it gets back its own way (Hydra's sentences, the API's
`field: problem`, the dashboard's error page).
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import attrs
import structlog

from circus.domain import roles
from circus.domain.errors import Conflict, Forbidden, NotFound
from circus.services import sources
from circus.services.login import Principal
from circus.store import jobsets as jobset_store
from circus.store import projects as project_store

log = structlog.get_logger(__name__)

Input = jobset_store.Input


@attrs.frozen
class Project:
    name: str
    # "" until known: a Hydra project names no repository, its first jobset gives it.
    repository_url: str
    description: str = ""
    display_name: str = ""
    homepage: str = ""
    enabled: bool = True
    # Build pull requests (services/forge), and those from forks too.
    pull_requests: bool = False
    fork_pull_requests: bool = False

    def row(self) -> project_store.Fields:
        return (self.name, self.repository_url, self.description, self.display_name,
                self.homepage, self.enabled, self.pull_requests, self.fork_pull_requests)


@attrs.frozen
class Jobset:
    name: str
    nix_expression: str = "hydraJobs"
    flake: bool = True
    branch: str | None = None
    # Hydra's states: 0 disabled, 1 enabled, 2 one-shot, 3 one-at-a-time.
    enabled: int = 1
    check_interval: int = 60
    description: str = ""
    scheduling_shares: int = 100
    keep_evaluations: int = 3
    hidden: bool = False

    def row(self) -> jobset_store.Fields:
        return (self.name, self.nix_expression, self.flake, self.branch, self.enabled,
                self.check_interval, self.description, self.scheduling_shares,
                self.keep_evaluations, self.hidden)


def authorize(who: Principal, operation: str) -> None:
    """Forbidden unless the caller's role holds what `operation` needs (the one table)."""
    permission = roles.OPERATIONS[operation]
    if not who.may(permission):
        log.info("write refused", who=who.name, kind=who.kind, role=who.role,
                 operation=operation)
        raise Forbidden(f"{who.describe()} may not {permission.replace('-', ' ')}")


def _check_project(project: Project, policy: sources.Policy,
                   before: Project | None = None) -> None:
    """What a project may point at; a stored value that does not change stays as it is."""
    if project.repository_url and (before is None
                                   or project.repository_url != before.repository_url):
        sources.check_git_url(project.repository_url, policy, "repository_url")
    if before is None or project.homepage != before.homepage:
        sources.check_homepage(project.homepage)


def _duplicate_project(name: str) -> Conflict:
    return Conflict(f"name: a project named {name!r} already exists")


def _duplicate_jobset(name: str) -> Conflict:
    return Conflict(f"name: a jobset named {name!r} already exists in this project")


def project_of(row: asyncpg.Record) -> Project:
    """The stored project as a `Project` (the base an update changes)."""
    return Project(**{f.name: row[f.name] for f in attrs.fields(Project)})


def jobset_of(row: asyncpg.Record) -> Jobset:
    return Jobset(**{f.name: row[f.name] for f in attrs.fields(Jobset)})


async def create_project(pool: asyncpg.Pool, who: Principal, policy: sources.Policy,
                         project: Project, jobsets: Sequence[Jobset] = ()
                         ) -> tuple[asyncpg.Record, list[asyncpg.Record]]:
    """A new project, with its first jobsets in the same transaction (setup, wizard)."""
    authorize(who, "create-project")
    if jobsets:
        authorize(who, "create-jobset")
    _check_project(project, policy)
    try:
        async with pool.acquire() as conn, conn.transaction():
            row = await project_store.insert(conn, project.row(), who.name)
            saved = [await jobset_store.insert(conn, row["id"], j.row()) for j in jobsets]
    except asyncpg.UniqueViolationError:
        raise _duplicate_project(project.name) from None
    log.info("project created", project=project.name, who=who.name,
             jobsets=[j.name for j in jobsets])
    return row, saved


async def update_project(pool: asyncpg.Pool, who: Principal, policy: sources.Policy,
                         project_id: int, project: Project, before: Project
                         ) -> asyncpg.Record:
    """The project's fields replaced by `project` (`before` is what the caller read)."""
    authorize(who, "update-project")
    _check_project(project, policy, before)
    try:
        row = await project_store.update(pool, project_id, project.row())
    except asyncpg.UniqueViolationError:
        raise _duplicate_project(project.name) from None
    if row is None:
        raise NotFound(f"project {project_id} not found")
    log.info("project updated", project=project.name, who=who.name)
    return row


async def existing(pool: asyncpg.Pool, project_id: int) -> asyncpg.Record:
    """The project; NotFound when there is none."""
    row = await project_store.by_id(pool, project_id)
    if row is None:
        raise NotFound(f"project {project_id} not found")
    return row


async def delete_project(pool: asyncpg.Pool, who: Principal, project_id: int) -> int:
    """Delete the project with its jobsets, evaluations and builds."""
    authorize(who, "delete-project")
    deleted = await project_store.delete(pool, project_id)
    if deleted is None:
        raise NotFound(f"project {project_id} not found")
    log.info("project deleted", project_id=project_id, who=who.name)
    return deleted


async def create_jobset(pool: asyncpg.Pool, who: Principal, project_id: int,
                        jobset: Jobset) -> asyncpg.Record:
    authorize(who, "create-jobset")
    try:
        row = await jobset_store.insert(pool, project_id, jobset.row())
    except asyncpg.UniqueViolationError:
        raise _duplicate_jobset(jobset.name) from None
    log.info("jobset created", project_id=project_id, jobset=jobset.name, who=who.name)
    return row


async def update_jobset(pool: asyncpg.Pool, who: Principal, project_id: int,
                        jobset_id: int, jobset: Jobset) -> asyncpg.Record:
    authorize(who, "update-jobset")
    try:
        row = await jobset_store.update(pool, project_id, jobset_id, jobset.row())
    except asyncpg.UniqueViolationError:
        raise _duplicate_jobset(jobset.name) from None
    if row is None:
        raise NotFound(f"jobset {jobset_id} not found")
    log.info("jobset updated", project_id=project_id, jobset=jobset.name, who=who.name)
    return row


async def delete_jobset(pool: asyncpg.Pool, who: Principal, project_id: int,
                        jobset_id: int) -> int:
    authorize(who, "delete-jobset")
    deleted = await jobset_store.delete(pool, project_id, jobset_id)
    if deleted is None:
        raise NotFound(f"jobset {jobset_id} not found")
    log.info("jobset deleted", project_id=project_id, jobset_id=jobset_id, who=who.name)
    return deleted


async def put_jobset(pool: asyncpg.Pool, who: Principal, project_id: int,
                     existing_id: int | None, jobset: Jobset, inputs: Sequence[Input],
                     repository_url: str | None = None) -> tuple[asyncpg.Record, bool]:
    """Create or replace a jobset with all its inputs at once (Hydra's PUT), pointing
    the project at `repository_url` when given; (row, created)."""
    authorize(who, "create-jobset" if existing_id is None else "update-jobset")
    try:
        async with pool.acquire() as conn, conn.transaction():
            if repository_url is not None:
                await project_store.set_repository(conn, project_id, repository_url)
            if existing_id is None:
                row = await jobset_store.insert(conn, project_id, jobset.row())
            else:
                row = await jobset_store.update(conn, project_id, existing_id, jobset.row())
            await jobset_store.replace_inputs(conn, row["id"], inputs)
    except asyncpg.UniqueViolationError:
        raise _duplicate_jobset(jobset.name) from None
    log.info("jobset saved", project_id=project_id, jobset=jobset.name, who=who.name,
             created=existing_id is None)
    return row, existing_id is None
