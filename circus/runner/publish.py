"""After a successful build: offer its closure in the binary cache, sign its outputs
(`[signing]`) and copy the closure to `[cache_upload]`.

Called by the runner's Nix builder, on the machine that holds the outputs. Cataloguing
or signing problems are logged and never fail the build; an upload failure fails it
only with `fail_build_on_upload_error`.
"""

from __future__ import annotations

from typing import Protocol

import asyncpg
import attrs
import structlog

from circus.app.config import Config
from circus.domain.status import BuildStatus
from circus.nix import pathinfo
from circus.nix.signing import BadKey, SigningKey
from circus.nix.upload import Uploader, UploadError
from circus.proc import nix
from circus.proc.child import ChildError
from circus.store import builds, cache_paths

log = structlog.get_logger(__name__)


class Settled(Protocol):
    """The part of the runner's Outcome publishing reads and may change."""

    status: int
    error: str | None
    outputs: dict[str, str]


@attrs.define
class Published:
    """What publishing decided for the build: a non-None `error` fails it."""

    signature: str | None = None
    error: str | None = None


@attrs.define(eq=False)
class Publisher:
    pool: asyncpg.Pool
    key: SigningKey | None = None
    key_file: str | None = None
    uploader: Uploader | None = None
    fail_on_upload_error: bool = False

    @classmethod
    def from_config(cls, config: Config, pool: asyncpg.Pool) -> Publisher:
        key = None
        if config.signing.enabled:
            if not config.signing.key_file:
                log.error("signing.enabled but no signing.key_file; builds stay unsigned")
            else:
                try:
                    key = SigningKey.load(config.signing.key_file)
                except (OSError, BadKey) as exc:
                    log.error("cannot read the signing key; builds stay unsigned",
                              key_file=config.signing.key_file, error=str(exc))
        return cls(pool, key, config.signing.key_file if key else None,
                   Uploader.from_config(config.cache_upload),
                   config.cache_upload.fail_build_on_upload_error)

    async def settle(self, build_id: int, outcome: Settled) -> None:
        """Publish a successful build's outputs; fail it if the upload must succeed."""
        published = await self.publish(build_id, outcome.outputs)
        if published.error:
            outcome.status, outcome.error = BuildStatus.FAILED, published.error

    async def publish(self, build_id: int, outputs: dict[str, str]) -> Published:
        blog = log.bind(build_id=build_id)
        paths = [outputs[name] for name in sorted(outputs)]
        result = Published()
        try:
            infos = await nix.path_info(paths, closure=True)
            await self._catalogue(build_id, infos)
            if self.key is not None:
                result.signature = await self._sign(build_id, paths, infos)
        except (ChildError, asyncpg.PostgresError, OSError) as exc:
            blog.error("could not offer the outputs in the binary cache", error=str(exc))
        if self.uploader is not None:
            try:
                await self.uploader.upload(paths)
            except UploadError as exc:
                blog.error("upload failed", error=str(exc),
                           fails_build=self.fail_on_upload_error)
                if self.fail_on_upload_error:
                    result.error = str(exc)
        return result

    async def _catalogue(self, build_id: int, infos: list[pathinfo.PathInfo]) -> None:
        await cache_paths.record(self.pool, build_id, infos)

    async def _sign(self, build_id: int, outputs: list[str],
                    infos: list[pathinfo.PathInfo]) -> str:
        """Signatures of the outputs (space-separated, in output-name order) recorded on
        the build; the closure is signed in the local store too, so what is uploaded
        carries them."""
        assert self.key is not None
        by_path = {i.path: i for i in infos}
        sigs = [self.key.sign(by_path[p].fingerprint()) for p in outputs if p in by_path]
        signature = " ".join(sigs)
        await builds.set_signature(self.pool, build_id, signature)
        done = await nix.sign(str(self.key_file), outputs)
        if not done.ok:
            log.warning("could not sign the closure in the local store", build_id=build_id,
                        error=done.stderr.strip())
        return signature

