"""Every git call Circus makes, through circus.proc.child.

A call that reaches a remote runs with the command line and environment that
circus.services.sources decides (`git_argv`, `git_env`): only the allowed protocols, no
prompt, no credential helper or askpass, no system or user configuration. Its stderr
may quote a URL with credentials: callers pass it through `sources.redact` before
showing it.
"""

from __future__ import annotations

from pathlib import Path

from circus.proc import child
from circus.services import sources


def command(args: tuple[str, ...]) -> str:
    """`git <subcommand>` for messages, past the options before it (`-C dir`, `--git-dir=`)."""
    words = iter(args)
    for word in words:
        if word == "-C" or word == "-c":
            next(words, None)
        elif not word.startswith("-"):
            return f"git {word}"
    return "git"


async def run(policy: sources.Policy, *args: str, limit: float | None = None,
              cwd: str | Path | None = None) -> child.Result:
    """`git <args>` under the rules of `policy`; ChildTimeout past `limit` seconds."""
    return await child.run(sources.git_argv(policy, *args), name=command(args),
                           limit=limit, cwd=cwd, env=sources.git_env())


def run_local(repo: Path, *args: str) -> child.Result:
    """`git -C repo <args>` on a repository Circus made itself (the demo's), with the
    user's own git configuration; ChildError when git fails."""
    return child.run_sync(["git", "-C", str(repo), *args], name=command(args), check=True)
