"""The emulator's state, shared by the server's event loop and the caller's threads.

:class:`ServerState` holds the settings, the fault queue, the quotas, the request log (a ring
of the newest requests) and the counters behind :class:`EmulatorStats`; the endpoint families
keep their own state in :attr:`ServerState.extensions`.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from dashscope_embeddings.emulator._faults import ScriptedFault, StatusFault

__all__ = ["EmulatorStats", "RecordedRequest", "RollingWindow", "ServerState"]

_REDACTED_HEADERS = frozenset({"authorization", "x-dashscope-apikey"})


@dataclass(frozen=True)
class RecordedRequest:
    """One request the emulator received.

    It is appended to :attr:`Emulator.requests` when its response has been decided, just
    before the response is sent, so a client call that returned is always already recorded.

    Attributes:
        method: HTTP method.
        path: URL path, without the query string.
        headers: Header names lower-cased; the ``authorization`` and ``x-dashscope-apikey``
            values are replaced by ``"<redacted>"`` (the key is never stored).
        json: Parsed JSON body, or ``None`` when the body is empty or not valid JSON.
        status: HTTP status the emulator answered; 0 when it dropped the connection without
            any answer (a ``reset`` fault or ``reset_rate``).
    """

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    status: int


@dataclass(frozen=True)
class EmulatorStats:
    """A snapshot of the emulator's counters (see :attr:`Emulator.stats`).

    Counted since the emulator started or since :meth:`Emulator.reset_stats` /
    :meth:`Emulator.clear_requests`.

    Attributes:
        requests: Requests received, every path.
        requests_by_path: Requests per URL path.
        responses_by_status: Answers per HTTP status (dropped connections are not answers).
        in_flight: Requests being served now (any path; from arrival until the response has
            been sent, trickled bodies included).
        peak_in_flight: The most requests served at once since the last reset.
        billed_requests: Successful text-embedding requests (the service computed vectors;
            a payload, ``truncated`` or ``slow_body`` fault on the answer does not undo it).
            Other endpoint families count here only if they bill through ``_gateway.admit``.
        billed_tokens: Their ``usage`` tokens.
        throttled: HTTP 429 answers decided by the emulator itself (``max_in_flight``, ``rpm``,
            ``tpm``; not injected faults).
        throttled_by_reason: The same, per reason: ``"max_in_flight"``, ``"rpm"``, ``"tpm"``.
        resets: Connections dropped without an answer (``reset`` faults and ``reset_rate``).
        faults: Queued faults consumed (``inject`` and ``inject_fault``).
        vector_cache_hits: Dense vectors served from the vector cache.
        vector_cache_misses: Dense vectors computed.
    """

    requests: int
    requests_by_path: Mapping[str, int]
    responses_by_status: Mapping[int, int]
    in_flight: int
    peak_in_flight: int
    billed_requests: int
    billed_tokens: int
    throttled: int
    throttled_by_reason: Mapping[str, int]
    resets: int
    faults: int
    vector_cache_hits: int
    vector_cache_misses: int


class RollingWindow:
    """Amounts taken within the last ``seconds`` (a rolling quota window), capped at ``limit``."""

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self._entries: deque[tuple[float, int]] = deque()
        self._total = 0

    def take(self, amount: int, now: float) -> float | None:
        """Record ``amount`` if it fits; else the seconds until it would fit (nothing taken)."""
        entries = self._entries
        while entries and entries[0][0] <= now - self.seconds:
            self._total -= entries.popleft()[1]
        if self._total + amount <= self.limit:
            entries.append((now, amount))
            self._total += amount
            return None
        if amount > self.limit:  # never fits: come back after a whole window
            return self.seconds
        excess, freed = self._total + amount - self.limit, 0
        for stamp, taken in entries:
            freed += taken
            if freed >= excess:
                return max(stamp + self.seconds - now, 0.001)
        return self.seconds  # pragma: no cover - unreachable: the entries hold the excess

    def clear(self) -> None:
        self._entries.clear()
        self._total = 0


class ServerState:
    """Settings and state shared by the server's event loop and the caller's threads."""

    def __init__(
        self,
        *,
        api_key: str | None,
        latency: float,
        max_in_flight: int | None,
        error_rate: float,
        seed: int,
        shuffle: bool,
        slow_body_ms: float = 0.0,
        reset_rate: float = 0.0,
        reject_marker: str | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        quota_window_s: float = 60.0,
        quota_retry_after: bool = False,
        request_log_size: int = 5000,
        max_body_bytes: int = 512 * 1024 * 1024,
    ) -> None:
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes
        self.latency = latency
        self.max_in_flight = max_in_flight
        self.error_rate = error_rate
        self.seed = seed
        self.shuffle = shuffle
        self.slow_body_ms = slow_body_ms
        self.reset_rate = reset_rate
        self.reject_marker = reject_marker
        self.quota_retry_after = quota_retry_after
        self._rpm = RollingWindow(rpm, quota_window_s) if rpm is not None else None
        self._tpm = RollingWindow(tpm, quota_window_s) if tpm is not None else None
        # Resets the connection of an ASGI client address; set by Emulator.start().
        self.abort_connection: Callable[[tuple[str, int]], bool] | None = None
        self.in_flight = 0  # admitted embedding requests (max_in_flight); event loop only
        self._rng = random.Random(seed)
        self._reset_rng = random.Random(f"{seed}:reset")
        # Re-entrant: a module holding it may call the counting methods below.
        self.lock = threading.RLock()
        # The newest requests only: a ring, so a long-running emulator holds bounded memory.
        self.requests: deque[RecordedRequest] = deque(maxlen=request_log_size)
        self.faults: deque[StatusFault | ScriptedFault] = deque()
        # Per-family state of the other endpoint modules (multimodal, batches, tasks), keyed
        # by module name; each module creates its own entry on first use, under ``lock``.
        self.extensions: dict[str, Any] = {}
        self._serving = 0  # requests being served, any path (statistics)
        self._clear_counters()

    # --- statistics (updated on the event loop, read from any thread, under ``lock``) --------

    def _clear_counters(self) -> None:
        self._requests = 0
        self._by_path: dict[str, int] = {}
        self._by_status: dict[int, int] = {}
        self._peak = self._serving
        self._billed_requests = 0
        self._billed_tokens = 0
        self._throttled: dict[str, int] = {}
        self._resets = 0
        self._faults_used = 0
        self._cache_hits = 0
        self._cache_misses = 0

    def reset_stats(self) -> None:
        """Zero the counters; the peak restarts from the requests in flight now."""
        with self.lock:
            self._clear_counters()

    def stats(self) -> EmulatorStats:
        """A consistent snapshot of the counters."""
        with self.lock:
            return EmulatorStats(
                requests=self._requests,
                requests_by_path=MappingProxyType(dict(self._by_path)),
                responses_by_status=MappingProxyType(dict(self._by_status)),
                in_flight=self._serving,
                peak_in_flight=self._peak,
                billed_requests=self._billed_requests,
                billed_tokens=self._billed_tokens,
                throttled=sum(self._throttled.values()),
                throttled_by_reason=MappingProxyType(dict(self._throttled)),
                resets=self._resets,
                faults=self._faults_used,
                vector_cache_hits=self._cache_hits,
                vector_cache_misses=self._cache_misses,
            )

    def request_started(self, path: str) -> None:
        """Count a request arriving on ``path`` (and the in-flight peak)."""
        with self.lock:
            self._requests += 1
            self._by_path[path] = self._by_path.get(path, 0) + 1
            self._serving += 1
            self._peak = max(self._peak, self._serving)

    def request_finished(self) -> None:
        """Count a request whose response has been sent (or dropped)."""
        with self.lock:
            self._serving -= 1

    def count_throttle(self, reason: str) -> None:
        """Count a 429 decided by the emulator (``max_in_flight``, ``rpm``, ``tpm``)."""
        with self.lock:
            self._throttled[reason] = self._throttled.get(reason, 0) + 1

    def count_reset(self) -> None:
        """Count a connection dropped without an answer."""
        with self.lock:
            self._resets += 1

    def count_vector(self, *, hit: bool) -> None:
        """Count a dense vector served from the cache (``hit``) or computed."""
        with self.lock:
            if hit:
                self._cache_hits += 1
            else:
                self._cache_misses += 1

    def bill(self, tokens: int) -> None:
        """Count a successful embedding request and its tokens."""
        with self.lock:
            self._billed_requests += 1
            self._billed_tokens += tokens

    # --- quotas ------------------------------------------------------------------------------

    def take_request(self) -> float | None:
        """Take one request from the RPM quota; the seconds to wait when it is exhausted."""
        if self._rpm is None:
            return None
        with self.lock:
            return self._rpm.take(1, time.monotonic())

    def take_tokens(self, tokens: int) -> float | None:
        """Take ``tokens`` from the TPM quota; the seconds to wait when it is exhausted."""
        if self._tpm is None:
            return None
        with self.lock:
            return self._tpm.take(tokens, time.monotonic())

    def clear_quotas(self) -> None:
        """Empty the RPM and TPM windows."""
        with self.lock:
            for window in (self._rpm, self._tpm):
                if window is not None:
                    window.clear()

    def record(
        self,
        method: str,
        path: str,
        raw_headers: list[tuple[bytes, bytes]],
        body: Any,
        status: int,
    ) -> None:
        """Append one request to the log, with the API key headers redacted."""
        headers: dict[str, str] = {}
        for raw_name, raw_value in raw_headers:
            name = raw_name.decode("latin-1").lower()
            value = "<redacted>" if name in _REDACTED_HEADERS else raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        entry = RecordedRequest(method=method, path=path, headers=headers, json=body, status=status)
        with self.lock:
            self.requests.append(entry)
            if status:
                self._by_status[status] = self._by_status.get(status, 0) + 1

    def pop_fault(self) -> StatusFault | None:
        """The next queued status fault (FIFO), if the queue starts with one.

        A scripted fault (:meth:`Emulator.inject_fault`) at the head of the queue is left for
        a request that goes through :func:`._gateway.admit`, which takes both kinds.
        """
        with self.lock:
            if self.faults and isinstance(self.faults[0], StatusFault):
                self._faults_used += 1
                fault = self.faults.popleft()
                assert isinstance(fault, StatusFault)
                return fault
            return None

    def pop_any_fault(self) -> StatusFault | ScriptedFault | None:
        """The next queued fault of either kind, if any (FIFO)."""
        with self.lock:
            if not self.faults:
                return None
            self._faults_used += 1
            return self.faults.popleft()

    def draw_error(self) -> bool:
        """True when this request should fail with a random ``InternalError``."""
        return self.error_rate > 0.0 and self._rng.random() < self.error_rate

    def draw_reset(self) -> bool:
        """True when this request's connection should be dropped (``reset_rate``)."""
        return self.reset_rate > 0.0 and self._reset_rng.random() < self.reset_rate
