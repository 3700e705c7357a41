"""Bounds on how many requests are on the wire at once.

A limiter is held by the transport for one attempt only: a request sleeping in backoff holds
no permit. One limiter per client (per event loop for the async client) is shared by all of
the client's calls. The limit can be changed while permits are held.
"""

from __future__ import annotations

import asyncio
import collections
import threading

__all__ = ["AsyncLimiter", "SyncLimiter"]


class SyncLimiter:
    """At most ``limit`` holders at once, across threads; the limit can be changed live."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self._limit = limit
        self._in_use = 0
        self._cond = threading.Condition()

    @property
    def limit(self) -> int:
        """The current bound."""
        return self._limit

    @limit.setter
    def limit(self, value: int) -> None:
        with self._cond:
            self._limit = max(1, value)
            self._cond.notify_all()

    @property
    def in_use(self) -> int:
        """Permits held right now."""
        return self._in_use

    def __enter__(self) -> None:
        with self._cond:
            while self._in_use >= self._limit:
                self._cond.wait()
            self._in_use += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._cond:
            self._in_use -= 1
            self._cond.notify()


class AsyncLimiter:
    """The asyncio twin of :class:`SyncLimiter`, for one event loop."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self._limit = limit
        self._in_use = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def limit(self) -> int:
        """The current bound."""
        return self._limit

    @limit.setter
    def limit(self, value: int) -> None:
        self._limit = max(1, value)
        self._wake()

    @property
    def in_use(self) -> int:
        """Permits held right now."""
        return self._in_use

    def _wake(self) -> None:
        while self._waiters and self._in_use < self._limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._in_use += 1

    async def __aenter__(self) -> None:
        if self._in_use < self._limit and not self._waiters:
            self._in_use += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._in_use -= 1  # the permit was handed over just as we were cancelled
                self._wake()
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self._in_use -= 1
        self._wake()
