"""The emulator's server: the :class:`Emulator` settings, uvicorn in a daemon thread, controls.

:class:`Emulator` checks its settings, binds the socket, runs the ASGI application of
:mod:`._router` on its own event loop, and gives the caller's threads the request log, the
counters and the fault queue of :class:`._state.ServerState`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import os
import socket
import struct
import threading
import time
from dataclasses import replace
from types import TracebackType
from typing import Any, Literal

import uvicorn

from dashscope_embeddings.emulator import _offline
from dashscope_embeddings.emulator._faults import (
    FAULT_KINDS,
    FAULT_OPTIONS,
    NON_FINITE,
    FaultKind,
    ScriptedFault,
    StatusFault,
)
from dashscope_embeddings.emulator._router import create_app
from dashscope_embeddings.emulator._state import EmulatorStats, RecordedRequest, ServerState

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_REQUEST_LOG_SIZE",
    "Emulator",
    "is_loopback",
    "root_url",
]

DEFAULT_REQUEST_LOG_SIZE = 5000
"""Requests kept in :attr:`Emulator.requests` by default."""
DEFAULT_MAX_BODY_BYTES = 512 * 1024 * 1024
"""The largest request body read by default (the Batch API's files reach 500 MB)."""

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0
_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a TCP RST


def root_url(host: str, port: int) -> str:
    """The URL to reach a server bound to ``host``: a wildcard host is reached on loopback."""
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    if host.strip().lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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


class Emulator:
    """The DashScope embedding emulator, served by uvicorn in a daemon thread.

    On the two text endpoints a request goes through: queued fault -> ``reset_rate`` ->
    authentication -> ``max_in_flight`` -> ``rpm`` -> ``latency`` -> ``error_rate`` -> body
    validation -> content inspection (``reject_marker``) -> ``tpm`` -> vectors; the answer body
    is then trickled when ``slow_body_ms`` is set. Before all of it, on every path, a body over
    ``max_body_bytes`` gets HTTP 413 ``RequestTooLarge`` without being read.

    Args:
        api_key: ``None`` accepts any non-empty ``Bearer`` key; a string accepts only that key.
            Required when ``host`` is not a loopback address (anyone who can reach the port
            could use it otherwise).
        latency: Seconds added to every embedding request (while it counts as in flight).
        max_in_flight: When more embedding requests than this are being served at once (from
            authentication until the response has been sent), the extra ones get HTTP 429
            ``Throttling.RateQuota`` immediately. ``None``: no limit.
        error_rate: Probability in [0, 1] of answering HTTP 500 ``InternalError``, drawn from
            ``random.Random(seed)`` (deterministic for a given sequence of requests).
        seed: Seed of the error and reset draws and of the response order.
        host: Interface to bind: a loopback address (the default) or, with ``api_key``, any
            other; ``"0.0.0.0"`` / ``"::"`` listen on every interface.
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
        request_log_size: How many requests :attr:`requests` keeps: the newest ones (a ring),
            so a long-running emulator holds bounded memory. :attr:`stats` counts them all.
        max_body_bytes: The largest request body read, in bytes (default 512 MiB: the Batch
            API's files may reach 500 MB, [ref 7b]; the service documents no bound for the
            other endpoints, [ref 10]). A larger body gets HTTP 413 ``RequestTooLarge``
            (compatible ``request_too_large``) before it is read: a ``content-length`` over
            the bound is refused at once, a chunked body as soon as it passes the bound.

    Raises:
        ValueError: If a setting is out of range, or ``host`` is not a loopback address and
            ``api_key`` is ``None``.
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
        request_log_size: int = DEFAULT_REQUEST_LOG_SIZE,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
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
        if request_log_size < 1:
            raise ValueError("request_log_size must be >= 1")
        if max_body_bytes < 1:
            raise ValueError("max_body_bytes must be >= 1")
        if api_key is None and not is_loopback(host):
            raise ValueError(
                f"host {host!r} is not a loopback address: pass an api_key, so that only "
                "callers who know it can use the emulator"
            )
        self._state = ServerState(
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
            request_log_size=request_log_size,
            max_body_bytes=max_body_bytes,
        )
        self._request_log_size = request_log_size
        self._host = host
        self._requested_port = port
        self._port: int | None = None
        self._address: tuple[str, int] | None = None
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
        bound = sock.getsockname()
        self._port = int(bound[1])
        self._address = (str(bound[0]), self._port)
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
    def address(self) -> tuple[str, int]:
        """The address the server really listens on: ``(host, port)`` of the bound socket.

        ``("0.0.0.0", PORT)`` when it listens on every IPv4 interface; see :attr:`url` for
        an address to connect to.
        """
        if self._address is None:
            raise RuntimeError("the emulator has not been started")
        return self._address

    @property
    def port(self) -> int:
        """The bound port (known once started)."""
        if self._port is None:
            raise RuntimeError("the emulator has not been started")
        return self._port

    @property
    def url(self) -> str:
        """Root URL to connect to, e.g. ``http://127.0.0.1:PORT`` (loopback for a wildcard host)."""
        return root_url(self._host, self.port)

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
    def request_log_size(self) -> int:
        """How many requests :attr:`requests` keeps (the newest ones)."""
        return self._request_log_size

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot (copy) of the newest :attr:`request_log_size` requests, oldest first."""
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
        fault = StatusFault(status, code, message, dict(headers or {}), body)
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
        take only :meth:`inject` faults unless they use the shared gateway (``_gateway.admit``).

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
        allowed = FAULT_OPTIONS[kind]
        if given - allowed:
            names = ", ".join(sorted(given - allowed))
            raise ValueError(f"option(s) {names} do not apply to fault {kind!r}")
        fault = ScriptedFault(kind)
        if status is not None:
            if not 100 <= status <= 599:
                raise ValueError("status must be an HTTP status code")
            fault = replace(fault, status=status)
        if ms is not None:
            if not (ms > 0 and math.isfinite(ms)):
                raise ValueError("ms must be a finite number > 0")
            fault = replace(fault, ms=float(ms))
        if pieces is not None:
            if pieces < 1:
                raise ValueError("pieces must be >= 1")
            fault = replace(fault, pieces=pieces)
        if at is not None:
            if not 0.0 < at < 1.0:
                raise ValueError("at must be in (0, 1)")
            fault = replace(fault, at=at)
        if full_length is not None:
            fault = replace(fault, full_length=full_length)
        if value is not None:
            if value not in NON_FINITE:
                raise ValueError(f"value must be one of {sorted(NON_FINITE)}")
            fault = replace(fault, value=NON_FINITE[value])
        with self._state.lock:
            self._state.faults.extend([fault] * times)

    def clear_faults(self) -> None:
        """Drop every queued fault (both :meth:`inject` and :meth:`inject_fault` ones)."""
        with self._state.lock:
            self._state.faults.clear()

    @property
    def batch(self) -> Any:
        """The ``BatchController`` of the files, Batch API and task endpoints (:mod:`._offline`)."""
        return _offline.controller(self._state)
