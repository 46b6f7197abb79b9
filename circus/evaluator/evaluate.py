"""One evaluation of one jobset: fetch, skip when nothing changed, evaluate, ingest — or
record why it failed."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import asyncpg
import attrs
import structlog

from circus.app.config import EvaluatorConfig
from circus.app.context import Context
from circus.evaluator import evaljobs, git, nixeval, workers
from circus.evaluator.ingest import Counts, Evaluation, Ingest, record_failure
from circus.evaluator.inputs import (
    EvalInput,
    JobsetInput,
    allowed_paths,
    check_paths,
    inputs_hash,
    nix_args,
    recorded,
)
from circus.evaluator.jobs import JobRecord
from circus.evaluator.nixeval import EvalError, Target
from circus.services import sources
from circus.store import evaluations as evaluation_rows
from circus.store import ingest as ingest_rows
from circus.store import jobsets as jobset_rows

log = structlog.get_logger(__name__)


@attrs.frozen
class Jobset:
    """A due jobset, as `jobsets_due` returns it."""

    id: int
    name: str
    project_id: int
    project_name: str
    repository_url: str
    nix_expression: str
    flake: bool
    branch: str | None
    enabled: int
    trigger_time: datetime | None

    @property
    def label(self) -> str:
        return f"{self.project_name}:{self.name}"


# New builds from one evaluation past which the planner's statistics are refreshed.
ANALYZE_AFTER = 10_000
# The most jobs written in one transaction, and the least time between two: the first
# batch goes at once, later ones gather what came meanwhile (fewer, larger transactions
# leave more of the CPU to Nix).
MAX_BATCH = 5000
BATCH_INTERVAL = 0.2


class EvaluationFailed(Exception):
    """The evaluation cannot go on; the message is what users see."""


async def evaluate_jobset(ctx: Context, jobset: Jobset, limits: workers.Limits) -> None:
    reserved = await evaluation_rows.reserve_id(ctx.pool)
    ev = Evaluation(id=reserved["id"], jobset_id=jobset.id, project_id=jobset.project_id,
                    commit_hash="", inputs_hash="", flake_uri="",
                    started_at=reserved["taken_at"])
    # Bound both ways: on our lines, and (contextvars) on those of the modules we call.
    context = {"jobset": jobset.label, "evaluation_id": ev.id}
    bound = log.bind(**context)
    started = time.monotonic()
    with structlog.contextvars.bound_contextvars(**context):
        bound.info("evaluation started", repository=sources.redact(jobset.repository_url),
                   triggered=jobset.trigger_time is not None)
        try:
            ev, target = await _prepare(ctx, jobset, ev)
            if await _unchanged(ctx.pool, jobset, ev):
                await jobset_rows.mark_checked(ctx.pool, jobset.id, ev.started_at)
                bound.info("evaluation skipped: inputs unchanged", commit=ev.commit_hash)
                return
            ev = await _start(ctx, ev, bound)
            bound.info("evaluating", commit=ev.commit_hash, workers=limits.workers)
            counts = await _evaluate_and_ingest(ctx, ev, target, limits,
                                                taken_over=ev.id != reserved["id"])
        except (git.GitError, EvalError, EvaluationFailed) as exc:
            async with ctx.pool.acquire() as conn:
                await record_failure(conn, ev, str(exc))
            bound.warning("evaluation failed", error=str(exc).split("\n", 1)[0],
                          commit=ev.commit_hash, duration=round(time.monotonic() - started, 2))
            return
    bound.info("evaluation finished", commit=ev.commit_hash, **attrs.asdict(counts),
               duration=round(time.monotonic() - started, 2))


async def _start(ctx: Context, ev: Evaluation, bound: structlog.BoundLogger) -> Evaluation:
    """The running row; or the one a stopped evaluator left with the same inputs."""
    async with ctx.pool.acquire() as conn:
        started = await ingest_rows.start(conn, ev)
    if started.id != ev.id:
        bound.info("evaluation taken over from an evaluator that stopped",
                   taken_over=started.id)
    return started


async def _evaluate_and_ingest(ctx: Context, ev: Evaluation, target: Target,
                               limits: workers.Limits, *, taken_over: bool) -> Counts:
    """Jobs go into the database in batches while Nix still evaluates the rest."""
    sink = Ingest(ctx.pool, ev, taken_over=taken_over)
    queue: asyncio.Queue[JobRecord | None] = asyncio.Queue()
    producer = asyncio.create_task(_evaluate(ctx.config.evaluator, target, limits, queue))
    try:
        while batch := await _next_batch(queue):
            await sink.add(batch)
            if not producer.done():  # over: the rest is in the queue already
                await asyncio.sleep(BATCH_INTERVAL)
        await producer
    finally:
        producer.cancel()
        await asyncio.gather(producer, return_exceptions=True)
    counts = await sink.finish(await nixeval.explain(target, sink.failed))
    if counts.nr_new_builds >= ANALYZE_AFTER:
        async with ctx.pool.acquire() as conn:
            await ingest_rows.analyze(conn)
    return counts


async def _next_batch(queue: asyncio.Queue[JobRecord | None]) -> list[JobRecord]:
    """What came since the last batch (at least one job, at most MAX_BATCH); empty once
    the evaluation is over. Small while jobs trickle in, large while they pour."""
    batch: list[JobRecord] = []
    item = await queue.get()
    while item is not None:
        batch.append(item)
        if len(batch) >= MAX_BATCH or queue.empty():
            return batch
        item = queue.get_nowait()
    queue.put_nowait(None)  # the end, for the next call
    return batch


async def _evaluate(cfg: EvaluatorConfig, target: Target, limits: workers.Limits,
                    queue: asyncio.Queue[JobRecord | None]) -> None:
    """Every job of the target into `queue`, then None; EvaluationFailed when it takes
    longer than allowed."""
    try:
        async with asyncio.timeout(cfg.nix_timeout):
            if evaljobs.available():
                await evaljobs.stream(target, limits, queue.put_nowait)
            else:
                await workers.stream(target, limits, queue.put_nowait)
    except TimeoutError:
        raise EvaluationFailed(f"evaluation timed out after {cfg.nix_timeout} s "
                               "(evaluator.nix_timeout); Nix was killed") from None
    finally:
        queue.put_nowait(None)


async def _unchanged(pool: asyncpg.Pool, jobset: Jobset, ev: Evaluation) -> bool:
    """Same inputs as the last evaluation. A trigger still retries a failed one."""
    last = await evaluation_rows.latest_of(pool, jobset.id)
    if last is None or last["inputs_hash"] != ev.inputs_hash:
        return False
    return not (last["status"] == "failed" and jobset.trigger_time is not None)


async def _prepare(ctx: Context, jobset: Jobset,
                   ev: Evaluation) -> tuple[Evaluation, Target]:
    """Fetch the repository and inputs; the evaluation's identity and what to evaluate."""
    cfg = ctx.config.evaluator
    policy = sources.Policy.of(ctx.config)
    root = _work_dir(cfg) / f"jobset-{jobset.id}"
    rev = await git.fetch(jobset.repository_url, jobset.branch, root / "repo.git", policy,
                          cfg.git_timeout)
    rows = await jobset_rows.inputs(ctx.pool, jobset.id)
    inputs = [JobsetInput(r["name"], r["type"], r["value"]) for r in rows]
    shown_url = sources.redact(jobset.repository_url)  # evaluations are public
    main = EvalInput(_main_input_name(jobset, inputs), "git", uri=shown_url,
                     revision=rev.commit, value=rev.branch)
    options = _options(cfg)
    if jobset.flake:
        url = f"git+file://{rev.clone}?ref={quote('refs/heads/' + rev.branch)}&rev={rev.commit}"
        target = Target(flake_url=url, attr=jobset.nix_expression or "hydraJobs",
                        options=options)
        flake_uri = f"{_flake_base(shown_url)}?rev={rev.commit}#{target.attr}"
    else:
        try:  # a row written before the rules, or declared, is held to them here
            check_paths(inputs, policy)
        except sources.SourceRefused as exc:
            raise EvaluationFailed(f"refused to evaluate: {exc}") from None
        inputs = [await _fetch_input(item, root, cfg, policy) for item in inputs]
        src = await git.checkout(rev, root / "src", policy, cfg.git_timeout)
        target = Target(file=str(_inside(src, jobset.nix_expression)), args=tuple(
            nix_args(inputs)), search_path=(str(src), *_named_paths(inputs)), options=options)
        flake_uri = ""
    ev = attrs.evolve(
        ev, commit_hash=rev.commit, flake_uri=flake_uri, inputs=[main, *recorded(inputs)],
        inputs_hash=inputs_hash(rev.commit, jobset.nix_expression, jobset.flake, inputs))
    return ev, target


async def _fetch_input(item: JobsetInput, root: Path, cfg: EvaluatorConfig,
                       policy: sources.Policy) -> JobsetInput:
    if item.type != "git":
        return item
    rev = await git.fetch(item.git_url, item.git_branch, root / "inputs" / f"{item.name}.git",
                          policy, cfg.git_timeout, field=f"inputs.{item.name}")
    path = await git.checkout(rev, root / "inputs" / item.name, policy, cfg.git_timeout)
    return attrs.evolve(item, path=str(path), revision=rev.commit)


def _work_dir(cfg: EvaluatorConfig) -> Path:
    # Absolute: the clone's path goes into a git+file:// URL.
    return Path(cfg.work_dir).absolute()


def _options(cfg: EvaluatorConfig) -> tuple[str, ...]:
    options: list[str] = []
    if cfg.restrict_eval:
        options += ["--option", "restrict-eval", "true"]
    if not cfg.allow_ifd:
        options += ["--option", "allow-import-from-derivation", "false"]
    return tuple(options)


def _named_paths(inputs: list[JobsetInput]) -> list[str]:
    """`-I name=path` for path and git inputs: `<name>` works, and restricted evaluation
    may read them."""
    paths = allowed_paths(inputs)
    names = [i.name for i in inputs if i.type in ("path", "git")]
    return [f"{name}={path}" for name, path in zip(names, paths, strict=True)]


def _inside(src: Path, expression: str) -> Path:
    path = (src / expression).resolve()
    if not path.is_relative_to(src.resolve()):
        raise EvaluationFailed(f"nix_expression {expression!r} points outside the checkout")
    if not path.exists():
        raise EvaluationFailed(f"nix_expression {expression!r}: no such file in the checkout")
    return path


def _main_input_name(jobset: Jobset, inputs: list[JobsetInput]) -> str:
    taken = {i.name for i in inputs}
    return "src" if "src" not in taken else jobset.project_name


def _flake_base(url: str) -> str:
    if url.startswith("git+"):
        return url
    if "://" in url:
        return f"git+{url}"
    return f"git+file://{Path(url).resolve()}"
