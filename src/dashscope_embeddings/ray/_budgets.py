"""What a client in an actor is given to draw on the fleet's quota (see ``_quota.py``).

* :class:`FleetRate` is the :class:`~dashscope_embeddings.RateBudget` (``rpm_budget`` /
  ``tpm_budget``): each request attempt reserves one request and its estimated tokens at the
  coordinator, atomically, in one round trip.
* :class:`PermitTransport` wraps the client's httpx transport: every HTTP attempt holds one of
  the fleet's permits from just before it is sent until its answer has been read, and gives it
  back with the answer's outcome (2xx, 429, other), which steers the account's adaptive limit
  at the coordinator.

When the coordinator is lost (see :attr:`FleetQuota.lost`) both step aside: the rates fall back
to this process's own windows of the declared ``rpm`` / ``tpm``, the permits to nothing (the
client's own adaptive limiter still holds each attempt). Never a hang, never a failed job.
"""

from __future__ import annotations

import threading
import time
import typing
from collections.abc import Iterator

import httpx

from dashscope_embeddings._limiter import RateWindow
from dashscope_embeddings.ray._fleet import OTHER, outcome_of
from dashscope_embeddings.ray._quota import NO_PERMIT, FleetQuota, FleetQuotaError

__all__ = ["FleetRate", "PermitTransport"]

_RESERVATION_TTL_S = 1.0  # a reservation not spent within this is dropped (never re-used late)


class FleetRate:
    """A :class:`~dashscope_embeddings.RateBudget` kept by the fleet's quota actor.

    Pass it as ``tpm_budget`` (``tokens=True``: each attempt reserves one request and its
    estimated tokens) or as ``rpm_budget`` (one request per attempt); one round trip per
    attempt either way. ``wait_time`` reserves at the coordinator when it answers 0, so two
    actors can never both take the last unit; the following ``spend`` uses that reservation.
    A reservation not spent within a second is dropped, never used late.

    ``fallback`` is this process's own ``(rpm, tpm)`` windows, used once the coordinator is
    lost (``None``: no such budget).
    """

    def __init__(
        self,
        quota: FleetQuota,
        *,
        tokens: bool,
        fallback: tuple[RateWindow | None, RateWindow | None] = (None, None),
    ) -> None:
        self.quota = quota
        self.tokens = tokens
        self.fallback = fallback
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
            if not self.quota.lost:
                try:
                    wait = self.quota.reserve(requests, tokens)
                except FleetQuotaError as exc:
                    self.quota.lose(exc)
                else:
                    if wait <= 0:
                        self._reserved = (units, time.monotonic())
                    return wait
            rpm, tpm = self.fallback
            wait = max(
                rpm.wait_time(requests) if rpm is not None and requests else 0.0,
                tpm.wait_time(tokens) if tpm is not None and tokens else 0.0,
            )
            if wait <= 0:  # the process's own windows: spent here, as the coordinator would
                if rpm is not None and requests:
                    rpm.spend(requests)
                if tpm is not None and tokens:
                    tpm.spend(tokens)
            return wait

    def spend(self, units: int = 1) -> None:
        """Use the reservation ``wait_time`` made (already counted where it was made)."""
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
    been read (or the attempt failed), with the answer's outcome, so the fleet never has more
    requests on the wire than the account's adaptive limit (under the declared
    ``max_concurrency``), whatever each actor's own limiter allows.

    Args:
        inner: The transport that sends.
        quota: The coordinator's handle.
        lease_s: How long a permit may be held before the coordinator reclaims it.
        account: The account whose adaptive limit the attempts are under (``None``: only the
            declared ``max_concurrency``).
        adaptive: ``False``: the account's limit is the declared one, 429s change nothing.
    """

    def __init__(
        self,
        inner: httpx.BaseTransport,
        quota: FleetQuota,
        *,
        lease_s: float,
        account: str | None = None,
        adaptive: bool = True,
    ) -> None:
        self._inner = inner
        self._quota = quota
        self._lease_s = lease_s
        self._account = account
        self._adaptive = adaptive

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` under a permit (straight through once the coordinator is lost)."""
        lease = NO_PERMIT
        if not self._quota.lost:
            try:
                lease = self._quota.acquire(self._lease_s, self._account, self._adaptive)
            except FleetQuotaError as exc:
                self._quota.lose(exc)
        if lease == NO_PERMIT:
            return self._inner.handle_request(request)
        try:
            response = self._inner.handle_request(request)
        except BaseException:
            self._quota.release(lease, OTHER)
            raise
        stream = response.stream
        assert isinstance(stream, httpx.SyncByteStream)
        outcome = outcome_of(response.status_code)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_ReleasingStream(stream, lambda: self._quota.release(lease, outcome)),
            extensions=response.extensions,
        )

    def close(self) -> None:
        """Close the wrapped transport."""
        self._inner.close()
