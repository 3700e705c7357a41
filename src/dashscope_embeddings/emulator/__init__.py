"""A local emulator of the DashScope (Model Studio) text-embedding HTTP API.

It serves the native endpoint (``POST /api/v1/services/embeddings/text-embedding/text-embedding``)
and the OpenAI-compatible one (``POST /compatible-mode/v1/embeddings``) on 127.0.0.1, validates
requests like the service (status codes and JSON error bodies of both protocols), and answers
with deterministic lexical vectors: texts sharing words are close, which is enough for
development and CI but says nothing about model quality. Model limits come from
:mod:`dashscope_embeddings._registry`.

Embeddings come back in a deterministic order that is *not* the input order (for two or more
texts): the service guarantees no order, so clients must sort by ``text_index`` / ``index``.

Comments in the emulator's modules cite the service's public documentation as ``[ref N]``:

* ref 0, 1, 4 — hosts, headers, the native text endpoint, models and limits:
  https://www.alibabacloud.com/help/en/model-studio/text-embedding-synchronous-api
* ref 2 — the OpenAI-compatible endpoint:
  https://docs.qwencloud.com/api-reference/text-embedding/openai-embedding
* ref 3 — the multimodal endpoint:
  https://www.alibabacloud.com/help/en/model-studio/multimodal-embedding-api-reference
* ref 5 — errors: https://www.alibabacloud.com/help/en/model-studio/error-code
* ref 6 — rate limits: https://help.aliyun.com/zh/model-studio/rate-limit
* ref 7a — asynchronous tasks: https://help.aliyun.com/zh/model-studio/text-embedding-batch-api
* ref 7b — the Batch API: https://www.alibabacloud.com/help/en/model-studio/batch-inference
* ref 8 — what the official SDK and the older integrations do (read from their source)
* ref 10 — facts no public page confirms; the emulator's choice is stated where it is used

For reliability and throughput tests it can misbehave on purpose: queued status faults
(:meth:`Emulator.inject`), scripted wire and payload faults (:meth:`Emulator.inject_fault`:
connection resets, truncated JSON, HTML gateway pages, duplicate / missing indices, short
vectors, NaN, slow bodies), random errors and resets, content-inspection rejections, RPM / TPM
quotas and a concurrency cap; :attr:`Emulator.stats` counts what happened.

>>> from dashscope_embeddings.emulator import Emulator
>>> with Emulator(api_key="sk-test", rpm=600) as emu:  # doctest: +SKIP
...     emu.base_url                # 'http://127.0.0.1:PORT/api/v1'
...     emu.inject(429, "Throttling.RateQuota", "slow down", headers={"retry-after": "0"})
...     emu.inject_fault("reset")   # the next request's connection is dropped
...     emu.stats.peak_in_flight

Needs the ``emulator`` extra (Starlette and uvicorn); the core package never imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import replace as _replace
from types import MappingProxyType, TracebackType
from typing import Any, Literal

try:
    import uvicorn

    from dashscope_embeddings.emulator._app import (
        FAULT_KINDS,
        FaultKind,
        _ScriptedFault,
    )
    from dashscope_embeddings.emulator._router import create_app
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    if exc.name not in ("starlette", "uvicorn"):
        raise
    raise ModuleNotFoundError(
        "the DashScope emulator needs Starlette and uvicorn: "
        "pip install 'dashscope-embeddings[emulator]'",
        name=exc.name,
    ) from exc

__all__ = ["Emulator", "EmulatorStats", "FaultKind", "RecordedRequest"]

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0
_REDACTED_HEADERS = frozenset({"authorization", "x-dashscope-apikey"})
_FAULT_OPTIONS: dict[str, frozenset[str]] = {
    "reset": frozenset(),
    "html": frozenset({"status"}),
    "truncated": frozenset({"at", "full_length"}),
    "slow_body": frozenset({"ms", "pieces"}),
    "duplicate_index": frozenset(),
    "missing_index": frozenset(),
    "wrong_dimension": frozenset(),
    "nan": frozenset({"value"}),
}
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a TCP RST


def _abort_connection(server: uvicorn.Server, client: tuple[str, int]) -> bool:
    """Reset the server's connection to ``client`` (an ASGI ``client`` address).

    Runs on the server's event loop. ``False`` when no such connection is open.
    """
    for connection in list(server.server_state.connections):
        if getattr(connection, "client", None) != client:
            continue
        transport = getattr(connection, "transport", None)
        if transport is None:
            return False
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        transport.abort()
        return True
    return False


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
            Other endpoint families count here only if they bill through ``_app.admit``.
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


@dataclass(frozen=True)
class _Fault:
    status: int
    code: str | None
    message: str
    headers: dict[str, str]
    body: dict[str, Any] | None


class _RollingWindow:
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


class _ServerState:
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
    ) -> None:
        self.api_key = api_key
        self.latency = latency
        self.max_in_flight = max_in_flight
        self.error_rate = error_rate
        self.seed = seed
        self.shuffle = shuffle
        self.slow_body_ms = slow_body_ms
        self.reset_rate = reset_rate
        self.reject_marker = reject_marker
        self.quota_retry_after = quota_retry_after
        self._rpm = _RollingWindow(rpm, quota_window_s) if rpm is not None else None
        self._tpm = _RollingWindow(tpm, quota_window_s) if tpm is not None else None
        # Resets the connection of an ASGI client address; set by Emulator.start().
        self.abort_connection: Callable[[tuple[str, int]], bool] | None = None
        self.in_flight = 0  # admitted embedding requests (max_in_flight); event loop only
        self._rng = random.Random(seed)
        self._reset_rng = random.Random(f"{seed}:reset")
        # Re-entrant: a module holding it may call the counting methods below.
        self.lock = threading.RLock()
        self.requests: list[RecordedRequest] = []
        self.faults: deque[_Fault | _ScriptedFault] = deque()
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

    def pop_fault(self) -> _Fault | None:
        """The next queued status fault (FIFO), if the queue starts with one.

        A scripted fault (:meth:`Emulator.inject_fault`) at the head of the queue is left for
        a request that goes through :func:`._app.admit`, which takes both kinds.
        """
        with self.lock:
            if self.faults and isinstance(self.faults[0], _Fault):
                self._faults_used += 1
                fault = self.faults.popleft()
                assert isinstance(fault, _Fault)
                return fault
            return None

    def pop_any_fault(self) -> _Fault | _ScriptedFault | None:
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


class Emulator:
    """The DashScope embedding emulator, served by uvicorn in a daemon thread.

    On the two text endpoints a request goes through: queued fault -> ``reset_rate`` ->
    authentication -> ``max_in_flight`` -> ``rpm`` -> ``latency`` -> ``error_rate`` -> body
    validation -> content inspection (``reject_marker``) -> ``tpm`` -> vectors; the answer body
    is then trickled when ``slow_body_ms`` is set.

    Args:
        api_key: ``None`` accepts any non-empty ``Bearer`` key; a string accepts only that key.
        latency: Seconds added to every embedding request (while it counts as in flight).
        max_in_flight: When more embedding requests than this are being served at once (from
            authentication until the response has been sent), the extra ones get HTTP 429
            ``Throttling.RateQuota`` immediately. ``None``: no limit.
        error_rate: Probability in [0, 1] of answering HTTP 500 ``InternalError``, drawn from
            ``random.Random(seed)`` (deterministic for a given sequence of requests).
        seed: Seed of the error and reset draws and of the response order.
        host: Interface to bind.
        port: Port to bind; 0 picks a free one.
        shuffle: Return embeddings in a deterministic non-input order (the default, since the
            service guarantees no order); ``False`` returns them in input order.
        slow_body_ms: When > 0, every response body (any endpoint) is trickled: the headers
            are sent at once, the body in 20 pieces spread over this many milliseconds.
        reset_rate: Probability in [0, 1] that an embedding request's connection is dropped
            without any answer (before authentication), drawn from a generator seeded with
            ``seed`` (independent of the ``error_rate`` draws).
        reject_marker: A text containing this substring (case-sensitive) makes the whole
            request fail content inspection: HTTP 400 ``DataInspectionFailed`` (compatible
            ``data_inspection_failed``). ``None`` or ``""`` disables the check.
        rpm: Requests per rolling ``quota_window_s`` window (the whole emulator, both text
            endpoints); beyond it HTTP 429 ``Throttling.RateQuota`` (compatible
            ``limit_requests``). Requests rejected before this step do not count. ``None``:
            no quota.
        tpm: Tokens (``usage``) per rolling window; a request that would exceed it gets HTTP
            429 ``Throttling.AllocationQuota`` (compatible ``insufficient_quota``) and
            consumes nothing. Only successful requests take tokens. ``None``: no quota.
        quota_window_s: Length of the rolling quota window in seconds (60, as the service's
            per-minute quotas; shorter keeps tests fast).
        quota_retry_after: Add ``retry-after`` (whole seconds, rounded up) and
            ``retry-after-ms`` headers to quota 429s, telling when the window frees. The
            service documents no such header ([ref 6]), so the default sends none.

    Raises:
        ValueError: If a setting is out of range.
    """

    def __init__(
        self,
        api_key: str | None = None,
        latency: float = 0.0,
        max_in_flight: int | None = None,
        error_rate: float = 0.0,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        shuffle: bool = True,
        slow_body_ms: float = 0.0,
        reset_rate: float = 0.0,
        reject_marker: str | None = "__REJECT__",
        rpm: int | None = None,
        tpm: int | None = None,
        quota_window_s: float = 60.0,
        quota_retry_after: bool = False,
    ) -> None:
        if api_key is not None and not api_key.strip():
            raise ValueError("api_key must be None or a non-empty string")
        if latency < 0:
            raise ValueError("latency must be >= 0")
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError("max_in_flight must be None or >= 1")
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError("error_rate must be in [0, 1]")
        if not 0 <= port <= 65535:
            raise ValueError("port must be in [0, 65535]")
        if not (slow_body_ms >= 0 and math.isfinite(slow_body_ms)):
            raise ValueError("slow_body_ms must be a finite number >= 0")
        if not 0.0 <= reset_rate <= 1.0:
            raise ValueError("reset_rate must be in [0, 1]")
        if rpm is not None and rpm < 1:
            raise ValueError("rpm must be None or >= 1")
        if tpm is not None and tpm < 1:
            raise ValueError("tpm must be None or >= 1")
        if not (quota_window_s > 0 and math.isfinite(quota_window_s)):
            raise ValueError("quota_window_s must be a finite number > 0")
        self._state = _ServerState(
            api_key=api_key,
            latency=latency,
            max_in_flight=max_in_flight,
            error_rate=error_rate,
            seed=seed,
            shuffle=shuffle,
            slow_body_ms=slow_body_ms,
            reset_rate=reset_rate,
            reject_marker=reject_marker or None,
            rpm=rpm,
            tpm=tpm,
            quota_window_s=quota_window_s,
            quota_retry_after=quota_retry_after,
        )
        self._host = host
        self._requested_port = port
        self._port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._failure: BaseException | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Bind the socket, start the server thread and wait until it accepts connections.

        Returns:
            ``self``.

        Raises:
            RuntimeError: If already running, or the server does not start within 10 s.
            OSError: If the address cannot be bound.
        """
        if self._thread is not None:
            raise RuntimeError("the emulator is already running")
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on such sockets; without it every
        # response waits ~40 ms for delayed ACKs.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            if os.name != "nt":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._requested_port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        config = uvicorn.Config(
            create_app(self._state),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
        )
        server = uvicorn.Server(config)
        self._state.abort_connection = lambda client: _abort_connection(server, client)
        self._failure = None
        thread = threading.Thread(
            target=self._serve, args=(server, sock), name="dashscope-emulator", daemon=True
        )
        self._server, self._socket, self._thread = server, sock, thread
        self._port = int(sock.getsockname()[1])
        thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                reason = repr(self._failure) if self._failure else "no error reported"
                self.stop()
                raise RuntimeError(
                    f"the emulator did not start on {self._host}:{self._port} "
                    f"within {_START_TIMEOUT:.0f} s ({reason})"
                )
            time.sleep(0.005)
        return self

    def _serve(self, server: uvicorn.Server, sock: socket.socket) -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as exc:  # reported by start(); the thread must not die loudly
            self._failure = exc

    def stop(self) -> None:
        """Shut the server down and join its thread; a no-op when not running."""
        server, thread, sock = self._server, self._thread, self._socket
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(_STOP_TIMEOUT)
            if thread.is_alive() and server is not None:
                server.force_exit = True
                thread.join(_STOP_TIMEOUT)
        if sock is not None:
            sock.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- addresses -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (known once started)."""
        if self._port is None:
            raise RuntimeError("the emulator has not been started")
        return self._port

    @property
    def url(self) -> str:
        """Root URL, e.g. ``http://127.0.0.1:PORT``."""
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(self._host, self._host)
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """Native API base, ``http://127.0.0.1:PORT/api/v1``."""
        return f"{self.url}/api/v1"

    @property
    def compatible_base_url(self) -> str:
        """OpenAI-compatible base, ``http://127.0.0.1:PORT/compatible-mode/v1``."""
        return f"{self.url}/compatible-mode/v1"

    # --- request log and faults ------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot (copy) of every request received, in arrival order."""
        with self._state.lock:
            return list(self._state.requests)

    def clear_requests(self) -> None:
        """Empty the request log and zero the counters of :attr:`stats` (see :meth:`reset_stats`).

        Quota windows (``rpm`` / ``tpm``) and queued faults are left as they are.
        """
        with self._state.lock:
            self._state.requests.clear()
        self._state.reset_stats()

    @property
    def stats(self) -> EmulatorStats:
        """A snapshot of the counters: requests, answers by status, in flight, billing, ...

        See :class:`EmulatorStats`. Counted since start, :meth:`reset_stats` or
        :meth:`clear_requests`.
        """
        return self._state.stats()

    def reset_stats(self) -> None:
        """Zero the counters of :attr:`stats`; the in-flight peak restarts from the current load."""
        self._state.reset_stats()

    def reset_quotas(self) -> None:
        """Empty the ``rpm`` / ``tpm`` windows, as if no request had been made for a while."""
        self._state.clear_quotas()

    def inject(
        self,
        status: int,
        code: str | None,
        message: str,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        """Queue a fault for the next ``times`` embedding requests (either protocol).

        Faults are consumed first-in first-out, before authentication and validation. The
        answer is ``status`` with an error body in the protocol's own shape (native
        ``{"request_id", "code", "message"}``; compatible ``{"error": {"message", "type",
        "param", "code"}, "id", "request_id"}``, with ``type`` = ``code``), plus ``headers``.

        Args:
            status: HTTP status to answer.
            code: Error code; ``None`` leaves it out of the native body (null in compatible).
            message: Error message.
            times: How many consecutive embedding requests get this answer.
            headers: Extra response headers, e.g. ``{"retry-after": "0"}``.
            body: A JSON body replacing the whole error body, e.g. an HTTP 200 body with a
                non-empty top-level ``code``.

        Raises:
            ValueError: If ``times`` < 1 or ``status`` is not an HTTP status.
        """
        if times < 1:
            raise ValueError("times must be >= 1")
        if not 100 <= status <= 599:
            raise ValueError("status must be an HTTP status code")
        fault = _Fault(status, code, message, dict(headers or {}), body)
        with self._state.lock:
            self._state.faults.extend([fault] * times)

    def inject_fault(
        self,
        kind: FaultKind,
        *,
        times: int = 1,
        status: int | None = None,
        ms: float | None = None,
        pieces: int | None = None,
        at: float | None = None,
        full_length: bool | None = None,
        value: Literal["nan", "inf", "-inf"] | None = None,
    ) -> None:
        """Queue a scripted fault for the next ``times`` text-embedding requests.

        Shares the FIFO queue of :meth:`inject` (so the two interleave in call order) and, like
        it, is consumed by the next requests whatever they carry. Kinds:

        * ``"reset"``: the connection is dropped (TCP reset) without any HTTP response, before
          authentication; the client sees a transport error (httpx: ``ReadError`` or
          ``RemoteProtocolError``). Recorded with status 0.
        * ``"html"``: an HTML error page (``text/html``) as a gateway sends, before
          authentication; option ``status`` (default 502; 200 is allowed).
        * ``"truncated"``: the answer (normally the HTTP 200 success, ``application/json``)
          is cut in the middle of its JSON: option ``at`` (fraction kept, default 0.5). By
          default the HTTP message is complete (``content-length`` of the cut body), so the
          client gets invalid JSON; with ``full_length=True`` the headers announce the whole
          body and the connection is reset after the part (a transport error mid-body).
        * ``"slow_body"``: the headers come at once, then the body trickles in ``pieces``
          parts (default 20), one after each pause of ``ms / pieces`` (``ms`` default 2000),
          so a client with a short total or read deadline times out mid-body.
        * ``"duplicate_index"``: in an otherwise valid success, the last embedding (in
          response order) takes the index of the first (same count; one index repeated, one
          missing); with a single text the item is repeated.
        * ``"missing_index"``: the last embedding (in response order) is dropped.
        * ``"wrong_dimension"``: one vector is one value short.
        * ``"nan"``: one vector holds ``NaN`` (option ``value``: ``"nan"``, ``"inf"``,
          ``"-inf"``), written as the non-standard JSON literal ``NaN`` / ``Infinity`` (in a
          base64 vector: the float32 value). With ``output_type="sparse"`` a sparse weight.

        The four payload kinds and ``truncated`` / ``slow_body`` act on the answer the
        request would get otherwise (authentication, throttling and validation still run;
        payload kinds only change a 200 success). Requests of the other endpoint families
        take only :meth:`inject` faults unless they use the shared gateway (``_app.admit``).

        Args:
            kind: One of :data:`FaultKind`.
            times: How many consecutive requests get this fault.
            status: ``html`` only: the HTTP status.
            ms: ``slow_body`` only: milliseconds over which the body trickles (> 0).
            pieces: ``slow_body`` only: number of body parts (>= 1).
            at: ``truncated`` only: fraction of the body sent, in (0, 1).
            full_length: ``truncated`` only: announce the full length, then reset.
            value: ``nan`` only: which non-finite number.

        Raises:
            ValueError: On an unknown kind, an option that does not apply to ``kind``, an
                option out of range, or ``times`` < 1.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        if times < 1:
            raise ValueError("times must be >= 1")
        given = {
            name
            for name, option in (
                ("status", status),
                ("ms", ms),
                ("pieces", pieces),
                ("at", at),
                ("full_length", full_length),
                ("value", value),
            )
            if option is not None
        }
        allowed = _FAULT_OPTIONS[kind]
        if given - allowed:
            names = ", ".join(sorted(given - allowed))
            raise ValueError(f"option(s) {names} do not apply to fault {kind!r}")
        fault = _ScriptedFault(kind)
        if status is not None:
            if not 100 <= status <= 599:
                raise ValueError("status must be an HTTP status code")
            fault = _replace(fault, status=status)
        if ms is not None:
            if not (ms > 0 and math.isfinite(ms)):
                raise ValueError("ms must be a finite number > 0")
            fault = _replace(fault, ms=float(ms))
        if pieces is not None:
            if pieces < 1:
                raise ValueError("pieces must be >= 1")
            fault = _replace(fault, pieces=pieces)
        if at is not None:
            if not 0.0 < at < 1.0:
                raise ValueError("at must be in (0, 1)")
            fault = _replace(fault, at=at)
        if full_length is not None:
            fault = _replace(fault, full_length=full_length)
        if value is not None:
            if value not in _NON_FINITE:
                raise ValueError(f"value must be one of {sorted(_NON_FINITE)}")
            fault = _replace(fault, value=_NON_FINITE[value])
        with self._state.lock:
            self._state.faults.extend([fault] * times)

    def clear_faults(self) -> None:
        """Drop every queued fault (both :meth:`inject` and :meth:`inject_fault` ones)."""
        with self._state.lock:
            self._state.faults.clear()

    @property
    def batch(self) -> Any:
        """The ``_batch.BatchController`` of the files, Batch API and task endpoints."""
        from dashscope_embeddings.emulator import _batch

        return _batch.controller(self._state)
