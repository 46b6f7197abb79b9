"""/api/v1/admin/system (status) and /api/v1/admin/config (the effective configuration;
the declarative file, validated before it is written).

The declarative file is `$state_dir/declarative.toml`: one `[declarative]` table
(projects, api_keys, users, remote_builders) in the format of circus.toml. A PUT checks
it with `circus.config.structure` on top of the running configuration, so an error names
the key (`declarative.projects[0].name: required key is missing`) and nothing is written;
a valid file replaces the old one atomically. It takes effect when `circus run` next
starts (the running server does not apply it: the file may drop the very API keys of
the configuration file the server started with).
"""

from __future__ import annotations

import os
import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import structlog
import tomli_w
from aiohttp import web

from circus.app import config as configuration
from circus.server.accounts import auth
from circus.server.http import params, responses
from circus.server.http.errors import ApiError, bad_field
from circus.server.http.keys import CONTEXT
from circus.server.http.openapi import ANY, BOOL, INT, STR, TIME, doc, nullable, obj
from circus.store import metrics

log = structlog.get_logger(__name__)


SYSTEM = obj(version=STR, instance=STR, postgres_version=STR, database_size_bytes=INT,
             builds_queued=INT, builds_running=INT, evaluations_running=INT, projects=INT,
             jobsets=INT, now=TIME)
CONFIG = obj(effective=ANY, declarative_path=STR, declarative=nullable(ANY),
             declarative_toml=nullable(STR))
# Exactly one of the two (see _declared_table).
CONFIG_BODY = {**obj(required=(), declarative={"type": "object"}, toml=STR),
               "oneOf": [{"required": ["declarative"]}, {"required": ["toml"]}]}
SAVED = obj(saved=BOOL, declarative_path=STR, declarative=ANY, applies=STR)


def declarative_path(config: configuration.Config) -> Path:
    return Path(config.state_dir) / configuration.DECLARATIVE_FILE


@doc("System status: version, database, queue and evaluation counts", response=SYSTEM,
     permission=auth.ADMIN, tags=("admin",))
@auth.requires(auth.ADMIN)
async def system_status(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    row = await metrics.system_status(ctx.pool)
    return responses.ok({"version": version("circus-ci"), "instance": ctx.instance,
                         **dict(row)})


def _read_declarative(path: Path) -> tuple[str | None, dict[str, Any] | None]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None, None
    try:
        return text, tomllib.loads(text).get("declarative", {})
    except tomllib.TOMLDecodeError:
        return text, None


@doc("The effective configuration and the declarative file, secrets shown as (set)",
     response=CONFIG, permission=auth.ADMIN, tags=("admin",))
@auth.requires(auth.ADMIN)
async def get_config(request: web.Request) -> web.Response:
    config = request.app[CONTEXT].config
    path = declarative_path(config)
    text, table = _read_declarative(path)
    effective = tomllib.loads(configuration.to_toml(config, redact=True))
    # The file holds passwords and keys: shown redacted like the rest, never as written.
    shown = None if table is None else configuration.redacted(table)
    shown_text = None if shown is None else tomli_w.dumps({"declarative": shown})
    if text is not None and table is None:
        log.warning("declarative file is not valid TOML; not shown", path=str(path))
    return responses.ok({"effective": effective, "declarative_path": str(path),
                         "declarative": shown, "declarative_toml": shown_text})


def _declared_table(body: dict[str, Any]) -> dict[str, Any]:
    """The `[declarative]` table from `{"declarative": {...}}` or `{"toml": "..."}`."""
    if ("declarative" in body) == ("toml" in body):
        raise ApiError(400, "body: give exactly one of `declarative` (an object) or `toml` "
                            "(the file's text)")
    if "toml" in body:
        text = params.text(body, "toml")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise bad_field("toml", f"not valid TOML: {exc}") from None
        extra = sorted(set(data) - {"declarative"})
        if extra:
            raise bad_field(extra[0], "unknown key: the file holds only [declarative]")
        table = data.get("declarative", {})
    else:
        table = body["declarative"]
    if not isinstance(table, dict):
        raise bad_field("declarative", "expected an object")
    marker = _redaction_marker(table, "declarative")
    if marker:
        # A GET shows secrets as (set); saving that back would replace them with it.
        raise bad_field(marker, f"{configuration.SET!r} is how secrets are shown, not a "
                                "secret: give the value, or its *_file")
    return table


def _redaction_marker(node: Any, where: str) -> str | None:
    """The first key whose value is the redaction marker, as `declarative.users[0].password`."""
    if isinstance(node, dict):
        items = [(f"{where}.{k}", v) for k, v in node.items()]
    elif isinstance(node, list):
        items = [(f"{where}[{i}]", v) for i, v in enumerate(node)]
    else:
        return where if node == configuration.SET else None
    return next((found for key, value in items
                 if (found := _redaction_marker(value, key))), None)


def _validate(config: configuration.Config, table: dict[str, Any]) -> None:
    running = configuration.converter.unstructure(config)
    running["declarative"] = table
    try:
        configuration.structure(_drop_none(running))
    except configuration.ConfigError as exc:
        raise ApiError(400, str(exc).removeprefix("invalid configuration: ")) from None
    try:
        tomli_w.dumps({"declarative": table})
    except (TypeError, ValueError) as exc:  # e.g. a null, which TOML cannot hold
        raise bad_field("declarative", f"cannot be written as TOML: {exc}") from None


def _drop_none(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _drop_none(v) for k, v in node.items() if v is not None}
    if isinstance(node, list):
        return [_drop_none(v) for v in node]
    return node


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@doc("Replace the declarative file (validated first; applied at the next start)",
     response=SAVED, body=CONFIG_BODY, permission=auth.ADMIN, tags=("admin",),
     description="Body: `{\"declarative\": {...}}` (the `[declarative]` table as JSON) or "
                 "`{\"toml\": \"[declarative]...\"}`. A 400 names the offending key and "
                 "leaves the file as it was.")
@auth.requires(auth.ADMIN)
async def put_config(request: web.Request) -> web.Response:
    config = request.app[CONTEXT].config
    table = _declared_table(await params.json_body(request))
    _validate(config, table)
    path = declarative_path(config)
    _write_atomically(path, tomli_w.dumps({"declarative": table}))
    log.info("declarative file saved", path=str(path), keys=sorted(table))
    return responses.ok({"saved": True, "declarative_path": str(path), "declarative": table,
                         "applies": "next start"})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/v1/admin/system", system_status)
    router.add_get("/api/v1/admin/config", get_config)
    router.add_put("/api/v1/admin/config", put_config)
