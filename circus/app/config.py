"""Settings: attrs classes with the defaults of the option table, loaded from TOML and
`CIRCUS_*` environment variables, validated once at start-up.

Precedence: defaults < ./circus.toml < $CIRCUS_CONFIG_FILE < CIRCUS_SECTION__KEY.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
import types
import typing
import urllib.parse
from pathlib import Path
from typing import Any, Literal

import attrs
import cattrs
import tomli_w

from circus.domain.builders import BuilderSpec
from circus.domain.errors import InvalidValue

ENV_PREFIX = "CIRCUS_"
# Keys whose values are secrets (see `redacted`); with any key ending in _token, _secret,
# _password or webhook_url.
SECRET_KEYS = {"client_secret", "github_token", "gitea_token", "gitlab_token", "api_key", "key",
               "password", "secret", "token", "ssh_key", "private_key", "secret_key"}


class ConfigError(Exception):
    """A configuration problem, phrased as one line naming the key."""


class BadValue(ValueError):
    """A validator's complaint about one key of an attrs class."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _positive(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and value <= 0:
        raise BadValue(attribute.name, f"must be greater than 0, got {value}")


def _non_negative(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and value < 0:
        raise BadValue(attribute.name, f"must be 0 or more, got {value}")


def _addresses(_inst: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    # Passed to pg_ctl inside quotes: host names, addresses, "*" and commas only.
    if not re.fullmatch(r"[0-9A-Za-z.:*,\s-]*", value):
        raise BadValue(attribute.name, "must be addresses or host names separated by "
                       f"commas, or \"*\", got {value!r}")


def _port(_inst: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if not 0 <= value <= 65535:
        raise BadValue(attribute.name, f"must be a TCP port between 0 and 65535, got {value}")


@attrs.define
class DatabaseConfig:
    # None: start the embedded PostgreSQL under the state directory.
    url: str | None = None
    max_connections: int = attrs.field(default=20, validator=_positive)
    min_connections: int = attrs.field(default=5, validator=_non_negative)
    connect_timeout: int = attrs.field(default=30, validator=_positive)
    idle_timeout: int = attrs.field(default=600, validator=_positive)
    max_lifetime: int = attrs.field(default=1800, validator=_positive)
    # Not in the seed's table: seconds one statement of a pooled connection may run before
    # PostgreSQL cancels it (0: no limit), so no request can hold the database for long.
    # Migrations and evaluation ingest lift it for their own transactions (issue 10).
    statement_timeout: int = attrs.field(default=30, validator=_non_negative)
    # Not in the seed's table: the addresses the embedded server listens on besides its
    # socket (PostgreSQL's listen_addresses, e.g. "10.0.0.1" or "*"), so runners on other
    # hosts can connect; empty: the socket only. See the README for pg_hba.conf.
    listen: str = attrs.field(default="", validator=_addresses)
    # Not in the seed's table: the embedded server's TCP port (and its socket's name).
    port: int = attrs.field(default=5432, validator=_port)

    def __attrs_post_init__(self) -> None:
        if self.min_connections > self.max_connections:
            raise BadValue(
                "min_connections",
                f"must not exceed max_connections ({self.max_connections}), "
                f"got {self.min_connections}",
            )


@attrs.define
class LdapConfig:
    url: str | None = None
    bind_dn_template: str | None = None
    base_dn: str | None = None
    tls_ca_cert: str | None = None


@attrs.define
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = attrs.field(default=3000, validator=_port)
    request_timeout: int = attrs.field(default=30, validator=_positive)
    max_body_size: int = attrs.field(default=10485760, validator=_positive)
    api_key: str | None = None
    cors_permissive: bool = False
    allowed_origins: list[str] = attrs.Factory(list)
    force_secure_cookies: bool = False
    rate_limit_rps: int | None = attrs.field(default=None, validator=_positive)
    rate_limit_burst: int | None = attrs.field(default=None, validator=_positive)
    allowed_url_schemes: list[str] = attrs.Factory(list)
    # Not in the seed's table: repository URLs may name loopback, link-local (cloud
    # metadata), RFC 1918, CGNAT and ULA addresses; refused by default (issue 10).
    allow_private_addresses: bool = False
    # Not in the seed's table: long-lived streams (SSE, NARs) open at once on this server,
    # and per client address; beyond them a stream is refused with 503 / 429 (issue 10).
    max_streams: int = attrs.field(default=256, validator=_positive)
    max_streams_per_client: int = attrs.field(default=8, validator=_positive)
    # Not in the seed's table: failed password logins of one account before each further
    # attempt waits, the wait doubling from 1 s (checked before hashing; issue 10).
    login_free_failures: int = attrs.field(default=5, validator=_positive)
    # Not in the seed's table: the longest such wait in seconds; an account's failures
    # older than this are forgotten, so an attacker cannot lock a user out for good.
    login_backoff_max: int = attrs.field(default=900, validator=_positive)
    # Not in the seed's table: password attempts per client address, a token bucket of
    # this many that refills at login_attempts_per_minute (each attempt costs an argon2).
    login_attempts_burst: int = attrs.field(default=20, validator=_positive)
    login_attempts_per_minute: int = attrs.field(default=20, validator=_positive)
    # Not in the seed's table: URLs the server publishes (a channel's binary-cache-url)
    # may be built from the request's Host header; off by default, since any client
    # chooses that header (issue 10). Behind a proxy, set cache.cache_url instead.
    trust_host_header: bool = False
    # Not in the seed's table (issue 13): the server's address as users reach it, for the
    # links in commit statuses and notifications; default http://host:port.
    public_url: str | None = None
    ldap: LdapConfig = attrs.Factory(LdapConfig)


@attrs.define
class EvaluatorConfig:
    poll_interval: int = attrs.field(default=60, validator=_positive)
    git_timeout: int = attrs.field(default=600, validator=_positive)
    nix_timeout: int = attrs.field(default=1800, validator=_positive)
    max_concurrent_evals: int = attrs.field(default=4, validator=_positive)
    # Not in the seed's table (issue 16): Nix processes per evaluation, each walking a
    # share of the jobs, and the resident memory past which one is restarted.
    workers: int = attrs.field(factory=lambda: os.cpu_count() or 1, validator=_positive)
    max_memory_mb: int = attrs.field(default=4096, validator=_positive)
    work_dir: str = "/tmp/circus-evaluator"
    restrict_eval: bool = True
    allow_ifd: bool = False
    strict_errors: bool = False
    # Not in the seed's table: directories a `path` input may name (itself or below,
    # symlinks resolved); empty: no path input is saved or evaluated (issue 10).
    allowed_path_inputs: list[str] = attrs.Factory(list)


SchedulingStrategy = Literal["speed_factor_only", "psi_aware", "round_robin"]


@attrs.define
class QueueRunnerConfig:
    workers: int = attrs.field(default=4, validator=_positive)
    poll_interval: int = attrs.field(default=5, validator=_positive)
    build_timeout: int = attrs.field(default=3600, validator=_positive)
    work_dir: str = "/tmp/circus-queue-runner"
    strict_errors: bool = False
    failed_paths_cache: bool = True
    failed_paths_ttl: int = attrs.field(default=86400, validator=_non_negative)
    unsupported_timeout: int | None = attrs.field(default=None, validator=_positive)
    scheduling_strategy: SchedulingStrategy = "speed_factor_only"
    psi_threshold: float | None = attrs.field(default=None, validator=_non_negative)
    psi_check_timeout: int = attrs.field(default=5, validator=_positive)
    # Not in the seed's table: how long a claimed build stays ours without a heartbeat.
    lease_seconds: int = attrs.field(default=30, validator=_positive)
    # Not in the seed's table: how long a build may finish up after SIGTERM.
    shutdown_grace: int = attrs.field(default=30, validator=_non_negative)
    # Not in the seed's table: the `system`s this runner builds (empty: the host's).
    systems: list[str] = attrs.Factory(list)
    # Not in the seed's table: how often a build that failed because of the machine (Nix
    # could not start, no store, no builder) is queued again before it ends as aborted.
    infrastructure_retries: int = attrs.field(default=2, validator=_non_negative)
    # Not in the seed's table: seconds between health probes of each remote builder (and
    # between the probes that bring a disabled one back once its back-off is over).
    builder_probe_interval: int = attrs.field(default=30, validator=_positive)
    # Not in the seed's table: the longest back-off of a failing builder, in seconds.
    builder_max_backoff: int = attrs.field(default=600, validator=_positive)


@attrs.define
class GcConfig:
    enabled: bool = True
    gc_roots_dir: str = "/nix/var/nix/gcroots/per-user/circus/circus-roots"
    max_age_days: int = attrs.field(default=30, validator=_positive)
    cleanup_interval: int = attrs.field(default=3600, validator=_positive)


@attrs.define
class LogsConfig:
    log_dir: str = "/var/lib/circus/logs"
    compress: bool = False
    # Bytes of log one build may write (Hydra's max_log_size, 64 MiB); past it the build
    # is stopped with status 10 and nothing more is stored. 0: unlimited.
    max_size: int = attrs.field(default=64 << 20, validator=_non_negative)


Compression = Literal["none", "zstd", "xz", "bzip2", "br"]


@attrs.define
class CacheConfig:
    enabled: bool = True
    secret_key_file: str | None = None
    compression: Compression = "zstd"
    cache_url: str | None = None


@attrs.define
class SigningConfig:
    enabled: bool = False
    key_file: str | None = None


@attrs.define
class S3Config:
    region: str | None = None
    prefix: str | None = None
    endpoint_url: str | None = None
    use_path_style: bool = False


@attrs.define
class CacheUploadConfig:
    enabled: bool = False
    store_uri: str | None = None
    s3: S3Config = attrs.Factory(S3Config)
    upload_concurrency: int = attrs.field(default=4, validator=_positive)
    upload_max_retries: int = attrs.field(default=3, validator=_non_negative)
    fail_build_on_upload_error: bool = False


@attrs.define
class EmailConfig:
    smtp_host: str | None = None
    smtp_port: int | None = attrs.field(default=None, validator=_positive)
    from_address: str | None = None
    to_addresses: list[str] = attrs.Factory(list)


@attrs.define
class SlackConfig:
    webhook_url: str | None = None
    on_failure_only: bool = False


CommitStatus = Literal["evaluation", "job"]


@attrs.define
class WebhooksConfig:
    """Not in the seed's table (issue 13): webhooks from forges."""

    # The Fernet key that encrypts webhook secrets and per-project notification tokens
    # in the database; created (mode 0600) under state_dir when missing.
    secret_key_file: str | None = None
    # Deliveries accepted per project and minute (a token bucket), and the largest body.
    rate_limit_per_minute: int = attrs.field(default=120, validator=_positive)
    max_body_size: int = attrs.field(default=5 * 1024 * 1024, validator=_positive)
    # How long a closed pull request's jobset is kept.
    pull_request_retention_days: int = attrs.field(default=7, validator=_non_negative)


@attrs.define
class NotificationsConfig:
    webhook_url: str | None = None
    github_token: str | None = None
    gitea_url: str | None = None
    gitea_token: str | None = None
    gitlab_url: str | None = None
    gitlab_token: str | None = None
    enable_retry_queue: bool = True
    max_retry_attempts: int = attrs.field(default=5, validator=_non_negative)
    retention_days: int = attrs.field(default=7, validator=_positive)
    retry_poll_interval: int = attrs.field(default=5, validator=_positive)
    email: EmailConfig = attrs.Factory(EmailConfig)
    slack: SlackConfig = attrs.Factory(SlackConfig)
    # Not in the seed's table (issue 13): GitHub's API root (GitHub Enterprise: its
    # /api/v3), one commit status per evaluation or one per job, whether deliveries may
    # go to loopback and private addresses, and each request's time limit in seconds.
    github_api_url: str = "https://api.github.com"
    commit_status: CommitStatus = "evaluation"
    allow_private_targets: bool = False
    http_timeout: int = attrs.field(default=10, validator=_positive)


LogLevel = Literal["trace", "debug", "info", "warn", "error"]
LogFormat = Literal["compact", "json", "pretty", "full"]


@attrs.define
class TracingConfig:
    level: LogLevel = "info"
    format: LogFormat = "compact"
    show_targets: bool = True
    show_timestamps: bool = True


@attrs.define
class GithubOAuthConfig:
    client_id: str | None = None
    client_secret: str | None = None
    redirect_uri: str | None = None
    # Not in the seed's table: GitHub's endpoints, replaceable for tests and GitHub Enterprise.
    authorize_url: str = "https://github.com/login/oauth/authorize"
    token_url: str = "https://github.com/login/oauth/access_token"
    api_url: str = "https://api.github.com"


@attrs.define
class OAuthConfig:
    github: GithubOAuthConfig = attrs.Factory(GithubOAuthConfig)


Role = Literal[
    "admin", "read-only", "create-projects", "eval-jobset", "cancel-build",
    "restart-jobs", "bump-to-front",
]
InputType = Literal["string", "boolean", "nix", "path", "git"]


@attrs.define
class DeclarativeApiKey:
    name: str
    role: Role
    key: str | None = None
    key_file: str | None = None

    def __attrs_post_init__(self) -> None:
        if (self.key is None) == (self.key_file is None):
            raise ValueError(f"api key {self.name!r} needs exactly one of key or key_file")

    def secret(self) -> str:
        if self.key is not None:
            return self.key
        return Path(self.key_file or "").read_text().strip()


@attrs.define
class DeclarativeUser:
    username: str
    role: Role
    email: str | None = None
    password: str | None = None
    password_file: str | None = None
    enabled: bool = True

    def __attrs_post_init__(self) -> None:
        if (self.password is None) == (self.password_file is None):
            raise ValueError(
                f"user {self.username!r} needs exactly one of password or password_file")

    def secret(self) -> str:
        if self.password is not None:
            return self.password
        return Path(self.password_file or "").read_text().strip()


@attrs.define
class DeclarativeInput:
    name: str
    type: InputType
    value: str


@attrs.define
class DeclarativeJobset:
    name: str
    nix_expression: str = "hydraJobs"
    flake: bool = True
    branch: str | None = None
    check_interval: int = attrs.field(default=60, validator=_non_negative)
    enabled: bool = True
    description: str = ""
    inputs: list[DeclarativeInput] = attrs.Factory(list)


@attrs.define
class DeclarativeProject:
    name: str
    repository_url: str
    description: str = ""
    jobsets: list[DeclarativeJobset] = attrs.Factory(list)


@attrs.define
class DeclarativeBuilder:
    """A remote builder (circus/domain/builders.py checks it, as the API does)."""

    name: str
    ssh_uri: str
    systems: list[str]
    # Required: a builder whose host key is not pinned is never connected to.
    public_host_key: str
    max_jobs: int = 1
    speed_factor: float = 1.0
    supported_features: list[str] = attrs.Factory(list)
    mandatory_features: list[str] = attrs.Factory(list)
    # A path on each runner host; the key itself is never read by the server.
    ssh_key_file: str | None = None
    enabled: bool = True

    def __attrs_post_init__(self) -> None:
        try:
            self.spec()
        except InvalidValue as exc:
            raise BadValue(exc.field, exc.problem) from None

    def spec(self, where: str = "") -> BuilderSpec:
        return BuilderSpec.parse(attrs.asdict(self), where=where)


@attrs.define
class DeclarativeConfig:
    projects: list[DeclarativeProject] = attrs.Factory(list)
    api_keys: list[DeclarativeApiKey] = attrs.Factory(list)
    users: list[DeclarativeUser] = attrs.Factory(list)
    remote_builders: list[DeclarativeBuilder] = attrs.Factory(list)

    def __attrs_post_init__(self) -> None:
        names = [b.name for b in self.remote_builders]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise BadValue("remote_builders", f"{twice[0]!r} is declared twice")


@attrs.define
class SrhtConfig:
    """Not in the seed's table: the builds.sr.ht jobs API (`/api/jobs`)."""

    # A manifest's `image` -> a flake reference whose `packages.<system>` (or
    # `legacyPackages.<system>`) gives the manifest's `packages`.
    images: dict[str, str] = attrs.Factory(dict)
    # Seconds a job may run in all, from setup to its last task.
    job_timeout: int = attrs.field(default=3600, validator=_positive)
    # Jobs one runner process runs at once.
    workers: int = attrs.field(default=1, validator=_non_negative)
    # A task's log is cut here (bytes; the job goes on).
    max_log_bytes: int = attrs.field(default=64 << 20, validator=_positive)
    max_artifact_bytes: int = attrs.field(default=1 << 30, validator=_positive)


@attrs.define
class Config:
    # Not in the seed's table: where the embedded database and default work dirs live.
    state_dir: str = "./circus-state"
    database: DatabaseConfig = attrs.Factory(DatabaseConfig)
    server: ServerConfig = attrs.Factory(ServerConfig)
    evaluator: EvaluatorConfig = attrs.Factory(EvaluatorConfig)
    queue_runner: QueueRunnerConfig = attrs.Factory(QueueRunnerConfig)
    gc: GcConfig = attrs.Factory(GcConfig)
    logs: LogsConfig = attrs.Factory(LogsConfig)
    cache: CacheConfig = attrs.Factory(CacheConfig)
    signing: SigningConfig = attrs.Factory(SigningConfig)
    cache_upload: CacheUploadConfig = attrs.Factory(CacheUploadConfig)
    notifications: NotificationsConfig = attrs.Factory(NotificationsConfig)
    webhooks: WebhooksConfig = attrs.Factory(WebhooksConfig)
    tracing: TracingConfig = attrs.Factory(TracingConfig)
    oauth: OAuthConfig = attrs.Factory(OAuthConfig)
    declarative: DeclarativeConfig = attrs.Factory(DeclarativeConfig)
    srht: SrhtConfig = attrs.Factory(SrhtConfig)


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)

    def strict_scalar(kind: type) -> Any:
        def structure(value: Any, _t: Any) -> Any:
            # bool is an int in Python; TOML keeps them apart, and so do we.
            if isinstance(value, bool) and kind is not bool:
                raise TypeError(f"expected {kind.__name__}, got a boolean")
            if kind is float and isinstance(value, int):
                return float(value)
            if not isinstance(value, kind):
                raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
            return value

        return structure

    for kind in (str, int, float, bool):
        conv.register_structure_hook(kind, strict_scalar(kind))

    def literal(value: Any, lit: Any) -> Any:
        choices = typing.get_args(lit)
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(map(str, choices))}, got {value!r}")
        return value

    def is_literal(kind: Any) -> bool:
        return typing.cast(Any, typing.get_origin(kind)) is Literal

    conv.register_structure_hook_func(is_literal, literal)
    conv.register_structure_hook_func(lambda t: t == dict[str, Any], lambda v, _t: _table(v))
    return conv


def _table(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected a table, got {type(value).__name__}")
    return dict(value)


converter = _make_converter()


def _describe(exc: BaseException, path: str = "") -> list[str]:
    """Flatten a cattrs ExceptionGroup into `key: message` lines."""
    lines: list[str] = []
    if isinstance(exc, cattrs.ClassValidationError | cattrs.IterableValidationError):
        for sub, note in zip(exc.exceptions, _notes(exc), strict=False):
            lines.extend(_describe(sub, _join(path, note)))
        return lines
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return [f"{_join(path, k)}: unknown key" for k in sorted(exc.extra_fields)]
    if isinstance(exc, BadValue):
        return [f"{_join(path, exc.key)}: {exc}"]
    if isinstance(exc, KeyError):
        return [f"{path}: required key is missing"]
    return [f"{path}: {exc}"]


def _notes(group: BaseException) -> list[str]:
    out = []
    for sub in group.exceptions:  # type: ignore[attr-defined]
        name: object = None
        for note in getattr(sub, "__notes__", []):
            name = getattr(note, "name", None) or getattr(note, "index", None)
            break
        out.append("" if name is None else str(name))
    return out


def _join(path: str, key: str) -> str:
    if key == "":
        return path
    if key.isdigit():
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def structure(data: dict[str, Any]) -> Config:
    try:
        return converter.structure(data, Config)
    except (cattrs.BaseValidationError, cattrs.ForbiddenExtraKeysError) as exc:
        lines = _describe(exc)
        raise ConfigError("invalid configuration: " + "; ".join(lines)) from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"invalid configuration: {exc}") from None


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _field_type(path: list[str]) -> Any:
    """The declared type of a dotted key, for parsing environment values."""
    cls: Any = Config
    hint: Any = None
    for part in path:
        if not attrs.has(cls):
            raise ConfigError(f"{ENV_PREFIX}{'__'.join(p.upper() for p in path)}: unknown key "
                              f"{'.'.join(path)}")
        hints = typing.get_type_hints(cls)
        if part not in hints:
            raise ConfigError(f"{ENV_PREFIX}{'__'.join(p.upper() for p in path)}: unknown key "
                              f"{'.'.join(path)}")
        hint = hints[part]
        cls = hint
    return hint


def _parse_env_value(raw: str, hint: Any, name: str) -> Any:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if typing.get_origin(hint) in (typing.Union, types.UnionType) else hint
    if base is bool:
        low = raw.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name}: expected a boolean (true/false), got {raw!r}")
    if base is int:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{name}: expected an integer, got {raw!r}") from None
    if base is float:
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
    if typing.get_origin(base) is list or attrs.has(base):
        try:
            return json.loads(raw) if raw.strip().startswith(("[", "{")) else _toml_value(raw)
        except (ValueError, tomllib.TOMLDecodeError):
            raise ConfigError(f"{name}: expected a TOML/JSON list, got {raw!r}") from None
    return raw


def _toml_value(raw: str) -> Any:
    return tomllib.loads(f"v = {raw}")["v"]


def env_overrides(environ: typing.Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name[len(ENV_PREFIX):]:
            # CIRCUS_CONFIG_FILE and friends are not settings.
            if name.startswith(ENV_PREFIX) and name[len(ENV_PREFIX):].lower() == "state_dir":
                out["state_dir"] = raw
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX):].split("__")]
        value = _parse_env_value(raw, _field_type(path), name)
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


def load(
    environ: typing.Mapping[str, str] | None = None,
    cwd: Path | None = None,
    base: dict[str, Any] | None = None,
) -> Config:
    """The effective settings; `base` sits just above the defaults (the demo's own)."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = dict(base or {})
    local = (cwd or Path.cwd()) / "circus.toml"
    if local.is_file():
        data = _deep_merge(data, _read_toml(local))
    if environ.get("CIRCUS_CONFIG_FILE"):
        data = _deep_merge(data, _read_toml(Path(environ["CIRCUS_CONFIG_FILE"])))
    overrides = env_overrides(environ)
    saved = _saved_declarative(overrides.get("state_dir") or data.get("state_dir"))
    if saved:
        # What an admin saved through PUT /api/v1/admin/config replaces the file's lists.
        data["declarative"] = {**data.get("declarative", {}), **saved}
    data = _deep_merge(data, overrides)
    _refuse_unsupported(data)
    return structure(data)


# Keys of the seed's configuration that nothing acts on yet. Set, they are refused, so
# that nobody believes they work; each says what happens instead.
NOT_SUPPORTED = {
    "database.max_lifetime": "pooled connections are not recycled by age; idle_timeout "
                             "closes idle ones",
    "logs.log_dir": "build logs are kept in the database",
    "logs.compress": "build logs are always stored zstd-compressed",
}


def _refuse_unsupported(data: dict[str, Any]) -> None:
    found = [key for key in NOT_SUPPORTED if _has_key(data, key.split("."))]
    if found:
        raise ConfigError("invalid configuration: " + "; ".join(
            f"{key}: not supported yet ({NOT_SUPPORTED[key]})" for key in found))


def _has_key(data: Any, path: list[str]) -> bool:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


DECLARATIVE_FILE = "declarative.toml"


def _saved_declarative(state_dir: str | None) -> dict[str, Any]:
    path = Path(state_dir or Config().state_dir) / DECLARATIVE_FILE
    if not path.is_file():
        return {}
    saved: dict[str, Any] = _read_toml(path).get("declarative", {})
    return saved


# What `config show`, the admin API and every page print in place of a secret: only
# whether one is set, never a piece of it.
SET = "(set)"
# Keys whose values are secrets wherever they appear (a `_file` key holds a path, not one).
_SECRET_SUFFIXES = ("_token", "_secret", "_password", "webhook_url")


def is_secret_key(key: str) -> bool:
    key = key.lower()
    return key in SECRET_KEYS or key.endswith(_SECRET_SUFFIXES)


def redact_url(url: str) -> str:
    """`postgresql://circus:pw@db/circus` → `postgresql://***@db/circus`; secret query
    parameters (`?password=`, `?token=`) masked too. Anything else is left as it is."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return SET  # unparsable: it may hold anything, show nothing of it
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = "&".join(_redact_query_item(item) for item in parts.query.split("&")) \
        if parts.query else ""
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _redact_query_item(item: str) -> str:
    name, eq, _value = item.partition("=")
    return f"{name}=***" if eq and is_secret_key(name) else item


def _redact_text(value: str) -> str:
    return redact_url(value) if "://" in value else value


def redacted(node: Any) -> Any:
    """The one redaction of settings for display: a secret key's value becomes `(set)`
    (an unset one is left out), a URL's userinfo and secret query parameters `***`."""
    if isinstance(node, dict):
        return {k: (SET if is_secret_key(str(k)) and v != "" else redacted(v))
                for k, v in node.items() if v is not None}
    if isinstance(node, list):
        return [redacted(v) for v in node]
    if isinstance(node, str):
        return _redact_text(node)
    return node


def to_toml(config: Config, redact: bool = True) -> str:
    data = converter.unstructure(config)
    data = redacted(data) if redact else _drop_none(data)
    return tomli_w.dumps(data)


def _drop_none(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _drop_none(v) for k, v in node.items() if v is not None}
    if isinstance(node, list):
        return [_drop_none(v) for v in node]
    return node
