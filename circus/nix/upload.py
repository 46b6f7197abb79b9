"""Copying a build's closure to another store (`[cache_upload]`): `nix copy --to`, any
store URI Nix understands, a bounded number at a time, retried with backoff."""

from __future__ import annotations

import asyncio

import attrs
import structlog

from circus.app.config import CacheUploadConfig
from circus.domain.errors import CircusError
from circus.proc import nix

log = structlog.get_logger(__name__)

# First retry after this many seconds, doubling each time.
BACKOFF = 0.5


class UploadError(CircusError):
    """Every attempt failed; the message is Nix's last complaint."""


def store_uri(config: CacheUploadConfig) -> str:
    """`store_uri`, with the `[cache_upload.s3]` settings as S3 store parameters."""
    uri = config.store_uri or ""
    if not uri.startswith("s3://"):
        return uri
    extra = []
    if config.s3.region:
        extra.append(f"region={config.s3.region}")
    if config.s3.endpoint_url:
        extra.append(f"endpoint={config.s3.endpoint_url.split('://', 1)[-1]}")
        if config.s3.endpoint_url.startswith("http://"):
            extra.append("scheme=http")
    if not extra:
        return uri
    return uri + ("&" if "?" in uri else "?") + "&".join(extra)


@attrs.define(eq=False)
class Uploader:
    uri: str
    max_retries: int
    slots: asyncio.Semaphore

    @classmethod
    def from_config(cls, config: CacheUploadConfig) -> Uploader | None:
        if not config.enabled or not config.store_uri:
            return None
        return cls(store_uri(config), config.upload_max_retries,
                   asyncio.Semaphore(config.upload_concurrency))

    async def upload(self, paths: list[str]) -> None:
        """Copy `paths` and their closure; raises UploadError after the last retry."""
        error = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                await asyncio.sleep(BACKOFF * 2 ** (attempt - 1))
            async with self.slots:
                error = await _copy(self.uri, paths)
            if not error:
                log.info("uploaded closure", to=self.uri, paths=paths, attempt=attempt + 1)
                return
            log.warning("upload failed", to=self.uri, attempt=attempt + 1, error=error)
        raise UploadError(f"upload to {self.uri} failed after {self.max_retries + 1} "
                          f"attempts: {error}")


async def _copy(uri: str, paths: list[str]) -> str:
    """'' on success, else Nix's error."""
    done = await nix.copy(uri, paths)
    if done.ok:
        return ""
    return done.stderr.strip() or f"nix copy exited with {done.returncode}"
