"""What a remote builder is, checked the same wherever one comes from (`/api/v1/admin/
builders`, `[declarative] remote_builders`): no I/O.

The checks are strict because the values end up in Nix's `builders` setting, where a
space separates fields, `,` list items, `;` or a newline machines and `#` starts a
comment: a builder's name, URI, systems, features or key file holding one of them would
smuggle in another builder. So an SSH URI is a scheme (`ssh://` or `ssh-ng://`, the
default), an optional `user@` and a host name or a bracketed IPv6 address, nothing
more; a host key is pinned (`<type> <base64>`, its comment dropped), never optional;
the private key is a path on each runner host (read there by ssh, never here).

A refusal is an `InvalidValue` naming the field (`where.field` when given a `where`).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from circus.domain.errors import InvalidValue

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SYSTEM_RE = re.compile(r"[A-Za-z0-9_]+-[A-Za-z0-9_]+")
FEATURE_RE = re.compile(r"[A-Za-z0-9_.+-]+")
SCHEMES = ("ssh-ng", "ssh")
_USER = r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}"
# A host name starts with a letter or digit (so ssh never reads it as an option).
_HOST = r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}|\[[0-9A-Fa-f:.]{2,45}\]"
SSH_URI_RE = re.compile(rf"(?:(?P<scheme>ssh|ssh-ng)://)?(?:(?P<user>{_USER})@)?"
                        rf"(?P<host>{_HOST})")
# The same without group names, for JSON Schema (the OpenAPI document).
SSH_URI_PATTERN = rf"(?:(?:ssh|ssh-ng)://)?(?:{_USER}@)?(?:{_HOST})"
HOST_KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
                  "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com")
# What JSON Schema can say of a host key: its type, then base64 (that the base64 holds a
# key of that type is checked by check_host_key).
HOST_KEY_PATTERN = (r"^\s*(?:" + "|".join(t.replace(".", r"\.") for t in HOST_KEY_TYPES)
                    + r") +[A-Za-z0-9+/]+={0,2}(?: |\s*$)")
KEY_FILE_PATTERN = r"^/[^\s,;#\x00-\x1f\x7f]*$"
# Refused anywhere in a key file's path: Nix's separators, and any whitespace.
_PATH_BAD = re.compile(r"[\s,;#\x00-\x1f\x7f]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_JOBS = 1024
MAX_SPEED_FACTOR = 1000.0
MAX_LIST = 64
MAX_PATH = 4096
MAX_HOST_KEY = 16384

# Written by the runners (and the database), shown by the API, never set through it.
REPORTED = ("id", "declarative", "health", "consecutive_failures", "disabled_until",
            "last_error", "last_failure_at", "last_success_at", "last_probe_at", "psi_cpu",
            "psi_memory", "last_dispatched_at", "slots_in_use", "created_at", "updated_at")
REQUIRED = ("name", "ssh_uri", "systems", "public_host_key")


@attrs.frozen
class BuilderSpec:
    """A remote builder as an admin or the configuration gives it, checked and normalised
    (a bare host becomes `ssh-ng://host`, a host key loses its comment)."""

    name: str
    ssh_uri: str
    systems: tuple[str, ...]
    public_host_key: str
    max_jobs: int = 1
    speed_factor: float = 1.0
    supported_features: tuple[str, ...] = ()
    mandatory_features: tuple[str, ...] = ()
    ssh_key_file: str | None = None
    enabled: bool = True

    @classmethod
    def parse(cls, fields: Mapping[str, Any], base: BuilderSpec | None = None,
              where: str = "") -> BuilderSpec:
        """The builder `fields` give, over `base` when given (a partial update)."""
        values: dict[str, Any] = {} if base is None else attrs.asdict(base)
        for key, value in fields.items():
            field = _at(where, str(key))
            if key in REPORTED:
                raise InvalidValue(field, "cannot be set: it is reported, not configured")
            check = CHECKS.get(key)
            if check is None:
                raise InvalidValue(field, f"unknown key (a builder has {', '.join(CHECKS)})")
            values[key] = check(value, field)
        missing = [key for key in REQUIRED if key not in values]
        if missing:
            raise InvalidValue(_at(where, missing[0]), "is required")
        return cls(**values)

    def row(self) -> tuple[Any, ...]:
        """The columns in the order the store's queries take them."""
        return (self.name, self.ssh_uri, list(self.systems), self.max_jobs,
                self.speed_factor, list(self.supported_features),
                list(self.mandatory_features), self.ssh_key_file, self.public_host_key,
                self.enabled)


def spec_of(row: Mapping[str, Any]) -> BuilderSpec:
    """A stored builder as a spec (the base an update changes)."""
    return BuilderSpec(name=row["name"], ssh_uri=row["ssh_uri"],
                       systems=tuple(row["systems"]), public_host_key=row["public_host_key"],
                       max_jobs=row["max_jobs"], speed_factor=row["speed_factor"],
                       supported_features=tuple(row["supported_features"]),
                       mandatory_features=tuple(row["mandatory_features"]),
                       ssh_key_file=row["ssh_key_file"], enabled=row["enabled"])


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _text(value: Any, field: str, longest: int) -> str:
    if not isinstance(value, str):
        raise InvalidValue(field, f"expected a string, got {_kind(value)}")
    if len(value) > longest:
        raise InvalidValue(field, f"longer than {longest} characters")
    return value


def check_name(value: Any, field: str) -> str:
    text = _text(value, field, 64)
    if not NAME_RE.fullmatch(text):
        raise InvalidValue(field, f"{text!r} is not a valid name (must match "
                                  f"^{NAME_RE.pattern}$)")
    return text


def check_ssh_uri(value: Any, field: str) -> str:
    """`ssh://` or `ssh-ng://`, an optional `user@` and a host; a bare host → ssh-ng."""
    text = _text(value, field, 400)
    found = SSH_URI_RE.fullmatch(text)
    if found is None:
        raise InvalidValue(field, f"{text!r} is not an SSH store URI: expected "
                                  "ssh-ng://[user@]host or ssh://[user@]host (a host name "
                                  "or [IPv6 address]; no port, path, options or spaces; "
                                  "set a port in ~/.ssh/config)")
    host = found["host"]
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise InvalidValue(field, f"{host!r} is not an IPv6 address") from None
    user = f"{found['user']}@" if found["user"] else ""
    return f"{found['scheme'] or SCHEMES[0]}://{user}{host}"


def _list(value: Any, field: str, pattern: re.Pattern[str], what: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise InvalidValue(field, f"expected a list of strings, got {_kind(value)}")
    if len(value) > MAX_LIST:
        raise InvalidValue(field, f"more than {MAX_LIST} items")
    for index, item in enumerate(value):
        text = _text(item, f"{field}[{index}]", 100)
        if not pattern.fullmatch(text):
            raise InvalidValue(f"{field}[{index}]", f"{text!r} is not {what} (must match "
                                                    f"^{pattern.pattern}$)")
    return tuple(value)


def check_systems(value: Any, field: str) -> tuple[str, ...]:
    systems = _list(value, field, SYSTEM_RE, "a Nix system such as x86_64-linux")
    if not systems:
        raise InvalidValue(field, "must name at least one system")
    return systems


def check_features(value: Any, field: str) -> tuple[str, ...]:
    return _list(value, field, FEATURE_RE, "a system feature such as kvm or big-parallel")


def check_max_jobs(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValue(field, f"expected an integer, got {_kind(value)}")
    if not 1 <= value <= MAX_JOBS:
        raise InvalidValue(field, f"must be between 1 and {MAX_JOBS}, got {value}")
    return value


def check_speed_factor(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidValue(field, f"expected a number, got {_kind(value)}")
    if not (math.isfinite(value) and 0 < value <= MAX_SPEED_FACTOR):
        raise InvalidValue(field, f"must be greater than 0 and at most "
                                  f"{MAX_SPEED_FACTOR:g}, got {value}")
    return float(value)


def check_key_file(value: Any, field: str) -> str | None:
    """An absolute path on the runner hosts, or None (ssh's default keys)."""
    if value is None:
        return None
    text = _text(value, field, MAX_PATH)
    if not text.startswith("/"):
        raise InvalidValue(field, f"{text!r} is not an absolute path")
    if _PATH_BAD.search(text):
        raise InvalidValue(field, "must not contain whitespace, control characters, "
                                  "',', ';' or '#'")
    return text


def check_host_key(value: Any, field: str) -> str:
    """`<type> <base64>` as in known_hosts or a .pub file, without its comment."""
    text = _text(value, field, MAX_HOST_KEY).strip()
    if _CONTROL.search(text):
        raise InvalidValue(field, "must be one line (no control characters)")
    parts = text.split()
    if len(parts) < 2:
        raise InvalidValue(field, "expected '<type> <base64>', e.g. the line of the "
                                  "builder's /etc/ssh/ssh_host_ed25519_key.pub")
    kind, data = parts[0], parts[1]
    if kind not in HOST_KEY_TYPES:
        raise InvalidValue(field, f"{kind!r} is not a host key type (one of "
                                  f"{', '.join(HOST_KEY_TYPES)})")
    try:
        blob = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidValue(field, "the key is not valid base64") from None
    if _wire_type(blob) != kind:
        raise InvalidValue(field, f"the base64 does not hold a {kind} key")
    return f"{kind} {data}"


def _wire_type(blob: bytes) -> str | None:
    """The key type an SSH public key blob names first (a length-prefixed string)."""
    if len(blob) < 4:
        return None
    size = int.from_bytes(blob[:4], "big")
    name = blob[4:4 + size]
    return name.decode("ascii", "replace") if len(name) == size else None


def check_enabled(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidValue(field, f"expected true or false, got {_kind(value)}")
    return value


CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "name": check_name,
    "ssh_uri": check_ssh_uri,
    "systems": check_systems,
    "max_jobs": check_max_jobs,
    "speed_factor": check_speed_factor,
    "supported_features": check_features,
    "mandatory_features": check_features,
    "ssh_key_file": check_key_file,
    "public_host_key": check_host_key,
    "enabled": check_enabled,
}
