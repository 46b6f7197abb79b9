"""builds.sr.ht jobs as every front end sees them: submit a manifest, list and read the
jobs one may see (one's own; an admin's: all), start a pending job, cancel one, its
artifacts. The rules (who sees what, what a manifest may say, which image and arch
exist) are here, once."""

from __future__ import annotations

import platform
from collections.abc import AsyncIterator, Mapping
from typing import Any

import asyncpg
import attrs

from circus.app.config import Config
from circus.domain import manifest, roles
from circus.domain.errors import Forbidden, InvalidValue, NotFound
from circus.services.login import Principal
from circus.store import srht_jobs as rows

# sr.ht's legacy API pages hold this many results.
PER_PAGE = 50


class NotPending(Exception):
    """Starting (or cancelling) a job that is past it: sr.ht answers 400."""

    def __init__(self, status: str) -> None:
        super().__init__(f"This job is already {status}")
        self.status = status


@attrs.frozen
class Page:
    jobs: list[asyncpg.Record]
    tasks: dict[int, list[asyncpg.Record]]
    next: int | None
    total: int


def arches(config: Config) -> list[str]:
    """The arches runners have: the CPU part of each system they build."""
    systems = config.queue_runner.systems or [f"{platform.machine()}-linux"]
    return sorted({s.split("-", 1)[0] for s in systems})


def _owner(who: Principal) -> tuple[int | None, int | None, str]:
    return (who.user_id, None if who.user_id is not None else who.key_id, who.name)


def check_submission(config: Config, body: Mapping[str, Any]) -> manifest.Manifest:
    """The manifest of a POST /api/jobs body, refused naming what is wrong."""
    text = body.get("manifest")
    if not isinstance(text, str) or not text.strip():
        raise InvalidValue("manifest", "is required: the build manifest, as YAML text")
    parsed = manifest.parse(text)
    images = config.srht.images
    if parsed.image not in images:
        known = ", ".join(sorted(images)) or "none (set [srht] images)"
        raise InvalidValue("image", f"{parsed.image!r} is not an image here; "
                                    f"the images are: {known}")
    if parsed.arch is not None and parsed.arch not in arches(config):
        raise InvalidValue("arch", f"{parsed.arch!r} is not an arch of any runner; "
                                   f"the arches are: {', '.join(arches(config))}")
    return parsed


def _flag(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, True)
    if not isinstance(value, bool):
        raise InvalidValue(name, "must be true or false")
    return value


async def submit(pool: asyncpg.Pool, config: Config, who: Principal,
                 body: Mapping[str, Any]) -> int:
    parsed = check_submission(config, body)
    note = manifest.check_note(body.get("note"))
    tags = manifest.check_tags(body.get("tags", []))
    status = "queued" if _flag(body, "execute") else "pending"
    return await rows.insert(pool, _owner(who), body["manifest"], note, tags, parsed.image,
                             parsed.arch, _flag(body, "secrets"), status,
                             [t.name for t in parsed.tasks])


def _sees(who: Principal, job: asyncpg.Record) -> bool:
    if who.may(roles.ADMIN):
        return True
    if who.user_id is not None:
        return bool(job["owner_user_id"] == who.user_id)
    return job["owner_key_id"] is not None and job["owner_key_id"] == who.key_id


async def visible(pool: asyncpg.Pool, who: Principal, job_id: int) -> asyncpg.Record:
    """The job, if the caller may see it; NotFound otherwise (another's job is not
    shown to exist)."""
    job = await rows.get(pool, job_id)
    if job is None or not _sees(who, job):
        raise NotFound(f"job {job_id} not found")
    return job


async def page(pool: asyncpg.Pool, who: Principal, start: int | None) -> Page:
    owner = _owner(who)
    found = await rows.visible_page(pool, owner[0], owner[1], who.may(roles.ADMIN), start,
                                    PER_PAGE)
    jobs, rest = found[:PER_PAGE], found[PER_PAGE:]
    total = int(found[0]["total"]) if found else 0
    return Page(jobs, await rows.tasks_of(pool, [j["id"] for j in jobs]),
                rest[0]["id"] if rest else None, total)


async def tasks(pool: asyncpg.Pool, job_id: int) -> list[asyncpg.Record]:
    return (await rows.tasks_of(pool, [job_id]))[job_id]


async def start(pool: asyncpg.Pool, who: Principal, job_id: int) -> None:
    job = await visible(pool, who, job_id)
    _may_write(who)
    if not await rows.start(pool, job_id):
        raise NotPending((await rows.get(pool, job_id) or job)["status"])


async def cancel(pool: asyncpg.Pool, who: Principal, job_id: int) -> None:
    job = await visible(pool, who, job_id)
    _may_write(who)
    if not await rows.cancel(pool, job_id):
        raise NotPending((await rows.get(pool, job_id) or job)["status"])


def _may_write(who: Principal) -> None:
    if not who.may(roles.SUBMIT_JOB):
        raise Forbidden(f"{who.describe()} may not submit job")


async def artifacts(pool: asyncpg.Pool, who: Principal, job_id: int) -> list[asyncpg.Record]:
    await visible(pool, who, job_id)
    return await rows.artifacts_of(pool, job_id)


async def artifact(pool: asyncpg.Pool, who: Principal, job_id: int,
                   artifact_id: int) -> asyncpg.Record:
    await visible(pool, who, job_id)
    found = await rows.artifact(pool, job_id, artifact_id)
    if found is None:
        raise NotFound(f"artifact {artifact_id} of job {job_id} not found")
    return found


async def log_after(pool: asyncpg.Pool, job_id: int, task_nr: int,
                    after_seq: int) -> list[tuple[int, str]]:
    return await rows.log_after(pool, job_id, task_nr, after_seq)


def artifact_pieces(pool: asyncpg.Pool, artifact_id: int) -> AsyncIterator[bytes]:
    """The bytes of an artifact `artifact` returned, a piece at a time."""
    return rows.artifact_pieces(pool, artifact_id)
