"""A subscription's wait is cancelled like any await, even as a notification arrives:
the runner's loops stop on that cancellation (on 3.11, asyncio.wait_for swallowed it)."""
import asyncio

import pytest

from circus.db.bus import Subscription


async def test_a_wait_cancelled_as_a_notification_arrives_is_cancelled():
    sub = Subscription(frozenset({"c"}))
    waiting = asyncio.create_task(sub.wait(timeout=10))
    await asyncio.sleep(0)  # the wait is now blocked on the queue
    sub.queue.put_nowait(("c", "1"))
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
