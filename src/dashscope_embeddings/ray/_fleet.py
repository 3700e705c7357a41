"""One account's adaptive concurrency limit, held for a whole fleet by the quota actor.

An account is a key, a service host and a model: the service's limits are per account and per
model. :func:`account_key` names one without the key (a short hash of it). :class:`FleetLimit`
is the fleet's limit for that account: the core's
:class:`~dashscope_embeddings._limiter.ConcurrencyController` (the same policy as one client:
start at 8, grow by one after a window of successes, step back on a 429, cut by 30 % when a
round after a step back is still throttled), fed by every actor's attempts, under the
declared ``max_concurrency`` when there is one. Its clock is the coordinator's: an attempt's
time is when its permit was granted, so actors on other machines need no common clock.

One thing the coordinator knows that a client's controller does not use: how many of the
fleet's requests were on the wire when the service refused one. A 429 for the permit granted
as the k-th in flight bounds the limit to k - 1 at once; each step up of the controller raises
that bound by one (the probe, as the controller's own). Without it, every permit a 429 frees
goes straight to one of the many requests the fleet has waiting, and is refused again, until
the controller has stepped down from its start, one round at a time.
"""

from __future__ import annotations

import hashlib
import time
import typing

import httpx
from pydantic import SecretStr

from dashscope_embeddings._limiter import ConcurrencyController

__all__ = [
    "FLEET_CEILING",
    "OTHER",
    "SUCCESS",
    "THROTTLED",
    "FleetLimit",
    "Grant",
    "account_key",
    "outcome_of",
]

FLEET_CEILING = 1024  # with no declared max_concurrency: the client's own largest ceiling

SUCCESS = "ok"  # what an attempt's permit reports back: answered 2xx
THROTTLED = "throttled"  # answered 429
OTHER = ""  # anything else (an error, a dropped connection): neither grows nor cuts


def outcome_of(status: int) -> str:
    """What an answer of HTTP ``status`` tells the fleet's limit."""
    if status == 429:
        return THROTTLED
    return SUCCESS if 200 <= status < 300 else OTHER


def account_key(api_key: SecretStr, native_base: str, model: str) -> str:
    """``<key fingerprint>@<host>/<model>``: one account's limits; the key is never in it."""
    digest = hashlib.sha256(api_key.get_secret_value().encode()).hexdigest()[:12]
    url = httpx.URL(native_base)
    host = url.host if url.port is None else f"{url.host}:{url.port}"
    return f"{digest}@{host}/{model}"


class Grant(typing.NamedTuple):
    """A permit as its account saw it: when it was granted, and as which in flight (1-based)."""

    at: float
    position: int


class FleetLimit:
    """The fleet's concurrency limit for one account, and its permits held now.

    Args:
        cap: The declared ``max_concurrency`` (the limit never goes above it), or ``None``.
        adaptive: ``False``: the limit is ``cap`` (no limit without one), 429s change nothing.
    """

    def __init__(self, cap: int | None, *, adaptive: bool = True) -> None:
        self.adaptive = adaptive
        self.in_flight = 0
        self.throttles = 0
        self._cap: int | None = None
        self._bound: int | None = None  # k - 1 after a 429 of the k-th permit in flight
        self._controller = ConcurrencyController(FLEET_CEILING, adaptive=adaptive)
        self.set_cap(cap)

    @property
    def cap(self) -> int | None:
        """The declared ``max_concurrency``, or ``None``."""
        return self._cap

    @property
    def limit(self) -> int | None:
        """Permits allowed at once now; ``None``: no limit (not adaptive, nothing declared)."""
        if not self.adaptive and self._cap is None:
            return None
        limit = self._controller.limit
        return limit if self._bound is None else min(limit, self._bound)

    def set_cap(self, cap: int | None) -> None:
        """A new declared ``max_concurrency``: the limit starts again under it."""
        if cap is not None and cap < 1:
            raise ValueError("cap must be None or >= 1")
        if cap == self._cap:
            return
        self._cap = cap
        self._bound = None
        self._controller = ConcurrencyController(
            cap if cap is not None else FLEET_CEILING, adaptive=self.adaptive
        )

    def has_room(self) -> bool:
        """Whether one more permit fits now."""
        limit = self.limit
        return limit is None or self.in_flight < limit

    def take(self) -> Grant:
        """Count a permit as held; when (the coordinator's monotonic clock) and how many then."""
        self.in_flight += 1
        return Grant(time.monotonic(), self.in_flight)

    def give_back(self, grant: Grant, outcome: str) -> None:
        """The permit of ``grant`` is back, its attempt ended with ``outcome``."""
        self.in_flight = max(0, self.in_flight - 1)
        if outcome == SUCCESS:
            before = self._controller.limit
            self._controller.success()
            if self._bound is not None and self._controller.limit > before:
                self._bound += 1  # the controller probes one higher: so does the bound
                if self._bound >= self._controller.limit:
                    self._bound = None
        elif outcome == THROTTLED:
            self.throttles += 1
            self._controller.throttled(grant.at)
            if self.adaptive:
                refused = max(1, grant.position - 1)
                self._bound = refused if self._bound is None else min(self._bound, refused)
