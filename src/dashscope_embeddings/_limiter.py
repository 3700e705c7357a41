"""How many requests are on the wire at once, and how many per minute.

* :class:`ConcurrencyController` decides the limit. Adaptive by default: it starts at
  :data:`START_CONCURRENCY` (or the ceiling, if lower) and grows by one after a window of
  successes. On throttling (429) it steps back by one and probes again only after eight
  windows (the service's bound was found); if more than a quarter of the next round is still
  throttled, it cuts by 30 %. Throttles of requests sent before the last change, and those of
  the round that follows a step back, count once: a service whose count of requests in flight
  lags ours by a moment does not make it collapse. It never goes above ``max_concurrency``
  (the ceiling) or below one.
* :class:`SyncLimiter` / :class:`AsyncLimiter` hold the permits. The transport holds one per
  attempt only: a request sleeping in backoff holds no permit. One controller per client is
  shared by all its calls (and all its event loops: the account's bound is one).
* :class:`RateWindow` keeps optional client-side ``rpm`` / ``tpm`` budgets over a rolling
  minute, applied before a request is sent (and before it takes a permit).
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
import typing

__all__ = [
    "START_CONCURRENCY",
    "AsyncLimiter",
    "ConcurrencyController",
    "RateBudget",
    "RateWindow",
    "SyncLimiter",
]

START_CONCURRENCY = 8
_CUT = 0.7
_PROBE_PATIENCE = 8  # windows of successes before probing above a limit that was throttled
_HARD_CUT_SHARE = 0.25  # still throttled this often a round after stepping back: cut hard


class ConcurrencyController:
    """The current concurrency limit, adapted to throttling; thread-safe."""

    def __init__(self, ceiling: int, *, adaptive: bool = True) -> None:
        if ceiling < 1:
            raise ValueError("ceiling must be >= 1")
        self.ceiling = ceiling
        self.adaptive = adaptive
        self._limit = min(START_CONCURRENCY, ceiling) if adaptive else ceiling
        self._successes = 0
        self._patience = 1
        self._changed_at = time.monotonic()
        self._stepped_up = False
        self._cuts_in_row = 0
        self._done_since_change = 0
        self._throttled_since_change = 0
        self._lock = threading.Lock()
        self.throttles = 0

    @property
    def limit(self) -> int:
        """Requests allowed in flight right now."""
        return self._limit

    def success(self) -> None:
        """A request came back without throttling."""
        if not self.adaptive:
            return
        with self._lock:
            self._successes += 1
            self._done_since_change += 1
            if self._successes >= self._limit and not self._throttled_since_change:
                self._cuts_in_row = 0  # a clean window: the last step back was enough
            if self._successes >= self._limit * self._patience and self._limit < self.ceiling:
                self._change(self._limit + 1)
                self._stepped_up = True
                self._cuts_in_row = 0

    def throttled(self, started: float) -> None:
        """A request sent at ``started`` (monotonic seconds) was answered 429."""
        with self._lock:
            self.throttles += 1
            if not self.adaptive or started < self._changed_at:
                return  # sent before the last change: that change already answered it
            self._throttled_since_change += 1
            answered = self._done_since_change + self._throttled_since_change
            if self._cuts_in_row and answered < self._limit:
                return  # the same burst, before a round at the new limit was answered
            share = self._throttled_since_change / answered
            if self._cuts_in_row and share > _HARD_CUT_SHARE:
                new = int(self._limit * _CUT)  # still throttled often: well over the bound
            else:
                new = self._limit - 1  # at (or just over) the bound: step back one
            self._cuts_in_row += 1
            self._stepped_up = False
            self._patience = _PROBE_PATIENCE  # and probe again only rarely
            self._change(max(1, new))

    def _change(self, limit: int) -> None:
        self._limit = limit
        self._successes = 0
        self._done_since_change = 0
        self._throttled_since_change = 0
        self._changed_at = time.monotonic()


class SyncLimiter:
    """At most ``controller.limit`` holders at once, across threads."""

    def __init__(self, controller: ConcurrencyController) -> None:
        self.controller = controller
        self._in_use = 0
        self._cond = threading.Condition()

    def __enter__(self) -> None:
        with self._cond:
            while self._in_use >= self.controller.limit:
                self._cond.wait()
            self._in_use += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._cond:
            self._in_use -= 1
            self._cond.notify_all()  # the limit may have grown: wake everyone who fits


class AsyncLimiter:
    """The asyncio twin of :class:`SyncLimiter`, for one event loop."""

    def __init__(self, controller: ConcurrencyController) -> None:
        self.controller = controller
        self._in_use = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def _wake(self) -> None:
        while self._waiters and self._in_use < self.controller.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._in_use += 1

    async def __aenter__(self) -> None:
        if self._in_use < self.controller.limit and not self._waiters:
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


class RateBudget(typing.Protocol):
    """A budget of requests or tokens that the client asks before sending.

    :class:`RateWindow` is the local one; a budget shared by many processes (e.g. a Ray actor
    handing out the account's quota) implements the same two methods and is passed to the
    client as ``rpm_budget=`` / ``tpm_budget=``.
    """

    def wait_time(self, units: int = 1) -> float:
        """Seconds until ``units`` fit (0: now). Reserves nothing."""

    def spend(self, units: int = 1) -> None:
        """Record ``units`` as spent now."""


class RateWindow:
    """A budget of ``per_minute`` units (requests or tokens) over any rolling 60 seconds."""

    def __init__(self, per_minute: int, *, window_s: float = 60.0) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be >= 1")
        self.per_minute = per_minute
        # A little longer than the service's window: our clock starts when we send, its own
        # when the request arrives.
        self.window_s = window_s * 1.02
        self._spent: collections.deque[tuple[float, int]] = collections.deque()
        self._total = 0
        self._lock = threading.Lock()

    def wait_time(self, units: int = 1, *, now: float | None = None) -> float:
        """Seconds until ``units`` fit in the window (0: they fit now). Reserves nothing.

        A request larger than the whole budget is let through when the window is empty.
        """
        now = time.monotonic() if now is None else now
        with self._lock:
            while self._spent and self._spent[0][0] <= now - self.window_s:
                self._total -= self._spent.popleft()[1]
            if self._total + units <= self.per_minute or not self._spent:
                return 0.0
            freed = self._total + units - self.per_minute
            for at, spent in self._spent:
                freed -= spent
                if freed <= 0:
                    return max(0.001, at + self.window_s - now)
            return self.window_s  # pragma: no cover - the loop always frees enough

    def spend(self, units: int = 1, *, now: float | None = None) -> None:
        """Record ``units`` as spent now."""
        with self._lock:
            self._spent.append((time.monotonic() if now is None else now, max(0, units)))
            self._total += max(0, units)
