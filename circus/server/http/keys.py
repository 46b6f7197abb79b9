"""Typed keys for what the application holds."""

from __future__ import annotations

import asyncio

from aiohttp import web

from circus.app.context import Context
from circus.db.bus import Subscription
from circus.store.build_list import OffsetAnchors

CONTEXT = web.AppKey("context", Context)
# The subscriptions of live SSE streams: woken at shutdown so they end at once.
STREAMS = web.AppKey("streams", set[Subscription])
CLOSING = web.AppKey("closing", asyncio.Event)
# Where deep offsets of the unfiltered build list start (see api/offsets.py).
ANCHORS = web.AppKey("offset_anchors", OffsetAnchors)
