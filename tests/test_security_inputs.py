"""Issue 10, hole 2: jobset inputs. A `path` input pointed at `/` adds `-I root=/` to the
evaluation, so restricted evaluation lets the expression read any file of the server and
print it in an evaluation error. Every front end holds inputs to /api/v1's rule (adding
one needs administer), a path input must lie inside `evaluator.allowed_path_inputs`
(none by default), and the evaluator checks again, so a row written some other way
(declared, or from before the rule) cannot bypass it. Real PostgreSQL, git and Nix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import asyncpg
from aiohttp.test_utils import TestClient

from circus.app.context import Context
from tests.helpers.api import ADMIN, ROLE_KEYS, bearer
from tests.helpers.evaluator import create_jobset, evaluate_now
from tests.helpers.suite import host_system

CREATOR = bearer(ROLE_KEYS["create-projects"])
SECRET = "s3cr3t-0f-the-server"
# Reads a file through the path input's `-I root=…` and prints it in an evaluation
# error.
LEAK_NIX = """{ root }:
{
  leak = throw (builtins.readFile <root/server-secret>);
  fine = builtins.derivation { name = "fine"; system = "@SYSTEM@"; builder = "/bin/sh";
                               args = [ "-c" "/bin/mkdir $out" ]; };
}
"""


def _secret(tmp_path: Path) -> Path:
    path = tmp_path / "server-secret"
    path.write_text(SECRET)
    return path


def _leak_nix() -> str:
    return LEAK_NIX.replace("@SYSTEM@", host_system())


async def _hydra_project(client: TestClient, name: str = "p") -> None:
    resp = await client.put(f"/project/{name}", headers=CREATOR, json={"displayname": name})
    assert resp.status == 201, await resp.text()


def _legacy(repo: Path, root: str) -> dict:
    return {"type": 0, "nixexprinput": "src", "nixexprpath": "release.nix", "enabled": 1,
            "checkinterval": 0, "inputs": {
                "src": {"type": "git", "value": f"file://{repo} main"},
                "root": {"type": "path", "value": root}}}


async def _input_rows(pool: asyncpg.Pool) -> list[tuple[str, str]]:
    return [tuple(r) for r in await pool.fetch("SELECT name, value FROM jobset_inputs")]


async def test_hydra_put_jobset_path_input_needs_admin(client: TestClient, context: Context,
                                                       pool: asyncpg.Pool,
                                                       make_repo: Callable) -> None:
    context.config.server.allowed_url_schemes = ["file", "https"]
    repo = make_repo({"release.nix": _leak_nix()})
    await _hydra_project(client)
    resp = await client.put("/jobset/p/evil", headers=CREATOR, json=_legacy(repo, "/"))
    assert resp.status == 403, await resp.text()
    assert "may not add jobset inputs (root)" in (await resp.json())["error"]
    assert await pool.fetchval("SELECT count(*) FROM jobsets") == 0
    assert await _input_rows(pool) == []
    # The same creator may still make a legacy jobset whose only input is its source.
    plain = _legacy(repo, "/")
    del plain["inputs"]["root"]
    resp = await client.put("/jobset/p/plain", headers=CREATOR, json=plain)
    assert resp.status == 201, await resp.text()


async def test_path_inputs_only_inside_the_allow_list(client: TestClient, context: Context,
                                                      pool: asyncpg.Pool, make_repo: Callable,
                                                      tmp_path: Path) -> None:
    context.config.server.allowed_url_schemes = ["file", "https"]
    repo = make_repo({"release.nix": "{ ... }: { }"})
    await _hydra_project(client)
    # None by default: even an admin, on Hydra's API and on /api/v1.
    resp = await client.put("/jobset/p/evil", headers=ADMIN, json=_legacy(repo, "/"))
    assert resp.status == 400
    assert (await resp.json())["error"] == (
        "inputs.root.value: path inputs are disabled: evaluator.allowed_path_inputs lists "
        "no directory")
    project = await (await client.get("/api/v1/projects/p")).json()
    jobset = await (await client.post(f"/api/v1/projects/{project['id']}/jobsets",
                                      headers=ADMIN, json={"name": "j"})).json()
    inputs = f"/api/v1/projects/{project['id']}/jobsets/{jobset['id']}/inputs"
    resp = await client.post(inputs, headers=ADMIN,
                             json={"name": "root", "type": "path", "value": "/"})
    assert resp.status == 400 and (await resp.json())["error"].startswith("value: path inputs")

    allowed = tmp_path / "allowed"
    (allowed / "sub").mkdir(parents=True)
    (allowed / "escape").symlink_to("/")
    context.config.evaluator.allowed_path_inputs = [str(allowed)]
    for value in ("/", "/etc", f"{allowed}/../", f"{allowed}/escape", f"{allowed}-other",
                  "sub"):
        resp = await client.post(inputs, headers=ADMIN,
                                 json={"name": "root", "type": "path", "value": value})
        assert resp.status == 400, value
        assert (await resp.json())["error"].startswith("value: "), value
    resp = await client.post(inputs, headers=ADMIN,
                             json={"name": "root", "type": "path", "value": f"{allowed}/sub"})
    assert resp.status == 201, await resp.text()
    assert await _input_rows(pool) == [("root", f"{allowed}/sub")]


async def test_evaluation_refuses_a_path_input_written_around_the_api(
        context: Context, make_repo: Callable, tmp_path: Path) -> None:
    # A row as a declarative file or an older version could have written it; the
    # directory stands for /etc or ~/.ssh (Nix 2.8 never matches `/` itself).
    context.config.server.allowed_url_schemes = ["file"]
    secret = _secret(tmp_path)
    repo = make_repo({"release.nix": _leak_nix()})
    jobset_id = await create_jobset(context.pool, repo, flake=False, expression="release.nix",
                                    inputs=[("root", "path", str(secret.parent))])
    evaluation = await evaluate_now(context, jobset_id)
    assert evaluation["status"] == "failed"
    assert evaluation["error_message"] == (
        "refused to evaluate: inputs.root: path inputs are disabled: "
        "evaluator.allowed_path_inputs lists no directory")
    assert SECRET not in "\n".join(await _errors(context.pool))

    # The control: an operator who lists the directory gets what the attacker wanted, so
    # the refusal above is what kept the file in.
    context.config.evaluator.allowed_path_inputs = [str(secret.parent)]
    evaluation = await evaluate_now(context, jobset_id)
    assert evaluation["status"] == "succeeded", evaluation["error_message"]
    assert SECRET in "\n".join(await _errors(context.pool))


async def _errors(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch(
        "SELECT error_message FROM evaluation_errors UNION ALL "
        "SELECT error_message FROM evaluations WHERE error_message IS NOT NULL")
    return [r[0] for r in rows]
