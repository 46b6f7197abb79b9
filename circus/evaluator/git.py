"""Fetching repositories with the git CLI into cached bare clones.

Each jobset keeps its own bare clone under `evaluator.work_dir`, so two jobsets never
race on one fetch; branches are mirrored as `refs/heads/*` so Nix can be pointed at the
clone with `ref=<branch>&rev=<sha>`.

Every URL passes circus.sources' check again here (a row written before the rules, or
declared in the configuration, never went through the server's), and every git call
runs through circus.proc.git, with the command line and environment of
`sources.git_argv`/`git_env`. git's messages are kept with the credentials of any URL in
them masked: they become the jobset's error, shown to everyone.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import attrs

from circus.domain.errors import CircusError
from circus.proc import child
from circus.proc import git as git_proc
from circus.services import sources

# Where a fetched full ref (a pull request's head) is kept in the clone, as a branch.
PULL_REF_PREFIX = "circus/ref/"


class GitError(CircusError):
    """A git command failed; the message is git's own."""


@attrs.frozen
class Revision:
    url: str
    branch: str
    commit: str
    clone: Path


async def _git(policy: sources.Policy, *args: str, limit: float) -> str:
    try:
        done = await git_proc.run(policy, *args, limit=limit)
    except child.ChildTimeout as exc:
        raise GitError(f"git {args[0] if args else ''} timed out after {exc.seconds:g} s "
                       "(evaluator.git_timeout)") from None
    if not done.ok:
        raise GitError(sources.redact(done.stderr.strip() or f"git {' '.join(args)} exited "
                                                             f"{done.returncode}"))
    return done.stdout.decode().strip()


async def default_branch(url: str, policy: sources.Policy, limit: float) -> str:
    """The branch the remote's HEAD points at."""
    out = await _git(policy, "ls-remote", "--symref", "--", url, "HEAD", limit=limit)
    for line in out.splitlines():
        if line.startswith("ref: refs/heads/") and line.endswith("\tHEAD"):
            return line[len("ref: refs/heads/"):-len("\tHEAD")]
    raise GitError(f"{sources.redact(url)}: cannot tell the default branch (no HEAD); set "
                   "the jobset's branch")


async def fetch(url: str, branch: str | None, clone: Path, policy: sources.Policy,
                limit: float, field: str = "repository_url") -> Revision:
    """Bring `clone` up to date with `url` and return the tip of `branch`: a branch name,
    or a full ref such as a pull request's `refs/pull/12/head`."""
    try:
        sources.check_git_url(url, policy, field)
        await sources.check_resolved(url, policy, field)
    except sources.SourceRefused as exc:
        raise GitError(f"refused to fetch: {exc}") from None
    if await asyncio.to_thread(_needs_init, clone):
        await _git(policy, "init", "--quiet", "--bare", str(clone), limit=limit)
    branch = branch or await default_branch(url, policy, limit)
    refspecs = ["+refs/heads/*:refs/heads/*"]
    if branch.startswith("refs/"):  # a pull request's head: kept as a local branch
        local = PULL_REF_PREFIX + branch.removeprefix("refs/")
        refspecs.append(f"+{branch}:refs/heads/{local}")
        branch = local
    # "--": a URL starting with a dash is a repository, never an option.
    await _git(policy, "-C", str(clone), "fetch", "--quiet", "--prune", "--force", "--", url,
               *refspecs, limit=limit)
    try:
        commit = await _git(policy, "-C", str(clone), "rev-parse", "--verify", "--quiet",
                            f"refs/heads/{branch}^{{commit}}", limit=limit)
    except GitError:
        raise GitError(f"{sources.redact(url)}: branch {branch!r} does not exist") from None
    return Revision(url=url, branch=branch, commit=commit, clone=clone)


async def checkout(rev: Revision, dest: Path, policy: sources.Policy, limit: float) -> Path:
    """A fresh tree of `rev` at `dest` (no stale files from an earlier commit)."""
    await asyncio.to_thread(_empty_dir, dest)
    await _git(policy, f"--git-dir={rev.clone}", f"--work-tree={dest}", "checkout",
               "--quiet", "-f", rev.commit, "--", ".", limit=limit)
    return dest


def _needs_init(clone: Path) -> bool:
    if (clone / "HEAD").exists():
        return False
    shutil.rmtree(clone, ignore_errors=True)  # a clone interrupted half-way
    clone.parent.mkdir(parents=True, exist_ok=True)
    return True


def _empty_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
