"""Where Circus may fetch from, decided in one place.

Every repository URL (a project's, a jobset's git input, Hydra's inputs and flakes, the
probe, the setup wizard) passes `check_git_url`; path inputs pass `check_path_input`;
homepages `check_homepage`. The server calls these when something is saved, and the
evaluator again before it runs git or Nix, so a row written earlier or declared in the
configuration cannot slip past. Roles never import each other, so the rules live here.

Private addresses: with `server.allow_private_addresses` false (the default) a URL may
not name loopback (127/8, ::1), "localhost", unspecified, link-local (169.254/16 with
the cloud metadata address, fe80::/10), RFC 1918, CGNAT (100.64/10, where some clouds
keep their metadata service), ULA (fc00::/7), documentation, multicast or reserved
addresses, written in any notation git would accept (`127.1`, `0x7f000001`,
`::ffff:127.0.0.1`). Right before git connects, the host name is resolved and refused
when it points at such an address; a DNS answer that changes between that look-up and
git's own is not caught, nor is an HTTP redirect git follows on its first request.

Also here: how a URL holding credentials is shown (`redact`), and the command line and
environment of every git call (`git_argv`, `git_env`), which circus.proc.git applies.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import socket
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

import attrs

from circus.app.config import Config
from circus.domain.errors import CircusError

# With `server.allowed_url_schemes` empty: remote git only. `file` would let anyone who
# may create a project read the server's disk.
DEFAULT_URL_SCHEMES = ("https", "http", "ssh", "git", "git+ssh", "git+https", "git+http",
                       "ssh+git")
# git's ext:: runs a command and fd:: talks to the server's own file descriptors: never,
# even when listed (every git call also runs with protocol.ext.allow=never).
NEVER_SCHEMES = frozenset({"ext", "fd"})
SSH_SCHEMES = frozenset({"ssh", "git+ssh", "ssh+git"})
# The protocol name git's `protocol.<name>.allow` knows each scheme by.
_GIT_PROTOCOL = {"git+ssh": "ssh", "ssh+git": "ssh", "git+https": "https",
                 "git+http": "http", "git+file": "file"}
HOMEPAGE_SCHEMES = ("http", "https")
# A host that does not answer a look-up this fast is left to git (which reports it).
RESOLVE_TIMEOUT = 5.0

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
_TRANSPORT = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)::")
_NUMERIC_HOST = re.compile(r"^[0-9a-fx.]+$")
# `scheme://userinfo@`: the userinfo runs to the last @ before the path.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/?#\s'\"]*)@")


class SourceRefused(CircusError):
    """A URL, path or homepage the rules refuse; `field` names what was wrong."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@attrs.frozen
class Policy:
    """The configuration's part of the rules."""

    schemes: frozenset[str]
    allow_private: bool = False
    path_roots: tuple[str, ...] = ()

    @classmethod
    def of(cls, config: Config) -> Policy:
        return cls(frozenset(allowed_url_schemes(config.server.allowed_url_schemes)),
                   config.server.allow_private_addresses,
                   tuple(config.evaluator.allowed_path_inputs))


def allowed_url_schemes(configured: Iterable[str]) -> list[str]:
    """The schemes a repository URL may have: the configured list, or the default one."""
    return [s.lower() for s in configured] or list(DEFAULT_URL_SCHEMES)


def check_git_url(url: str, policy: Policy, field: str = "repository_url") -> None:
    """Refuse a URL git must not fetch: scheme not allowed, ext::/fd::, a private host."""
    if not url.strip():
        raise SourceRefused(field, "must not be empty")
    if (transport := _TRANSPORT.match(url)) and transport[1].lower() in NEVER_SCHEMES:
        raise SourceRefused(field, f"scheme {transport[1].lower()!r} is never allowed: "
                                   f"git's {transport[1]}:: transport reaches into the "
                                   "server itself")
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise SourceRefused(field, "must not contain whitespace or control characters")
    if url.startswith("-"):
        raise SourceRefused(field, "must not start with '-'")
    scheme, host = _scheme_and_host(url, field)
    if scheme not in policy.schemes or scheme in NEVER_SCHEMES:
        raise SourceRefused(field, f"scheme {scheme!r} is not allowed (allowed: "
                                   f"{', '.join(sorted(policy.schemes))}; "
                                   "server.allowed_url_schemes)")
    if host is not None:
        _check_host(host, policy, field)


def _scheme_and_host(url: str, field: str) -> tuple[str, str | None]:
    """The scheme git will use for `url` (local paths are `file`) and the host it names."""
    if transport := _TRANSPORT.match(url):
        return transport[1].lower(), None
    if url.startswith("/"):
        return "file", None
    if "://" not in url and ":" in url and "/" not in url.split(":", 1)[0]:
        # git's scp-like syntax, [user@]host:path, is ssh.
        return "ssh", url.split(":", 1)[0].rpartition("@")[2]
    parts = urlsplit(url)
    if not parts.scheme or not _SCHEME.match(parts.scheme) or not (parts.netloc or
                                                                     parts.path):
        raise SourceRefused(field, f"{redact(url)!r} is neither a URL with a scheme nor "
                                   "an absolute path")
    scheme = parts.scheme.lower()
    if _GIT_PROTOCOL.get(scheme, scheme) == "file":
        return scheme, None
    try:
        host, _ = parts.hostname, parts.port  # .port raises on a malformed port
    except ValueError as exc:
        raise SourceRefused(field, f"{redact(url)!r}: {exc}") from None
    if not host:
        raise SourceRefused(field, f"{redact(url)!r} names no host")
    return scheme, host


def _check_host(host: str, policy: Policy, field: str) -> None:
    name = host.strip("[]").lower().rstrip(".")
    if not name or name.startswith("-"):
        raise SourceRefused(field, f"host {host!r} is not a host name")
    if policy.allow_private:
        return
    if name == "localhost" or name.endswith(".localhost"):
        raise _private(field, host)
    address = literal_address(name)
    if address is not None and not public_address(address):
        raise _private(field, host)


def _private(field: str, host: str) -> SourceRefused:
    return SourceRefused(field, f"host {host!r} is a loopback, link-local or private "
                                "address (server.allow_private_addresses)")


def literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host written as a number stands for, in every form git accepts."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if _NUMERIC_HOST.match(host):
        try:  # 127.1, 0x7f.1, 2130706433: inet_aton's forms, which git's resolver takes
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


async def check_resolved(url: str, policy: Policy, field: str = "repository_url") -> None:
    """Refuse a host name that resolves to a private address (right before git runs)."""
    if policy.allow_private:
        return
    try:
        _, host = _scheme_and_host(url, field)
    except SourceRefused:
        return  # check_git_url reports it
    if host is None or literal_address(host.strip("[]")) is not None:
        return
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT):
            infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError):
        return  # unresolvable: git fails on its own, with its own message
    for info in infos:
        if not public_address(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])):
            raise SourceRefused(field, f"host {host!r} resolves to {info[4][0]}, a "
                                       "loopback, link-local or private address "
                                       "(server.allow_private_addresses)")


def check_path_input(value: str, policy: Policy, field: str = "value") -> None:
    """A path input only inside `evaluator.allowed_path_inputs` (resolved both sides)."""
    if not policy.path_roots:
        raise SourceRefused(field, "path inputs are disabled: evaluator.allowed_path_inputs "
                                   "lists no directory")
    if not value.startswith("/"):
        raise SourceRefused(field, f"a path input must be an absolute path, got {value!r}")
    real = os.path.realpath(value)
    for root in policy.path_roots:
        top = os.path.realpath(root)
        if real == top or real.startswith(top.rstrip("/") + "/"):
            return
    raise SourceRefused(field, f"{value!r} is not inside evaluator.allowed_path_inputs "
                               f"({', '.join(policy.path_roots)})")


def check_input(kind: str, value: str, policy: Policy, field: str = "value") -> None:
    """What the rules say about one jobset input's value (git: "URL [branch]")."""
    if kind == "path":
        check_path_input(value, policy, field)
    elif kind == "git":
        words = value.split()
        if not 1 <= len(words) <= 2:
            raise SourceRefused(field, "a git input is \u201cURL [branch]\u201d")
        check_git_url(words[0], policy, field)
        if len(words) == 2 and words[1].startswith("-"):
            raise SourceRefused(field, f"branch {words[1]!r} must not start with '-'")


def check_homepage(url: str, field: str = "homepage") -> None:
    """Empty, or an http(s) URL: a homepage becomes a link on the dashboard."""
    if not url:
        return
    parts = urlsplit(url)
    if (any(ch.isspace() or not ch.isprintable() for ch in url)
            or parts.scheme.lower() not in HOMEPAGE_SCHEMES or not parts.netloc):
        raise SourceRefused(field, f"must be an http:// or https:// URL, got {url!r}")


def redact(text: str) -> str:
    """`text` with the credentials of every URL in it masked; ssh keeps its user name."""

    def mask(match: re.Match[str]) -> str:
        scheme, user = match["scheme"], match["user"]
        if scheme[:-3].lower() in SSH_SCHEMES:
            name, has_password, _ = user.partition(":")
            return f"{scheme}{name}:***@" if has_password else match[0]
        return f"{scheme}***@"

    return _USERINFO.sub(mask, text)


def git_argv(policy: Policy, *args: str) -> list[str]:
    """A git command line that may only use the allowed protocols, never ext:: or fd::,
    and never a credential helper or askpass program."""
    protocols = {_GIT_PROTOCOL.get(s, s) for s in policy.schemes} - NEVER_SCHEMES
    argv = ["git", "-c", "protocol.allow=never"]
    for name in sorted(protocols - {"file"}):
        argv += ["-c", f"protocol.{name}.allow=always"]
    argv += ["-c", f"protocol.file.allow={'always' if 'file' in protocols else 'never'}",
             "-c", "protocol.ext.allow=never", "-c", "protocol.fd.allow=never",
             "-c", "credential.helper=", "-c", "core.askPass=", *args]
    return argv


def git_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a git call: no prompt, no askpass, no system or user config."""
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if not k.startswith("GIT_CONFIG") and k not in ("SSH_ASKPASS", "GIT_ASKPASS")}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="", GIT_CONFIG_NOSYSTEM="1",
               GIT_CONFIG_GLOBAL="/dev/null", SSH_ASKPASS_REQUIRE="never")
    if "GIT_SSH" not in env and "GIT_SSH_COMMAND" not in env:
        # An ssh URL without a usable key fails at once instead of asking for a password.
        env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"
    return env
