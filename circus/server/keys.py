"""Typed keys for what the application holds."""

from __future__ import annotations

import asyncio

from aiohttp import web

from circus.context import Context
from circus.db.bus import Subscription

CONTEXT = web.AppKey("context", Context)
# The subscriptions of live SSE streams: woken at shutdown so they end at once.
STREAMS = web.AppKey("streams", set[Subscription])
CLOSING = web.AppKey("closing", asyncio.Event)
