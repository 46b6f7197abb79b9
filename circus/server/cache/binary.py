"""/nix-cache: a binary cache Nix substitutes from. Only paths in the catalogue
(`cache_paths`: outputs of Circus's successful builds and their closures) that are still
in this machine's store are served; anything else is 404.

narinfos are signed here with `cache.secret_key_file` (or `signing.key_file`) and kept
in memory for a few seconds, so a busy client's queries cost no database round trip.
NARs are streamed from `nix-store --dump` as they are produced (circus/nix/nar.py).
"""

from __future__ import annotations

import os
import time
import weakref
from typing import Any

import attrs
import structlog
from aiohttp import web

from circus.app.config import Config
from circus.nix import nar, narinfo
from circus.nix.pathinfo import HASH_PART, PathInfo
from circus.nix.signing import BadKey, SigningKey
from circus.proc.child import ChildError
from circus.server.http import limits
from circus.server.http.keys import CONTEXT
from circus.server.http.openapi import STR, doc
from circus.store import cache_paths

log = structlog.get_logger(__name__)

# How long a narinfo is answered from memory. A withdrawn path (gc) may be offered this
# much longer; a path gone from the store never is (checked on every request).
NARINFO_TTL = 10.0
NARINFO_MAX = 100_000
NARINFO_TYPE = "text/x-nix-narinfo"
NAR_TYPE = "application/x-nix-nar"


@attrs.define(eq=False)
class _State:
    key: SigningKey | None
    narinfos: dict[tuple[str, str], tuple[float, str, str]] = attrs.Factory(dict)


_states: weakref.WeakKeyDictionary[web.Application, _State] = weakref.WeakKeyDictionary()


def _load_key(config: Config) -> SigningKey | None:
    path = config.cache.secret_key_file or config.signing.key_file
    if not path:
        return None
    try:
        return SigningKey.load(path)
    except (OSError, BadKey) as exc:
        log.error("cannot read the binary cache's signing key; narinfos go unsigned",
                  key_file=path, error=str(exc))
        return None


def _state(request: web.Request) -> _State:
    state = _states.get(request.app)
    if state is None:
        state = _states[request.app] = _State(_load_key(request.app[CONTEXT].config))
    return state


def _not_found() -> web.Response:
    # Plain text: Nix reads the status; a body is for people.
    return web.Response(status=404, text="not found\n")


def _config(request: web.Request) -> Config:
    return request.app[CONTEXT].config


def _in_store(path: str) -> bool:
    # One lstat on the local store: far cheaper than handing it to a thread.
    return os.path.lexists(path)


def _row_info(row: Any) -> PathInfo:
    return PathInfo(path=row["store_path"], nar_hash=row["nar_hash"], nar_size=row["nar_size"],
                    references=tuple(row["refs"]), deriver=row["deriver"])


async def _lookup(request: web.Request, hash_part: str) -> PathInfo | None:
    """The catalogued path with this hash, if it is still in the store."""
    if not HASH_PART.match(hash_part):
        return None
    row = await cache_paths.by_hash(request.app[CONTEXT].pool, hash_part)
    if row is None or not _in_store(row["store_path"]):
        return None
    return _row_info(row)


BINARY = {"type": "string", "format": "binary"}
TAGS = ("binary cache",)


@doc("Binary cache info (StoreDir, WantMassQuery, Priority)", content_type="text/x-nix-cache-info",
     response=STR, tags=TAGS, error_content_type="text/plain")
async def cache_info(request: web.Request) -> web.Response:
    if not _config(request).cache.enabled:
        return _not_found()
    return web.Response(text=narinfo.cache_info(), content_type="text/x-nix-cache-info")


@doc("The narinfo of a store path by its hash ({hash} or {hash}.narinfo)",
     content_type=NARINFO_TYPE, response=STR, tags=TAGS, error_content_type="text/plain",
     description="Only outputs of Circus's successful builds and their closures; 404 else.")
async def get_narinfo(request: web.Request) -> web.Response:
    return await _narinfo(request, request.match_info["name"].removesuffix(".narinfo"))


async def _narinfo(request: web.Request, hash_part: str) -> web.Response:
    config = _config(request)
    if not config.cache.enabled:
        return _not_found()
    compression = config.cache.compression
    state = _state(request)
    now = time.monotonic()
    hit = state.narinfos.get((hash_part, compression))
    if hit is not None and hit[0] > now and _in_store(hit[1]):
        return web.Response(text=hit[2], content_type=NARINFO_TYPE)
    info = await _lookup(request, hash_part)
    if info is None:
        state.narinfos.pop((hash_part, compression), None)
        return _not_found()
    sigs = [state.key.sign(info.fingerprint())] if state.key else []
    text = narinfo.render(info, compression, sigs)
    if len(state.narinfos) >= NARINFO_MAX:
        state.narinfos.clear()
    state.narinfos[(hash_part, compression)] = (now + NARINFO_TTL, info.path, text)
    return web.Response(text=text, content_type=NARINFO_TYPE)


def _parse_nar_name(name: str) -> tuple[str, str] | None:
    """`<hash>.nar.zst` → (hash, 'zstd'); any served extension, whatever narinfo says."""
    for ext, compression in sorted(narinfo.EXTENSIONS.items(), key=lambda e: -len(e[0])):
        if name.endswith(ext):
            return name[: -len(ext)], compression
    return None


@doc("The narinfo of a store path at Hydra's binary-cache URL (the root)",
     content_type=NARINFO_TYPE, response=STR, tags=TAGS, error_content_type="text/plain",
     path={"hash": {"type": "string", "example": "0" * 32}})
async def root_narinfo(request: web.Request) -> web.Response:
    return await _narinfo(request, request.match_info["hash"])


@doc("A NAR, compressed as its extension says (.nar, .nar.zst, .nar.xz, .nar.bz2, .nar.br)",
     content_type=NAR_TYPE, response=BINARY, tags=TAGS, error_content_type="text/plain",
     description="Streamed from the store as it is produced.")
async def get_nar(request: web.Request) -> web.StreamResponse:
    if not _config(request).cache.enabled:
        return _not_found()
    parsed = _parse_nar_name(request.match_info["name"])
    if parsed is None:
        return _not_found()
    hash_part, compression = parsed
    info = await _lookup(request, hash_part)
    if info is None:
        return _not_found()
    response = web.StreamResponse(headers={"Content-Type": NAR_TYPE})
    if compression == "none":
        response.content_length = info.nar_size
    if request.method == "HEAD":
        await response.prepare(request)
        return response
    async with limits.stream_slot(request):
        return await _send_nar(request, response, info, compression)


async def _send_nar(request: web.Request, response: web.StreamResponse, info: PathInfo,
                    compression: str) -> web.StreamResponse:
    # Produced as it is sent: the body cannot be retried once the headers are out.
    started = time.monotonic()
    sent = 0
    chunks = nar.stream(info.path, compression)
    try:
        async for chunk in chunks:
            if not response.prepared:
                await response.prepare(request)
            await response.write(chunk)
            sent += len(chunk)
    except ChildError as exc:
        log.error("nar dump failed", path=info.path, error=str(exc), sent=sent)
        if not response.prepared:
            return web.Response(status=404, text="not found\n")
        # The client must not take a truncated body for a whole one.
        if request.transport is not None:
            request.transport.close()
        return response
    finally:
        await chunks.aclose()  # an async generator's, not only an iterator's
    if not response.prepared:
        await response.prepare(request)
    await response.write_eof()
    log.debug("nar served", path=info.path, compression=compression, bytes=sent,
              seconds=round(time.monotonic() - started, 3))
    return response


def public_key(config: Config) -> str | None:
    """The `trusted-public-keys` entry of this cache (None when it does not sign)."""
    key = _load_key(config)
    return key.public_key() if key else None


def add_routes(router: web.UrlDispatcher) -> None:
    # nix-cache-info first: the narinfo route would match the name too.
    router.add_get("/nix-cache/nix-cache-info", cache_info)
    router.add_get(r"/nix-cache/nar/{name}", get_nar)
    router.add_get(r"/nix-cache/{name}", get_narinfo)
    # Hydra's binary-cache URLs, at the root: `nix` pointed at a Hydra URL works unchanged.
    router.add_get("/nix-cache-info", cache_info)
    router.add_get(r"/nar/{name}", get_nar)
    router.add_get("/{hash}.narinfo", root_narinfo)
