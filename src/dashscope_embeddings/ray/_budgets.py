"""What a client in an actor is given to draw on the fleet's quota (see ``_quota.py``).

* :class:`FleetRate` is the :class:`~dashscope_embeddings.RateBudget` (``rpm_budget`` /
  ``tpm_budget``): each request attempt reserves one request and its estimated tokens at the
  coordinator, atomically, in one round trip.
* :class:`PermitTransport` wraps the client's httpx transport: every HTTP attempt holds one of
  the fleet's permits from just before it is sent until its answer has been read.
"""

from __future__ import annotations

import threading
import time
import typing
from collections.abc import Iterator

import httpx

from dashscope_embeddings.ray._quota import FleetQuota

__all__ = ["FleetRate", "PermitTransport"]

_RESERVATION_TTL_S = 1.0  # a reservation not spent within this is dropped (never re-used late)


class FleetRate:
    """A :class:`~dashscope_embeddings.RateBudget` kept by the fleet's quota actor.

    Pass it as ``tpm_budget`` (``tokens=True``: each attempt reserves one request and its
    estimated tokens) or as ``rpm_budget`` (one request per attempt); one round trip per
    attempt either way. ``wait_time`` reserves at the coordinator when it answers 0, so two
    actors can never both take the last unit; the following ``spend`` uses that reservation.
    A reservation not spent within a second is dropped, never used late.
    """

    def __init__(self, quota: FleetQuota, *, tokens: bool) -> None:
        self.quota = quota
        self.tokens = tokens
        self._reserved: tuple[int, float] | None = None  # (units, monotonic time)
        self._lock = threading.Lock()

    def wait_time(self, units: int = 1) -> float:
        """Seconds until ``units`` fit (0: they do now, and are reserved for this process)."""
        with self._lock:
            held = self._reserved
            fresh = held is not None and time.monotonic() - held[1] < _RESERVATION_TTL_S
            if fresh and held is not None and held[0] == units:
                return 0.0
            self._reserved = None
            requests, tokens = (1, units) if self.tokens else (units, 0)
            wait = self.quota.reserve(requests, tokens)
            if wait <= 0:
                self._reserved = (units, time.monotonic())
            return wait

    def spend(self, units: int = 1) -> None:
        """Use the reservation ``wait_time`` made (already counted at the coordinator)."""
        del units  # the units were counted when they were reserved
        with self._lock:
            self._reserved = None


class _ReleasingStream(httpx.SyncByteStream):
    """An answer body that gives its permit back once read and closed."""

    def __init__(self, inner: httpx.SyncByteStream, release: typing.Callable[[], None]) -> None:
        self._inner = inner
        self._release: typing.Callable[[], None] | None = release

    def __iter__(self) -> Iterator[bytes]:
        yield from self._inner

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()


class PermitTransport(httpx.BaseTransport):
    """An httpx transport that holds one of the fleet's permits per HTTP attempt.

    The permit is taken just before the request is sent and given back when its answer has
    been read (or the attempt failed), so the fleet never has more than ``max_concurrency``
    requests on the wire, whatever each actor's own limiter allows.
    """

    def __init__(self, inner: httpx.BaseTransport, quota: FleetQuota, *, lease_s: float) -> None:
        self._inner = inner
        self._quota = quota
        self._lease_s = lease_s

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` under a permit."""
        lease = self._quota.acquire(self._lease_s)
        try:
            response = self._inner.handle_request(request)
        except BaseException:
            self._quota.release(lease)
            raise
        stream = response.stream
        assert isinstance(stream, httpx.SyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_ReleasingStream(stream, lambda: self._quota.release(lease)),
            extensions=response.extensions,
        )

    def close(self) -> None:
        """Close the wrapped transport."""
        self._inner.close()
