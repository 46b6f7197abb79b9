"""Circus rows in Hydra's JSON shapes, field for field.

Hydra's serialisers decide the types, and clients depend on them: some columns are raw
integers (`finished` 0/1, jobset `enabled` 0-3, `type` 0 legacy / 1 flake,
`hasnewbuilds`), some are booleans (project `enabled`/`hidden`, jobset `visible`,
`enableemail`), "string columns" are "" rather than null, times are Unix seconds or
null. Several documents are read for many rows at once, so these functions take the
batches the `hydra_*` queries return.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import asyncpg

from circus.store import builds as build_rows
from circus.store import evaluations as evaluation_rows

Json = dict[str, Any]


def epoch(value: datetime.datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


def project(row: asyncpg.Record) -> Json:
    return {
        "name": row["name"],
        "displayname": row["display_name"],
        "description": row["description"],
        "homepage": row["homepage"],
        # Who created it; Hydra's `declarative` key is only for a project with a
        # declarative spec file, which Circus projects never have (they are declared in
        # the configuration).
        "owner": row["owner"],
        "enabled": row["enabled"],
        "hidden": False,
        "enable_dynamic_run_command": False,
        "jobsets": list(row["jobsets"]),
    }


def flake_uri(repository_url: str, branch: str | None) -> str:
    """The flake reference a Circus flake jobset stands for (Hydra's `flake`)."""
    base = repository_url if repository_url.startswith("git+") else f"git+{repository_url}"
    if repository_url.startswith("/"):
        base = f"git+file://{repository_url}"
    return f"{base}?{urlencode({'ref': branch})}" if branch else base


def parse_flake(uri: str) -> tuple[str, str | None]:
    """(repository URL, branch) of a `git+…` flake reference; others are used as is."""
    parts = urlsplit(uri.removeprefix("git+"))
    query = dict(parse_qsl(parts.query))
    url = parts._replace(query="", fragment="").geturl()
    return url, query.get("ref")


def _input(row: asyncpg.Record) -> Json:
    return {"name": row["name"], "type": row["type"], "value": row["value"],
            "emailresponsible": False}


def jobset(row: asyncpg.Record, inputs: list[asyncpg.Record]) -> Json:
    flake = bool(row["flake"])
    nixexprinput = ""
    if not flake:
        # The input whose checkout holds the expression: the git input on the project's
        # repository (see hydra_jobsets.put_jobset), else the first git input.
        gits = [i for i in inputs if i["type"] == "git"]
        main = [i for i in gits if i["value"].split()[:1] == [row["repository_url"]]]
        nixexprinput = (main or gits)[0]["name"] if gits else ""
    return {
        "name": row["name"],
        "project": row["project"],
        "description": row["description"],
        "nixexprinput": nixexprinput,
        "nixexprpath": "" if flake else row["nix_expression"],
        "errormsg": row["error_message"] or "",
        "errortime": epoch(row["error_time"]),
        "lastcheckedtime": epoch(row["last_checked_at"]),
        "triggertime": epoch(row["trigger_time"]),
        "enabled": row["enabled"],
        "enableemail": False,
        "enable_dynamic_run_command": False,
        "visible": not row["hidden"],
        "emailoverride": "",
        "keepnr": row["keep_evaluations"],
        "checkinterval": row["check_interval"],
        "schedulingshares": row["scheduling_shares"],
        "fetcherrormsg": "",
        "starttime": epoch(row["eval_started_at"]),
        "type": 1 if flake else 0,
        "flake": flake_uri(row["repository_url"], row["branch"]) if flake else "",
        "inputs": {i["name"]: _input(i) for i in inputs},
    }


def _eval_input(row: asyncpg.Record) -> Json:
    vcs = row["type"] == "git"
    return {
        "type": row["type"],
        "uri": row["uri"] if vcs else None,
        "revision": row["revision"] if vcs else None,
        "value": None if vcs else row["value"],
        "dependency": None,
    }


async def evaluations(conn: asyncpg.Pool | asyncpg.Connection,
                      rows: list[asyncpg.Record]) -> list[Json]:
    ids = [r["id"] for r in rows]
    inputs: dict[int, Json] = defaultdict(dict)
    for i in await evaluation_rows.inputs_of(conn, ids):
        inputs[i["evaluation_id"]][i["name"]] = _eval_input(i)
    members: dict[int, list[int]] = defaultdict(list)
    for m in await evaluation_rows.members_of(conn, ids):
        members[m["evaluation_id"]].append(m["build_id"])
    out = []
    for r in rows:
        started, finished = r["started_at"], r["finished_at"]
        out.append({
            "id": r["id"],
            "timestamp": epoch(r["created_at"]),
            "checkouttime": 0,
            "evaltime": int((finished - started).total_seconds()) if finished else 0,
            "hasnewbuilds": 1 if r["nr_new_builds"] > 0 else 0,
            "flake": r["flake_uri"] or None,
            "builds": members[r["id"]],
            "jobsetevalinputs": inputs[r["id"]],
        })
    return out


async def eval_summaries(conn: asyncpg.Pool | asyncpg.Connection,
                         rows: list[asyncpg.Record]) -> list[Json]:
    """/evals entries as Hydra's getEvals makes them: the evaluation, its counts, the
    change in successes and the VCS inputs that changed since the jobset's previous one."""
    previous = [r["previous_id"] for r in rows if r["previous_id"] is not None]
    ids = [r["id"] for r in rows] + previous
    counts = await evaluation_rows.builds_counted(conn, ids)
    vcs: dict[int, dict[str, Json]] = defaultdict(dict)
    for i in await evaluation_rows.inputs_of(conn, ids):
        if i["type"] == "git":
            vcs[i["evaluation_id"]][i["name"]] = _eval_input(i)
    docs = await evaluations(conn, rows)
    out = []
    for row, doc in zip(rows, docs, strict=True):
        total, scheduled, succeeded = _counts(counts.get(row["id"]))
        before = row["previous_id"]
        old = vcs.get(before, {}) if before is not None else {}
        out.append({
            "eval": doc, "nrScheduled": scheduled, "nrSucceeded": succeeded,
            "nrFailed": total - succeeded - scheduled,
            "diff": succeeded - _counts(counts.get(before))[2] if before is not None else 0,
            "changedInputs": [value for name, value in sorted(vcs[row["id"]].items())
                              if old.get(name) != value]})
    return out


def _counts(row: asyncpg.Record | None) -> tuple[int, int, int]:
    return (row["total"], row["scheduled"], row["succeeded"]) if row else (0, 0, 0)


async def builds(conn: asyncpg.Pool | asyncpg.Connection, ids: list[int]) -> list[Json]:
    """The builds with these ids (those that exist), in id order."""
    rows = await build_rows.by_ids(conn, ids)
    outputs = await build_rows.outputs(conn, ids)
    products = await build_rows.products(conn, ids)
    metrics = await build_rows.metrics(conn, ids)
    evals = await build_rows.evaluation_ids(conn, ids)
    out = []
    for r in rows:
        finished = r["state"] == "finished"
        out.append({
            "id": r["id"],
            "finished": 1 if finished else 0,
            "timestamp": epoch(r["created_at"]),
            "starttime": epoch(r["started_at"]),
            "stoptime": epoch(r["finished_at"]),
            "project": r["project"],
            "jobset": r["jobset"],
            "job": r["job"],
            "nixname": r["nix_name"],
            "system": r["system"],
            "priority": r["priority"],
            "buildstatus": r["buildstatus"] if finished else None,
            "releasename": None,
            "drvpath": r["drv_path"],
            "jobsetevals": evals[r["id"]],
            "buildoutputs": {o["name"]: {"path": o["path"]} for o in outputs[r["id"]]},
            "buildproducts": {str(p["product_nr"]): _product(p) for p in products[r["id"]]},
            "buildmetrics": {m["name"]: {"name": m["name"], "value": m["value"],
                                         "unit": m["unit"]} for m in metrics[r["id"]]},
        })
    return out


async def listed_builds(conn: asyncpg.Pool | asyncpg.Connection, ids: list[int]
                        ) -> list[Json]:
    """/api/latestbuilds and /api/queue items, in the order of `ids`: Hydra's buildToHash,
    with `buildstatus` once finished and `priority` before."""
    rows = {r["id"]: r for r in await build_rows.by_ids(conn, ids)}
    out = []
    for r in (rows[i] for i in ids if i in rows):
        finished = r["state"] == "finished"
        item = {"id": r["id"], "project": r["project"], "jobset": r["jobset"], "job": r["job"],
                "system": r["system"], "nixname": r["nix_name"], "finished": 1 if finished else 0,
                "timestamp": epoch(r["created_at"])}
        if finished:
            item["buildstatus"] = r["buildstatus"]
        else:
            item["priority"] = r["priority"]
        out.append(item)
    return out


def _product(row: Mapping[str, Any]) -> Json:
    return {
        "type": row["type"],
        "subtype": row["subtype"],
        "name": row["name"],
        "path": row["path"],
        "defaultpath": row["default_path"],
        "filesize": row["file_size"],
        "sha256hash": row["sha256"],
    }


def overview(row: asyncpg.Record) -> Json:
    """One entry of /api/jobsets."""
    return {
        "name": row["name"],
        "project": row["project"],
        "nrtotal": row["nrtotal"],
        "nrscheduled": row["nrscheduled"],
        "nrfailed": row["nrfailed"],
        "nrsucceeded": row["nrsucceeded"],
        "checkinterval": row["check_interval"],
        "haserrormsg": bool(row["error_message"]),
        "errortime": epoch(row["error_time"]),
        "fetcherrormsg": "",
        "starttime": epoch(row["eval_started_at"]),
        "lastcheckedtime": epoch(row["last_checked_at"]),
        "triggertime": epoch(row["trigger_time"]),
    }
