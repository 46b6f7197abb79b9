"""Login throttles: a token bucket per client address (at most `burst` attempts, refilled
at `per_second`) and the failures in a row per account name (the first `free_failures`
free, then an exponential wait of at most `backoff_max` seconds, after which they are
forgotten). services/login.py decides with them; the arithmetic is in the SQL, so that
concurrent attempts on any server process count against the same rows.
"""

from __future__ import annotations

from typing import TypeAlias

import asyncpg

from circus.db.queries import Q

Conn: TypeAlias = asyncpg.Pool | asyncpg.Connection


async def take_address(conn: Conn, address: str, burst: float, per_second: float) -> bool:
    """Spend one attempt of the address's bucket; False when it is empty."""
    spent = await conn.fetchval(Q.login_address_take, address, float(burst),
                                float(per_second))
    return spent is not None


async def address_wait(conn: Conn, address: str, burst: float,
                       per_second: float) -> float | None:
    """Seconds until the address's bucket holds an attempt again."""
    wait: float | None = await conn.fetchval(Q.login_address_wait, address, float(burst),
                                             float(per_second))
    return wait


async def take_account(conn: Conn, username: str, free_failures: int,
                       backoff_max: int) -> bool:
    """Count an attempt on the name as a failure until `clear_account`; False when the
    name must wait first (and then nothing is counted)."""
    counted = await conn.fetchval(Q.login_account_take, username, free_failures,
                                  backoff_max)
    return counted is not None


async def account_wait(conn: Conn, username: str, free_failures: int,
                       backoff_max: int) -> float | None:
    """Seconds until the name may be tried again."""
    wait: float | None = await conn.fetchval(Q.login_account_wait, username, free_failures,
                                             backoff_max)
    return wait


async def clear_account(conn: Conn, username: str) -> None:
    """Forget the name's failures (its password was right)."""
    await conn.execute(Q.login_account_clear, username)


async def purge(conn: Conn, failures_kept: float, bucket_refill: float) -> None:
    """Drop what holds nobody back: accounts whose last failure is `failures_kept`
    seconds old, addresses untouched for `bucket_refill` seconds (a full bucket)."""
    await conn.execute(Q.login_throttle_purge, float(failures_kept), float(bucket_refill))
