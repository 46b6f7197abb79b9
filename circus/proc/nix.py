"""Every Nix call Circus makes: the common flags, and one function per thing asked of Nix
(build, read a stored log, path infos, copy, sign, add a GC root, its configuration, a
NAR dump). All run through circus.proc.child; what Nix prints is read in circus/nix/.

Nix inherits the server's environment, so NIX_CONFIG and NIX_REMOTE apply to every call.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from circus.nix.build import LineSink, NixResult, Reader, result_of
from circus.nix.pathinfo import PathInfo
from circus.proc import child

# Passed on every call so Circus works whatever /etc/nix/nix.conf says.
FEATURES = ("--extra-experimental-features", "nix-command flakes")


def nix(*args: str) -> list[str]:
    """argv for the `nix` command with Circus's common flags."""
    return ["nix", *FEATURES, *args]


def legacy(tool: str, *args: str) -> list[str]:
    """argv for `nix-store`, `nix-instantiate`, ... with Circus's common flags."""
    return [tool, *FEATURES, *args]


async def run(*args: str, limit: float | None = None, check: bool = False,
              stdout: bool = True) -> child.Result:
    """`nix <args>`; errors name it by its subcommand (`nix path-info`)."""
    return await child.run(nix(*args), name=f"nix {args[0]}" if args else "nix",
                           limit=limit, check=check, stdout=stdout)


def build_argv(drv_path: str, timeout: int | None, max_silent: int | None,
               max_log_size: int | None = None, extra: Sequence[str] = ()) -> list[str]:
    args = ["build", "--no-link", "--json", "--log-format", "internal-json", *extra]
    if timeout:
        args += ["--timeout", str(timeout)]
    if max_silent:
        args += ["--max-silent-time", str(max_silent)]
    if max_log_size:
        args += ["--option", "max-build-log-size", str(max_log_size)]
    return nix(*args, drv_path)


async def build(argv: list[str], on_line: LineSink,
                env: Mapping[str, str] | None = None) -> NixResult:
    """Run one `nix build`, streaming its log lines to `on_line`; `env`: its whole
    environment (None: ours).

    Cancelling the awaiting task stops Nix (and with it the builder) before re-raising.
    """
    reader = Reader(on_line)
    done = await child.run(argv, name="nix build", on_stderr_line=reader.feed, env=env)
    return result_of(done.returncode, done.stdout, reader)


async def read_log(drv_path: str) -> list[str]:
    """The log Nix kept when it built `drv_path` earlier (empty when it kept none)."""
    done = await child.run(legacy("nix-store", "--read-log", drv_path),
                           name="nix-store --read-log")
    return done.text.splitlines() if done.ok else []


async def path_info(paths: list[str], closure: bool = True) -> list[PathInfo]:
    """Path infos of `paths` (and everything they reference when `closure`)."""
    if not paths:
        return []
    done = await run("path-info", "--json", *(["--recursive"] if closure else []), *paths,
                     check=True)
    return [PathInfo.from_json(e) for e in json.loads(done.stdout) if e.get("valid", True)]


async def copy(uri: str, paths: list[str]) -> child.Result:
    """`nix copy --to uri`: the paths and their closure."""
    return await run("copy", "--to", uri, *paths, stdout=False)


async def sign(key_file: str, paths: list[str]) -> child.Result:
    """Sign `paths` and their closure in the local store."""
    return await run("store", "sign", "--key-file", key_file, "--recursive", *paths,
                     stdout=False)


async def add_root(link: Path, store_path: str) -> None:
    """An indirect GC root `link` → `store_path`; ChildError when Nix refuses."""
    await child.run(legacy("nix-store", "--add-root", str(link), "--realise", store_path),
                    name="nix-store --add-root", stdout=False, check=True)


async def show_config() -> dict[str, Any]:
    """`nix show-config --json`: every setting with its value."""
    settings: dict[str, Any] = json.loads((await run("show-config", "--json",
                                                     check=True)).stdout)
    return settings


def dump(store_path: str) -> subprocess.Popen[bytes]:
    """`nix-store --dump`, its NAR on an unbuffered pipe for a reading thread; stop it
    with child.kill_now."""
    return child.spawn_reader(legacy("nix-store", "--dump", store_path))
