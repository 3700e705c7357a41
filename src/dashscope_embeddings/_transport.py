"""The one request path every endpoint uses, once per I/O flavour.

An endpoint module (``resources/``) describes a request as an :class:`APIRequest` — method,
URL, a JSON body or multipart fields, extra headers — and a parser that turns the service's
:class:`Answer` into a result. :class:`SyncTransport` and :class:`AsyncTransport` send it:

* headers: the key (``Authorization: Bearer``), workspace, user agent, per-call extras;
* a deadline per attempt that covers reading the whole answer (a server that trickles its body
  cannot hold a call past ``timeout``), counted for an upload from when its body is sent; an
  answer that is whole when the deadline is seen passing is kept (the service billed it); a
  bound on the answer's size;
* error classification: HTTP >= 400, or a 200 whose body carries a top-level ``code``, becomes
  the typed :class:`~dashscope_embeddings.APIStatusError` subclass; a body that should be JSON
  but is not (cut, an HTML page from a gateway) becomes a retryable
  :class:`~dashscope_embeddings.ResponseValidationError` naming the status, content type and a
  snippet;
* retries with backoff and jitter, honouring ``Retry-After`` (policy in ``_retry.py``; a
  WARNING on a call's first transport failure; a refused loopback port fails fast), each
  attempt holding a permit of the client's limiter only while it is on the wire, never while it
  sleeps; a sync call's siblings stop at once through a per-call cancel event;
* a usage hook that records every answer the service billed: a successful one once per
  request, and a 200 answer its parser rejected (a NaN, a missing index) whose ``usage`` is
  readable, before it is sent again (the service bills both);
* the key never appears in an error, its cause chain or a log line: transport errors are
  re-raised as our own types without chaining the httpx exception (whose request holds the
  headers).

Everything without I/O is in :class:`BaseTransport`; the two subclasses differ only in their
``send`` loops, which mirror each other line for line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import platform
import threading
import time
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httpx
from pydantic import SecretStr

from dashscope_embeddings._config import Endpoints
from dashscope_embeddings._constants import (
    DEFAULT_CONNECT_TIMEOUT_S,
    INITIAL_RETRY_DELAY_S,
    INITIAL_THROTTLE_DELAY_S,
    MAX_RESPONSE_BYTES,
)
from dashscope_embeddings._errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    RateLimitError,
    ResponseValidationError,
    make_status_error,
    parse_error,
    snippet,
)
from dashscope_embeddings._limiter import AsyncLimiter, RateBudget, SyncLimiter
from dashscope_embeddings._options import (
    NOT_GIVEN,
    ClientSettings,
    NotGiven,
    RequestOptions,
    TimeoutTypes,
)
from dashscope_embeddings._retry import (
    LOOPBACK_REFUSED_RETRIES,
    MAX_ATTEMPTS_PER_REQUEST,
    RetryBudget,
    is_loopback,
    maybe_acted,
    parse_retry_after,
    retry_delay,
    should_retry,
)
from dashscope_embeddings._types import Usage
from dashscope_embeddings._usage import UsageTracker
from dashscope_embeddings._version import __version__

__all__ = [
    "APIRequest",
    "Answer",
    "AsyncTransport",
    "BaseTransport",
    "CallCancelled",
    "SyncTransport",
    "parse_error",
]

logger = logging.getLogger("dashscope_embeddings.transport")

T = typing.TypeVar("T")

USER_AGENT = (
    f"dashscope-embeddings/{__version__} "
    f"python/{platform.python_version()} httpx/{httpx.__version__}"
)


@dataclass(frozen=True)
class APIRequest:
    """One HTTP request an endpoint module wants sent.

    Attributes:
        method: ``GET``, ``POST`` or ``DELETE``.
        url: Absolute URL.
        content: A JSON body, already serialised (``Content-Type: application/json``).
        files: Multipart file fields, ``name -> (filename, bytes, content type)``.
        data: Multipart form fields sent with ``files``.
        headers: Headers of this request only (e.g. ``X-DashScope-Async``).
        expect_json: Whether a successful answer must be JSON (``False`` for file downloads).
        max_response_bytes: Largest answer accepted.
        tokens: Estimated input tokens, for a client-side ``tpm`` budget.
        idempotent: Whether sending it twice is harmless. A request that is not (creating a
            batch) is retried only when the service surely did not act on it: a 429, or a
            connection that failed before anything was sent.
        label: What the request is, for logs (never the input text).
    """

    method: str
    url: str
    content: bytes | None = None
    files: Mapping[str, tuple[str, bytes, str]] | None = None
    data: Mapping[str, str] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    expect_json: bool = True
    max_response_bytes: int = MAX_RESPONSE_BYTES
    tokens: int = 0
    idempotent: bool = True
    label: str = ""


@dataclass(frozen=True)
class Answer:
    """A successful answer: status, headers, raw body and, for JSON, the decoded payload."""

    status_code: int
    headers: httpx.Headers
    content: bytes
    payload: object
    request_id: str | None


def _wait(cancel: threading.Event | None, delay: float) -> bool:
    """Sleep ``delay`` seconds; ``True`` if the call was cancelled meanwhile.

    A backoff and a wait for the ``rpm`` / ``tpm`` budget alike: every wait of a sync send
    goes through this name (and ``_async_sleep``), so tests can record them.
    """
    if cancel is None:
        time.sleep(delay)
        return False
    return cancel.wait(delay)


_async_sleep = asyncio.sleep
_monotonic = time.monotonic  # the deadline's clock (tests move their own)


class _SentMark(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A request body that notes when its last byte was handed to the connection.

    An upload's attempt deadline starts there, not when sending starts: a large file on a slow
    uplink takes as long as it takes (each write is still bounded by httpx's ``write``
    timeout), and only the wait for the answer is bounded by the deadline. The service has
    stored what it received by then, so throwing its answer away would leave an orphan file.
    """

    def __init__(self, stream: httpx.SyncByteStream | httpx.AsyncByteStream) -> None:
        self._stream = stream
        self.at: float | None = None

    def __iter__(self) -> typing.Iterator[bytes]:
        yield from typing.cast(httpx.SyncByteStream, self._stream)
        self.at = _monotonic()

    async def __aiter__(self) -> typing.AsyncIterator[bytes]:
        async for chunk in typing.cast(httpx.AsyncByteStream, self._stream):
            yield chunk
        self.at = _monotonic()


def _mark_sent(request: APIRequest, built: httpx.Request) -> _SentMark | None:
    """Wrap an upload's body in a :class:`_SentMark`; ``None`` for a JSON body.

    A JSON body is small and written at once, so its deadline starts when sending starts and
    the embedding path does no extra work per request.
    """
    if not request.files:
        return None
    mark = _SentMark(built.stream)
    built.stream = mark
    return mark


class CallCancelled(Exception):
    """Raised inside a request whose call has already failed or been interrupted."""


_UNSET: typing.Any = object()
_fast_loads: typing.Any = _UNSET  # orjson.loads, None without it; looked up at first decode


def _find_fast_loads() -> Callable[[bytes], object] | None:
    """``orjson.loads`` when the ``fast`` extra is installed, else ``None`` (imported lazily)."""
    global _fast_loads
    try:
        import orjson
    except ImportError:
        _fast_loads = None
    else:
        _fast_loads = orjson.loads
    return typing.cast("Callable[[bytes], object] | None", _fast_loads)


def decode_json(content: bytes) -> tuple[bool, object]:
    """``(True, value)`` for a JSON body, ``(False, None)`` otherwise: every answer's one decoder.

    With orjson installed it decodes, else the standard library does, to the same values: both
    round every number to the nearest double, keep ``-0.0`` and the last of duplicate keys.
    Whatever orjson refuses is decoded again by the standard library, which keeps today's
    answer for every body it alone reads: ``NaN`` / ``Infinity`` literals (then refused by the
    parsers as not finite), numbers that overflow to infinity, lone surrogates, a byte order
    mark, UTF-16 or UTF-32. One difference is left: an integer literal beyond 64 bits is a
    float under orjson; no field of an answer holds one (indices and token counts are small).
    """
    fast = _fast_loads if _fast_loads is not _UNSET else _find_fast_loads()
    if fast is not None:
        try:
            return True, fast(content)
        except ValueError:  # orjson.JSONDecodeError: read it again below
            pass
    try:
        return True, typing.cast(object, json.loads(content))
    except (ValueError, UnicodeDecodeError):
        return False, None


def note_billed(error: APIError, billed: object) -> None:
    """Note on the error of a rejected 200 answer what the service billed for it.

    ``billed`` is shaped like the parser's result (its vectors absent), so the ``usage`` hook
    that prices a result prices it too; :meth:`BaseTransport.record_rejected` adds it to the
    running total before the request is sent again.
    """
    error._billed = billed  # type: ignore[attr-defined]


def body_error_code(payload: object) -> str | None:
    """The non-empty top-level ``code`` of a body, if any (an error even under HTTP 200)."""
    if isinstance(payload, dict):
        code = payload.get("code")
        if isinstance(code, str) and code:
            return code
    return None


class _BearerAuth(httpx.Auth):
    """Adds ``Authorization: Bearer`` as the request leaves, so no frame of ours holds it."""

    def __init__(self, key: SecretStr) -> None:
        self._key = key

    def __repr__(self) -> str:
        return "_BearerAuth(<redacted>)"

    def auth_flow(
        self, request: httpx.Request
    ) -> typing.Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = "Bearer " + self._key.get_secret_value()
        yield request


class BaseTransport:
    """Request building, answer classification and retry decisions; no I/O."""

    def __init__(
        self,
        *,
        api_key: SecretStr,
        endpoints: Endpoints,
        settings: ClientSettings,
        usage: UsageTracker,
        use_client_timeout: bool,
        rates: tuple[RateBudget | None, RateBudget | None] = (None, None),
    ) -> None:
        self.rates = rates
        self._rate_lock = threading.Lock()
        self.auth = _BearerAuth(api_key)
        self.endpoints = endpoints
        self.settings = settings
        self.usage = usage
        # An injected client keeps its own timeout unless the user also gave one.
        self._use_client_timeout = use_client_timeout

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.endpoints.native_base!r})"

    def _given_timeout(self, options: RequestOptions) -> TimeoutTypes | NotGiven:
        """This call's timeout, else the client's; ``NOT_GIVEN``: the injected client's own."""
        if not isinstance(options.timeout, NotGiven):
            return options.timeout
        return NOT_GIVEN if self._use_client_timeout else self.settings.timeout

    def timeout(self, options: RequestOptions) -> httpx.Timeout | None:
        """The httpx timeout of one attempt; ``None`` means "the injected client's own"."""
        value = self._given_timeout(options)
        if isinstance(value, NotGiven):
            return None
        if isinstance(value, httpx.Timeout):
            return value
        if value is None:
            return httpx.Timeout(None)
        return httpx.Timeout(float(value), connect=min(DEFAULT_CONNECT_TIMEOUT_S, float(value)))

    def deadline(self, options: RequestOptions) -> float | None:
        """Seconds one attempt may take in all, reading the answer included."""
        value = self._given_timeout(options)
        if isinstance(value, NotGiven) or value is None:
            return None
        if isinstance(value, httpx.Timeout):
            parts = [value.read, value.connect]
            return None if any(p is None for p in parts) else sum(p or 0.0 for p in parts)
        return float(value)

    def max_retries(self, options: RequestOptions) -> int:
        """The call's retry budget to start with."""
        if isinstance(options.max_retries, NotGiven):
            return self.settings.max_retries
        return options.max_retries

    def build(
        self, http: httpx.Client | httpx.AsyncClient, request: APIRequest, options: RequestOptions
    ) -> httpx.Request:
        """The httpx request of one attempt (built anew each time, never mutated).

        The key is not in it: :attr:`auth` adds it as the request is sent.
        """
        headers = {
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        if request.content is not None:
            headers["Content-Type"] = "application/json"
        if self.endpoints.workspace:
            headers["X-DashScope-WorkSpace"] = self.endpoints.workspace
        headers.update(request.headers)
        if options.extra_headers:
            headers.update(options.extra_headers)
        timeout = self.timeout(options)
        return http.build_request(
            request.method,
            request.url,
            content=request.content,
            files=dict(request.files) if request.files else None,
            data=dict(request.data) if request.data else None,
            headers=headers,
            timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
        )

    def answer(
        self, request: APIRequest, status: int, headers: httpx.Headers, content: bytes
    ) -> Answer:
        """Classify a received answer: return it when successful, raise its typed error."""
        header_id = headers.get("x-request-id")
        if 300 <= status < 400:
            # Never followed: the key would go wherever the redirect points.
            raise make_status_error(
                status,
                code=None,
                message=f"redirect to {headers.get('location', '?')!s} not followed (the key "
                "is only sent to the configured host); set base_url to the final address",
                request_id=header_id,
                headers=headers,
            )
        is_json, payload = decode_json(content) if content else (False, None)
        if status >= 400 or body_error_code(payload) is not None:
            error = parse_error(
                status,
                payload,
                text=content.decode("utf-8", "replace"),
                header_request_id=header_id,
                retry_after=parse_retry_after(headers),
                headers=headers,
            )
            if isinstance(error, AuthenticationError):
                error.message = error.message.rstrip(". ") + (
                    f". API keys are per region: this request went to "
                    f"{httpx.URL(self.endpoints.native_base).host} (region "
                    f"{self.endpoints.region}). Use the key of that region, or set region= "
                    "(or DASHSCOPE_REGION) / base_url= (or DASHSCOPE_BASE_URL) to the key's "
                    "region"
                )
                error.args = (error.message,)
            raise error
        if request.expect_json and not is_json:
            kind = headers.get("content-type") or "no content type"
            raise ResponseValidationError(
                f"HTTP {status} answer is not JSON ({kind}, {len(content)} bytes): "
                f"{snippet(content)!r}",
                request_id=header_id,
                status_code=status,
                content_type=headers.get("content-type"),
            )
        if isinstance(payload, dict):
            body_id = payload.get("request_id") or payload.get("id")
            header_id = str(body_id) if body_id else header_id
        return Answer(status, headers, content, payload, header_id)

    def retry_wait(
        self, attempt: int, error: APIError, budget: RetryBudget, request: APIRequest
    ) -> float | None:
        """Seconds to wait before sending again, or ``None`` to raise ``error`` now.

        A retry is spent from ``budget`` only when the error is worth retrying.
        """
        if attempt + 1 >= MAX_ATTEMPTS_PER_REQUEST:
            return None
        if not request.idempotent and maybe_acted(error):
            return None
        if isinstance(error, APIStatusError):
            if not should_retry(error, error.headers):
                return None
            initial = (
                INITIAL_THROTTLE_DELAY_S
                if isinstance(error, RateLimitError)
                else INITIAL_RETRY_DELAY_S
            )
            delay = retry_delay(attempt, error.retry_after, initial=initial)
        elif isinstance(error, (APIConnectionError, ResponseValidationError)):
            if getattr(error, "_refused_here", False) and attempt >= LOOPBACK_REFUSED_RETRIES:
                return None
            delay = retry_delay(attempt)
        else:
            return None
        if delay is None or budget.disabled:
            return None
        # Throttling is back-pressure the limiter answers, not a failure: it does not draw on
        # the call's budget (the per-request cap of attempts still bounds it).
        if not isinstance(error, RateLimitError) and not budget.take():
            return None
        # The first transport failure of a call is worth a WARNING: an unreachable endpoint
        # should not look like a hang. ``error`` names the host and path, never a header.
        level = logging.INFO
        if isinstance(error, APIConnectionError) and not budget.warned:
            budget.warned = True
            level = logging.WARNING
        logger.log(
            level,
            "%s %s: retrying in %.2fs (retry %d) after %s",
            request.method,
            request.label or httpx.URL(request.url).path,
            delay,
            attempt + 1,
            error,
        )
        return delay

    def transport_error(self, exc: httpx.TransportError, request: APIRequest) -> APIError:
        """Our error for an httpx transport failure, carrying none of the request's headers."""
        where = httpx.URL(request.url).copy_with(query=None)
        error: APIError
        if isinstance(exc, httpx.TimeoutException):
            error = APITimeoutError(f"no answer in time from {where} ({type(exc).__name__})")
        else:
            error = APIConnectionError(f"could not reach {where}: {type(exc).__name__}: {exc}")
        # Nothing reached the service: safe to send again even when not idempotent.
        refused = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
        error._nothing_sent = refused  # type: ignore[attr-defined]
        error._refused_here = (  # type: ignore[attr-defined]
            isinstance(exc, httpx.ConnectError) and is_loopback(where.host)
        )
        return error

    def complete(
        self, request: APIRequest, response: httpx.Response, chunks: list[bytes]
    ) -> bool:
        """Whether an answer read past its deadline is whole already.

        A whole answer is kept: the service billed it, and sending again would bill it twice.
        Whole: every byte its ``Content-Length`` announced has arrived, or, without one, what
        arrived is a JSON document.
        """
        length = response.headers.get("content-length")
        if length is not None and length.isdigit():
            return response.num_bytes_downloaded >= int(length)
        return request.expect_json and decode_json(b"".join(chunks))[0]

    def too_slow(self, request: APIRequest, deadline: float) -> APITimeoutError:
        """The error of an attempt that ran past its deadline while reading the answer."""
        where = httpx.URL(request.url).copy_with(query=None)
        return APITimeoutError(f"answer from {where} not complete within {deadline:g}s")

    def too_large(self, request: APIRequest, size: int) -> ResponseValidationError:
        """The error of an answer over the size bound."""
        return ResponseValidationError(
            f"answer from {httpx.URL(request.url).path} is over "
            f"{request.max_response_bytes:,} bytes ({size:,} read); refused"
        )

    def rate_delay(self, request: APIRequest) -> float:
        """Seconds to wait for the ``rpm`` / ``tpm`` budgets, 0 once both are reserved."""
        rpm, tpm = self.rates
        if rpm is None and tpm is None:
            return 0.0
        with self._rate_lock:
            delay = max(
                rpm.wait_time(1) if rpm is not None else 0.0,
                tpm.wait_time(request.tokens) if tpm is not None else 0.0,
            )
            if delay:
                return delay
            if rpm is not None:
                rpm.spend(1)
            if tpm is not None:
                tpm.spend(request.tokens)
        return 0.0

    def record(self, usage: Usage | None) -> None:
        """The usage hook: add what one successful request billed to the running total."""
        if usage is not None:
            self.usage.add(usage)

    def record_rejected(
        self, error: APIError, usage: Callable[[typing.Any], Usage | None] | None
    ) -> None:
        """Add what a 200 answer rejected by its parser billed (see :func:`note_billed`).

        The service bills an answer whatever its body holds, and sending again is billed
        again: the running total counts both. The call's result counts only the answers it
        kept: its usage is assembled from the requests' results, where a rejected answer has
        no place, so ``client.usage`` is the figure of what was billed.
        """
        billed = getattr(error, "_billed", None)
        if billed is not None and usage is not None:
            self.record(usage(billed))

    def log_attempt(
        self, request: APIRequest, attempt: int, status: int | str, started: float
    ) -> None:
        """One DEBUG line per attempt: what, status, latency; never a header or input text."""
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s%s -> %s in %.0f ms (attempt %d)",
                request.method,
                httpx.URL(request.url).path,
                f" [{request.label}]" if request.label else "",
                status,
                (time.monotonic() - started) * 1000,
                attempt + 1,
            )


class SyncTransport(BaseTransport):
    """The synchronous send loop over one ``httpx.Client``."""

    def __init__(
        self, *, http: httpx.Client, limiter: SyncLimiter, **kwargs: typing.Any
    ) -> None:
        super().__init__(**kwargs)
        self.http = http
        self.limiter = limiter

    def send(
        self,
        request: APIRequest,
        parse: Callable[[Answer], T],
        *,
        options: RequestOptions,
        usage: Callable[[T], Usage | None] | None = None,
        cancel: threading.Event | None = None,
        budget: RetryBudget | None = None,
    ) -> T:
        """Send ``request`` until it succeeds or retries are spent; return ``parse(answer)``.

        ``budget`` is the call's shared retry budget (a fresh one of ``max_retries`` when not
        given).

        Raises:
            APIError: The typed error of the last attempt.
            CallCancelled: When ``cancel`` is set before an attempt or during a backoff wait.
        """
        budget = budget if budget is not None else RetryBudget(self.max_retries(options))
        deadline = self.deadline(options)
        for attempt in range(MAX_ATTEMPTS_PER_REQUEST):
            if cancel is not None and cancel.is_set():
                raise CallCancelled
            while pause := self.rate_delay(request):
                if _wait(cancel, pause):
                    raise CallCancelled
            started = time.monotonic()
            error: APIError
            try:
                with self.limiter:
                    if cancel is not None and cancel.is_set():  # stopped while waiting
                        raise CallCancelled
                    started = time.monotonic()  # sent now (the wait for a permit is not it)
                    status, headers, content = self._attempt(request, options, deadline)
                self.log_attempt(request, attempt, status, started)
                result = parse(self.answer(request, status, headers, content))
                self.limiter.controller.success()
                budget.earn()
                self.record(usage(result) if usage is not None else None)
                return result
            except httpx.TransportError as exc:
                error = self.transport_error(exc, request)
            except APIError as exc:
                error = exc
                if isinstance(exc, RateLimitError):
                    self.limiter.controller.throttled(started)
                elif isinstance(exc, ResponseValidationError):
                    self.record_rejected(exc, usage)
            self.log_attempt(request, attempt, type(error).__name__, started)
            delay = self.retry_wait(attempt, error, budget, request)
            if delay is None:
                raise error
            if _wait(cancel, delay):
                raise CallCancelled
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(
        self, request: APIRequest, options: RequestOptions, deadline: float | None
    ) -> tuple[int, httpx.Headers, bytes]:
        built = self.build(self.http, request, options)
        sent = _mark_sent(request, built)
        started = _monotonic()
        response = self.http.send(built, stream=True, auth=self.auth, follow_redirects=False)
        try:
            if sent is not None and sent.at is not None:
                started = sent.at
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > request.max_response_bytes:
                    raise self.too_large(request, size)
                chunks.append(chunk)
                if deadline is not None and _monotonic() - started > deadline:
                    if self.complete(request, response, chunks):
                        break
                    raise self.too_slow(request, deadline)
            return response.status_code, response.headers, b"".join(chunks)
        finally:
            response.close()


class AsyncTransport(BaseTransport):
    """The asynchronous send loop; the ``httpx.AsyncClient`` and limiter come per event loop."""

    async def send(
        self,
        http: httpx.AsyncClient,
        limiter: AsyncLimiter,
        request: APIRequest,
        parse: Callable[[Answer], T],
        *,
        options: RequestOptions,
        usage: Callable[[T], Usage | None] | None = None,
        budget: RetryBudget | None = None,
    ) -> T:
        """Async :meth:`SyncTransport.send`; cancelling the task stops it at once."""
        budget = budget if budget is not None else RetryBudget(self.max_retries(options))
        deadline = self.deadline(options)
        for attempt in range(MAX_ATTEMPTS_PER_REQUEST):
            while pause := self.rate_delay(request):
                await _async_sleep(pause)
            started = time.monotonic()
            error: APIError
            try:
                async with limiter:
                    started = time.monotonic()  # sent now (the wait for a permit is not it)
                    status, headers, content = await self._attempt(
                        http, request, options, deadline
                    )
                self.log_attempt(request, attempt, status, started)
                result = parse(self.answer(request, status, headers, content))
                limiter.controller.success()
                budget.earn()
                self.record(usage(result) if usage is not None else None)
                return result
            except httpx.TransportError as exc:
                error = self.transport_error(exc, request)
            except APIError as exc:
                error = exc
                if isinstance(exc, RateLimitError):
                    limiter.controller.throttled(started)
                elif isinstance(exc, ResponseValidationError):
                    self.record_rejected(exc, usage)
            self.log_attempt(request, attempt, type(error).__name__, started)
            delay = self.retry_wait(attempt, error, budget, request)
            if delay is None:
                raise error
            await _async_sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(
        self,
        http: httpx.AsyncClient,
        request: APIRequest,
        options: RequestOptions,
        deadline: float | None,
    ) -> tuple[int, httpx.Headers, bytes]:
        built = self.build(http, request, options)
        sent = _mark_sent(request, built)
        started = _monotonic()
        response = await http.send(built, stream=True, auth=self.auth, follow_redirects=False)
        try:
            if sent is not None and sent.at is not None:
                started = sent.at
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > request.max_response_bytes:
                    raise self.too_large(request, size)
                chunks.append(chunk)
                if deadline is not None and _monotonic() - started > deadline:
                    if self.complete(request, response, chunks):
                        break
                    raise self.too_slow(request, deadline)
            return response.status_code, response.headers, b"".join(chunks)
        finally:
            await response.aclose()
