"""One account's quota for a fleet of Ray actors: a named coordinator actor and its clients.

* :class:`_QuotaActor` runs once per quota name (a detached, named, zero-CPU asyncio actor in
  the ``dashscope-embeddings`` namespace). It holds the account's rolling ``rpm`` / ``tpm``
  windows (the core's :class:`~dashscope_embeddings.RateWindow`) and ``max_concurrency``
  permits with leases.
* :class:`FleetQuota` is a process's handle on it (found again by name after unpickling).

What each actor's client is given to use it is in ``_budgets.py``.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import os
import socket
import threading
import typing
from collections.abc import Mapping

import ray

from dashscope_embeddings._errors import DashScopeError
from dashscope_embeddings._limiter import RateWindow
from dashscope_embeddings.ray._fleet import OTHER, FleetLimit, Grant

__all__ = [
    "NO_PERMIT",
    "QUOTA_NAMESPACE",
    "FleetQuota",
    "FleetQuotaError",
    "QuotaLimits",
    "QuotaStats",
]

logger = logging.getLogger("dashscope_embeddings.ray")

QUOTA_NAMESPACE = "dashscope-embeddings"
_START_TIMEOUT_S = 120.0  # for the quota actor to start and answer (it needs no CPU)
NO_PERMIT = -1  # what acquire() hands out when the quota has no max_concurrency


class FleetQuotaError(DashScopeError, RuntimeError):
    """The fleet's quota actor could not be reached (or created) from this process."""


@dataclasses.dataclass(frozen=True)
class QuotaLimits:
    """What one account allows, for the whole fleet.

    Attributes:
        rpm: Requests per rolling window, or ``None``.
        tpm: Estimated input tokens per rolling window, or ``None``.
        max_concurrency: Requests in flight at once across the fleet, or ``None``.
        window_s: Length of the rolling window in seconds (60: the service's minute).
    """

    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None
    window_s: float = 60.0

    def __str__(self) -> str:
        parts = [f"{n}={getattr(self, n)}" for n in ("rpm", "tpm", "max_concurrency")]
        window = "" if self.window_s == 60.0 else f", window {self.window_s:g}s"
        return ", ".join(parts) + window


@dataclasses.dataclass(frozen=True)
class QuotaStats:
    """A snapshot of a fleet quota's counters (see :func:`fleet_quota_stats`).

    Attributes:
        name: The quota's name.
        limits: Its limits now.
        reserved_requests: Request attempts let through by the ``rpm`` / ``tpm`` windows.
        reserved_tokens: Their estimated tokens.
        rate_waits: Reservations refused because a window was full (the asker waited).
        processes: Distinct processes (actors) that asked so far.
        permits_granted: ``max_concurrency`` permits handed out.
        permit_waits: Permits that had to queue for another to come back.
        in_flight: Permits held now.
        peak_in_flight: The most permits held at once.
        expired: Permits never given back, reclaimed when their lease ran out.
        throttled: Attempts answered 429, as the actors reported them with their permits.
        fleet_limits: Each account's adaptive limit now (``<key hash>@<host>/<model>``).
    """

    name: str
    limits: QuotaLimits
    reserved_requests: int
    reserved_tokens: int
    rate_waits: int
    processes: int
    permits_granted: int
    permit_waits: int
    in_flight: int
    peak_in_flight: int
    expired: int
    throttled: int = 0
    fleet_limits: Mapping[str, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class _Lease:
    timer: asyncio.TimerHandle
    pool: FleetLimit | None
    grant: Grant


@dataclasses.dataclass
class _Waiter:
    future: asyncio.Future[int]
    lease_s: float
    pool: FleetLimit | None


class _QuotaActor:
    """The coordinator: rate windows, permits and adaptive limits for every actor of the fleet.

    An asyncio actor (every method is ``async``): a caller waiting for a permit costs a
    coroutine, not a thread. A permit is granted when the fleet holds fewer than the declared
    ``max_concurrency`` and the asker's account (see ``_fleet.py``) fewer than its adaptive
    limit; waiters are served first come, first served. Each permit is a lease that ends when
    given back or after ``lease_s`` (an actor killed mid-request cannot leak it).
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._limits = QuotaLimits()
        self._rpm: RateWindow | None = None
        self._tpm: RateWindow | None = None
        self._held: dict[int, _Lease] = {}
        self._waiters: collections.deque[_Waiter] = collections.deque()
        self._pools: dict[tuple[str, bool], FleetLimit] = {}
        self._next_lease = 0
        self._requests = self._tokens = self._rate_waits = 0
        self._granted = self._permit_waits = self._peak = self._expired = 0
        self._processes: set[str] = set()

    async def ping(self) -> bool:
        """Answer at once (a handle checks that the coordinator is there)."""
        return True

    async def configure(self, limits: QuotaLimits) -> QuotaLimits | None:
        """Set the limits; the previous ones when they differed (the windows restart then)."""
        if limits == self._limits:
            return None
        previous = self._limits
        if (limits.rpm, limits.window_s) != (previous.rpm, previous.window_s):
            self._rpm = RateWindow(limits.rpm, window_s=limits.window_s) if limits.rpm else None
        if (limits.tpm, limits.window_s) != (previous.tpm, previous.window_s):
            self._tpm = RateWindow(limits.tpm, window_s=limits.window_s) if limits.tpm else None
        self._limits = limits
        for pool in self._pools.values():
            pool.set_cap(limits.max_concurrency)
        self._wake()
        return previous if previous != QuotaLimits() else None

    async def reserve(self, requests: int, tokens: int, process: str = "") -> float:
        """Take ``requests`` and ``tokens`` from the windows now (0.0), or say how long to wait.

        Nothing is taken unless both fit: a request never holds one budget while waiting for
        the other. ``process`` names the asker, for :attr:`QuotaStats.processes`.
        """
        self._processes.add(process)
        rpm, tpm = self._rpm, self._tpm
        wait = max(
            rpm.wait_time(requests) if rpm is not None and requests else 0.0,
            tpm.wait_time(tokens) if tpm is not None and tokens else 0.0,
        )
        if wait > 0:
            self._rate_waits += 1
            return wait
        if rpm is not None and requests:
            rpm.spend(requests)
        if tpm is not None and tokens:
            tpm.spend(tokens)
        self._requests += requests
        self._tokens += tokens
        return 0.0

    async def acquire(
        self, lease_s: float, process: str = "", account: str | None = None, adaptive: bool = True
    ) -> int:
        """A permit (its lease id), once one is free; at once when nothing limits the asker.

        ``account`` (see :func:`~dashscope_embeddings.ray._fleet.account_key`) puts the
        attempt under that account's adaptive limit; ``None``: only the declared
        ``max_concurrency`` applies. ``adaptive=False``: the account's limit is the declared
        one (a fleet of clients made with ``adaptive_concurrency=False``).
        """
        self._processes.add(process)
        pool = self._pool(account, adaptive)
        if self._limits.max_concurrency is None and (pool is None or pool.limit is None):
            return NO_PERMIT
        waiter = _Waiter(asyncio.get_running_loop().create_future(), lease_s, pool)
        self._waiters.append(waiter)
        self._wake()
        if not waiter.future.done():
            self._permit_waits += 1
        return await waiter.future

    async def release(self, lease: int, outcome: str = OTHER) -> None:
        """Give a permit back with its attempt's outcome; unknown or expired leases are ignored.

        ``outcome`` is ``_fleet.SUCCESS``, ``THROTTLED`` or ``OTHER``: it steers the asker's
        account's adaptive limit.
        """
        held = self._held.pop(lease, None)
        if held is not None:
            held.timer.cancel()
            if held.pool is not None:
                held.pool.give_back(held.grant, outcome)
            self._wake()

    async def stats(self) -> QuotaStats:
        """The counters now."""
        return QuotaStats(
            name=self._name,
            limits=self._limits,
            reserved_requests=self._requests,
            reserved_tokens=self._tokens,
            rate_waits=self._rate_waits,
            processes=len(self._processes),
            permits_granted=self._granted,
            permit_waits=self._permit_waits,
            in_flight=len(self._held),
            peak_in_flight=self._peak,
            expired=self._expired,
            throttled=sum(pool.throttles for pool in self._pools.values()),
            fleet_limits={
                account: limit
                for (account, _), pool in self._pools.items()
                if (limit := pool.limit) is not None
            },
        )

    def _pool(self, account: str | None, adaptive: bool) -> FleetLimit | None:
        if account is None:
            return None
        pool = self._pools.get((account, adaptive))
        if pool is None:
            pool = FleetLimit(self._limits.max_concurrency, adaptive=adaptive)
            self._pools[(account, adaptive)] = pool
        return pool

    def _grant(self, waiter: _Waiter) -> None:
        lease = self._next_lease
        self._next_lease += 1
        loop = asyncio.get_running_loop()
        grant = waiter.pool.take() if waiter.pool is not None else Grant(0.0, 0)
        timer = loop.call_later(waiter.lease_s, self._expire, lease)
        self._held[lease] = _Lease(timer, waiter.pool, grant)
        self._granted += 1
        self._peak = max(self._peak, len(self._held))
        waiter.future.set_result(lease)

    def _expire(self, lease: int) -> None:
        held = self._held.pop(lease, None)
        if held is not None:
            self._expired += 1
            if held.pool is not None:
                held.pool.give_back(held.grant, OTHER)
            self._wake()

    def _wake(self) -> None:
        """Grant permits to waiters in order, each that fits (its account may be full)."""
        cap = self._limits.max_concurrency
        waiting: collections.deque[_Waiter] = collections.deque()
        for waiter in self._waiters:
            if waiter.future.done():
                continue  # its asker is gone
            fleet_room = cap is None or len(self._held) < cap
            if fleet_room and (waiter.pool is None or waiter.pool.has_room()):
                self._grant(waiter)
            else:
                waiting.append(waiter)
        self._waiters = waiting


_RemoteQuota: typing.Any = ray.remote(_QuotaActor)


class FleetQuota:
    """This process's handle on a named quota actor (created by the first process that asks).

    It pickles as its name: an unpickled copy finds the same actor again. When the actor stops
    answering (killed, unreachable: no answer within ``answer_timeout_s``), the handle is
    :attr:`lost`: one WARNING says so, and the budgets and permits built on it step aside for
    the process's own limiters (see ``_budgets.py``) instead of failing or waiting forever.
    """

    answer_timeout_s = 10.0  # a call that should answer at once; and a permit wait's check

    def __init__(self, name: str, handle: typing.Any) -> None:
        self.name = name
        self._handle = handle
        self._process = f"{socket.gethostname()}:{os.getpid()}"
        self._lost = False
        self._lost_lock = threading.Lock()

    @classmethod
    def connect(cls, name: str, limits: QuotaLimits | None) -> FleetQuota:
        """The quota actor named ``name``, created if needed, with ``limits`` applied.

        ``limits=None`` leaves the limits the fleet has (none, or those another process
        declared): the process only takes part in its accounts' adaptive limits.

        Raises:
            FleetQuotaError: Ray is not initialised here, or the actor could not be reached.
        """
        if not ray.is_initialized():
            raise FleetQuotaError(
                f"fleet quota {name!r} needs Ray: call ray.init() first (inside Ray Data's "
                "actors it already is)"
            )
        try:
            handle = _RemoteQuota.options(
                name=f"quota:{name}",
                namespace=QUOTA_NAMESPACE,
                lifetime="detached",
                get_if_exists=True,
                num_cpus=0,
                max_concurrency=10_000,
                max_restarts=-1,
            ).remote(name)
            call = handle.configure.remote(limits) if limits is not None else handle.ping.remote()
            previous = ray.get(call, timeout=_START_TIMEOUT_S)
        except ray.exceptions.RayError as exc:
            raise FleetQuotaError(
                f"fleet quota {name!r} could not be reached within {_START_TIMEOUT_S:g}s: {exc}"
            ) from exc
        if isinstance(previous, QuotaLimits):
            logger.warning(
                "fleet quota %r: limits changed from (%s) to (%s); the latest process to "
                "start sets them for the whole fleet",
                name,
                previous,
                limits,
            )
        return cls(name, handle)

    @classmethod
    def lookup(cls, name: str) -> FleetQuota | None:
        """The existing quota actor named ``name``, or ``None``."""
        try:
            handle = ray.get_actor(f"quota:{name}", namespace=QUOTA_NAMESPACE)
        except ValueError:
            return None
        return cls(name, handle)

    def __reduce__(self) -> tuple[typing.Any, tuple[str]]:
        return (_lookup_or_fail, (self.name,))

    def __repr__(self) -> str:
        return f"FleetQuota({self.name!r})"

    @property
    def lost(self) -> bool:
        """The coordinator stopped answering; this process paces itself from now on."""
        return self._lost

    def lose(self, cause: BaseException) -> None:
        """Mark the coordinator lost; the first time, say so in one WARNING."""
        with self._lost_lock:
            if self._lost:
                return
            self._lost = True
        logger.warning(
            "fleet quota %r did not answer (%s): this process now paces itself with its own "
            "adaptive limiter (and its own rpm / tpm windows, if declared) for the rest of its "
            "life; the fleet is no longer coordinated",
            self.name,
            type(cause).__name__,
        )

    def reserve(self, requests: int, tokens: int) -> float:
        """See :meth:`_QuotaActor.reserve`; one blocking round trip."""
        return float(self._call("reserve", requests, tokens, self._process))

    def acquire(self, lease_s: float, account: str | None = None, adaptive: bool = True) -> int:
        """See :meth:`_QuotaActor.acquire`; blocks until a permit is free.

        While it waits, the coordinator is asked every ``answer_timeout_s`` whether it is
        still there (a long wait for a busy fleet is fine, a dead coordinator is not).

        Raises:
            FleetQuotaError: The coordinator is gone or did not answer.
        """
        try:
            ref = self._handle.acquire.remote(lease_s, self._process, account, adaptive)
            while True:
                ready, _ = ray.wait([ref], timeout=self.answer_timeout_s)
                if ready:
                    return int(ray.get(ref))
                ray.get(self._handle.ping.remote(), timeout=self.answer_timeout_s)
        except ray.exceptions.RayError as exc:
            raise FleetQuotaError(f"fleet quota {self.name!r} did not answer: {exc}") from exc

    def release(self, lease: int, outcome: str = OTHER) -> None:
        """Give a permit back with its attempt's outcome, without waiting for the answer."""
        if lease != NO_PERMIT and not self._lost:
            self._handle.release.remote(lease, outcome)

    def stats(self) -> QuotaStats:
        """The coordinator's counters."""
        return typing.cast(QuotaStats, self._call("stats"))

    def kill(self) -> None:
        """End the quota actor (the next process that asks for it starts a fresh one)."""
        ray.kill(self._handle)

    def _call(self, method: str, *args: object) -> typing.Any:
        try:
            ref = getattr(self._handle, method).remote(*args)
            return ray.get(ref, timeout=self.answer_timeout_s)
        except ray.exceptions.RayError as exc:
            raise FleetQuotaError(f"fleet quota {self.name!r} did not answer: {exc}") from exc


def _lookup_or_fail(name: str) -> FleetQuota:
    quota = FleetQuota.lookup(name) if ray.is_initialized() else None
    if quota is None:
        raise FleetQuotaError(f"fleet quota {name!r} is not running in this Ray cluster")
    return quota
