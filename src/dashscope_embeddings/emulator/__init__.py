"""A local emulator of the DashScope (Model Studio) text-embedding HTTP API.

It serves the native endpoint (``POST /api/v1/services/embeddings/text-embedding/text-embedding``)
and the OpenAI-compatible one (``POST /compatible-mode/v1/embeddings``) on 127.0.0.1, validates
requests like the service (status codes and JSON error bodies of both protocols), and answers
with deterministic lexical vectors: texts sharing words are close, which is enough for
development and CI but says nothing about model quality. Model limits come from
:mod:`dashscope_embeddings._registry`.

Embeddings come back in a deterministic order that is *not* the input order (for two or more
texts): the service guarantees no order, so clients must sort by ``text_index`` / ``index``.

>>> from dashscope_embeddings.emulator import Emulator
>>> with Emulator(api_key="sk-test") as emu:  # doctest: +SKIP
...     emu.base_url                # 'http://127.0.0.1:PORT/api/v1'
...     emu.inject(429, "Throttling.RateQuota", "slow down", headers={"retry-after": "0"})

Needs the ``emulator`` extra (Starlette and uvicorn); the core package never imports it.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import Any

try:
    import uvicorn

    from dashscope_embeddings.emulator._app import create_app
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    if exc.name not in ("starlette", "uvicorn"):
        raise
    raise ModuleNotFoundError(
        "the DashScope emulator needs Starlette and uvicorn: "
        "pip install 'dashscope-embeddings[emulator]'",
        name=exc.name,
    ) from exc

__all__ = ["Emulator", "RecordedRequest"]

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0
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
        status: HTTP status the emulator answered.
    """

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    status: int


@dataclass(frozen=True)
class _Fault:
    status: int
    code: str | None
    message: str
    headers: dict[str, str]
    body: dict[str, Any] | None


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
    ) -> None:
        self.api_key = api_key
        self.latency = latency
        self.max_in_flight = max_in_flight
        self.error_rate = error_rate
        self.seed = seed
        self.shuffle = shuffle
        self.in_flight = 0  # only touched on the server's event loop
        self._rng = random.Random(seed)
        self.lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self.faults: deque[_Fault] = deque()
        # Per-family state of the other endpoint modules (multimodal, batches, tasks), keyed
        # by module name; each module creates its own entry on first use, under ``lock``.
        self.extensions: dict[str, Any] = {}

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

    def pop_fault(self) -> _Fault | None:
        """The next queued fault, if any (FIFO)."""
        with self.lock:
            return self.faults.popleft() if self.faults else None

    def draw_error(self) -> bool:
        """True when this request should fail with a random ``InternalError``."""
        return self.error_rate > 0.0 and self._rng.random() < self.error_rate


class Emulator:
    """The DashScope embedding emulator, served by uvicorn in a daemon thread.

    Args:
        api_key: ``None`` accepts any non-empty ``Bearer`` key; a string accepts only that key.
        latency: Seconds added to every embedding request (while it counts as in flight).
        max_in_flight: When more embedding requests than this are being served at once, the
            extra ones get HTTP 429 ``Throttling.RateQuota`` immediately. ``None``: no limit.
        error_rate: Probability in [0, 1] of answering HTTP 500 ``InternalError``, drawn from
            ``random.Random(seed)`` (deterministic for a given sequence of requests).
        seed: Seed of the error draws and of the response order.
        host: Interface to bind.
        port: Port to bind; 0 picks a free one.
        shuffle: Return embeddings in a deterministic non-input order (the default, since the
            service guarantees no order); ``False`` returns them in input order.

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
        self._state = _ServerState(
            api_key=api_key,
            latency=latency,
            max_in_flight=max_in_flight,
            error_rate=error_rate,
            seed=seed,
            shuffle=shuffle,
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
        """Empty the request log."""
        with self._state.lock:
            self._state.requests.clear()

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

    def clear_faults(self) -> None:
        """Drop every queued fault."""
        with self._state.lock:
            self._state.faults.clear()
