"""The HTTP client every delivery goes through: a time limit on each request, redirects
followed only within the same scheme, host and port (a forge or a webhook cannot send
our token elsewhere), and no loopback, link-local or private address unless
`notifications.allow_private_targets` (the rules of services/sources), checked on the
name's every address right where the connection is made, so DNS cannot swap them."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from circus.services import sources

MAX_REDIRECTS = 3
USER_AGENT = "Circus-CI"
ANSWER_SHOWN = 300  # characters of an error answer kept in last_error


class DeliveryFailed(Exception):
    """A delivery that did not arrive; the message says why (it becomes last_error)."""


class _GuardedResolver(AbstractResolver):
    def __init__(self) -> None:
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        for entry in found:
            address = sources.literal_address(entry["host"])
            if address is None or not sources.public_address(address):
                raise DeliveryFailed(f"{host} resolves to {entry['host']}, a private "
                                     "address (notifications.allow_private_targets)")
        return found

    async def close(self) -> None:
        await self._inner.close()


class Client:
    """One aiohttp session for the queue's life; `post` raises DeliveryFailed."""

    def __init__(self, timeout: float, allow_private: bool) -> None:
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.allow_private = allow_private
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        resolver = None if self.allow_private else _GuardedResolver()
        connector = aiohttp.TCPConnector(resolver=resolver, limit=32)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self.timeout,
                                              headers={"User-Agent": USER_AGENT})
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def post(self, url: str, json: Any, headers: dict[str, str] | None = None) -> None:
        assert self._session is not None, "use Client as an async context manager"
        for _ in range(MAX_REDIRECTS + 1):
            self._check(url)
            try:
                async with self._session.post(url, json=json, headers=headers,
                                              allow_redirects=False) as answer:
                    if 200 <= answer.status < 300:
                        return
                    text = (await answer.text(errors="replace"))[:ANSWER_SHOWN]
                    location = answer.headers.get("Location")
            except DeliveryFailed:
                raise
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise DeliveryFailed(f"{_shown(url)}: {type(exc).__name__}: {exc}") from None
            if answer.status not in (301, 302, 303, 307, 308) or not location:
                raise DeliveryFailed(f"{_shown(url)} answered {answer.status}: {text}")
            url = self._same_origin(url, urljoin(url, location))
        raise DeliveryFailed(f"{_shown(url)}: more than {MAX_REDIRECTS} redirects")

    def _check(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DeliveryFailed(f"{_shown(url)}: not an http or https URL")
        address = sources.literal_address(parts.hostname)
        private = parts.hostname.lower() == "localhost" or (
            address is not None and not sources.public_address(address))
        if private and not self.allow_private:
            raise DeliveryFailed(f"{_shown(url)}: a private address "
                                 "(notifications.allow_private_targets)")

    @staticmethod
    def _same_origin(url: str, target: str) -> str:
        here, there = urlsplit(url), urlsplit(target)
        if (here.scheme, here.hostname, here.port) != (there.scheme, there.hostname,
                                                       there.port):
            raise DeliveryFailed(f"{_shown(url)} redirected to another host "
                                 f"({there.scheme}://{there.hostname}); not followed")
        return target


def _shown(url: str) -> str:
    """The URL without its path and query, which may hold a key (Slack's do)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
