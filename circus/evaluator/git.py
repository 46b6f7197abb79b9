"""Fetching repositories with the git CLI into cached bare clones.

Each jobset keeps its own bare clone under `evaluator.work_dir`, so two jobsets never
race on one fetch; branches are mirrored as `refs/heads/*` so Nix can be pointed at the
clone with `ref=<branch>&rev=<sha>`.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import attrs

from circus.evaluator import proc


class GitError(Exception):
    """A git command failed; the message is git's own."""


@attrs.frozen
class Revision:
    url: str
    branch: str
    commit: str
    clone: Path


async def _git(*args: str, limit: float) -> str:
    try:
        done = await proc.run(["git", *args], limit=limit)
    except proc.ProcTimeout as exc:
        raise GitError(f"git {args[0] if args else ''} timed out after {exc.seconds:g} s "
                       "(evaluator.git_timeout)") from None
    if not done.ok:
        raise GitError(done.stderr.strip() or f"git {' '.join(args)} exited {done.returncode}")
    return done.stdout.decode().strip()


async def default_branch(url: str, limit: float) -> str:
    """The branch the remote's HEAD points at."""
    out = await _git("ls-remote", "--symref", "--", url, "HEAD", limit=limit)
    for line in out.splitlines():
        if line.startswith("ref: refs/heads/") and line.endswith("\tHEAD"):
            return line[len("ref: refs/heads/"):-len("\tHEAD")]
    raise GitError(f"{url}: cannot tell the default branch (no HEAD); set the jobset's branch")


async def fetch(url: str, branch: str | None, clone: Path, limit: float) -> Revision:
    """Bring `clone` up to date with `url` and return the tip of `branch`."""
    if await asyncio.to_thread(_needs_init, clone):
        await _git("init", "--quiet", "--bare", str(clone), limit=limit)
    branch = branch or await default_branch(url, limit)
    # "--": a URL starting with a dash is a repository, never an option.
    await _git("-C", str(clone), "fetch", "--quiet", "--prune", "--force", "--", url,
               "+refs/heads/*:refs/heads/*", limit=limit)
    try:
        commit = await _git("-C", str(clone), "rev-parse", "--verify", "--quiet",
                            f"refs/heads/{branch}^{{commit}}", limit=limit)
    except GitError:
        raise GitError(f"{url}: branch {branch!r} does not exist") from None
    return Revision(url=url, branch=branch, commit=commit, clone=clone)


async def checkout(rev: Revision, dest: Path, limit: float) -> Path:
    """A fresh tree of `rev` at `dest` (no stale files from an earlier commit)."""
    await asyncio.to_thread(_empty_dir, dest)
    await _git(f"--git-dir={rev.clone}", f"--work-tree={dest}", "checkout", "--quiet", "-f",
               rev.commit, "--", ".", limit=limit)
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
