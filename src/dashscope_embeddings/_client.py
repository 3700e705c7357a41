"""The core client: one request path, sync and async, over httpx.

Everything that does no I/O lives in :class:`_BaseClient` (settings, planning, parsing, retry
decisions, usage); :class:`DashScopeClient` and :class:`AsyncDashScopeClient` add only their
send loops and fan-out.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import platform
import threading
import time
import typing
import weakref
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass

import httpx
from pydantic import SecretStr

from dashscope_embeddings._batching import check_options, check_texts, plan_batches
from dashscope_embeddings._config import resolve_api_key, resolve_endpoints
from dashscope_embeddings._constants import (
    COMPATIBLE_EMBEDDINGS_PATH,
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT_S,
    TEXT_EMBEDDING_PATH,
)
from dashscope_embeddings._errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
)
from dashscope_embeddings._payloads import (
    BatchOutput,
    body_error_code,
    compatible_body,
    decode_json,
    native_text_body,
    parse_compatible,
    parse_error,
    parse_native_text,
)
from dashscope_embeddings._registry import ModelSpec, get_model_spec
from dashscope_embeddings._retry import parse_retry_after, retry_delay, should_retry
from dashscope_embeddings._tokens import TokenCounter
from dashscope_embeddings._types import EmbeddingResult, OutputType, SparseVector, TextType, Usage
from dashscope_embeddings._usage import UsageTracker, usage_for
from dashscope_embeddings._version import __version__

__all__ = ["AsyncDashScopeClient", "DashScopeClient", "Protocol"]

logger = logging.getLogger("dashscope_embeddings")

Protocol = typing.Literal["native", "compatible"]
TimeoutTypes = typing.Union[float, httpx.Timeout, None]  # noqa: UP007 (runtime alias, py3.10)

# Backoff waits go through these names, so tests can record them instead of sleeping.
_sleep = time.sleep
_async_sleep = asyncio.sleep

_USER_AGENT = (
    f"dashscope-embeddings/{__version__} "
    f"python/{platform.python_version()} httpx/{httpx.__version__}"
)


@dataclass(frozen=True)
class _Request:
    url: str
    content: bytes
    indices: range


@dataclass(frozen=True)
class _Call:
    spec: ModelSpec
    protocol: Protocol
    output_type: OutputType
    expected_dimension: int | None
    requests: list[_Request]


def _timeout(timeout: TimeoutTypes) -> httpx.Timeout:
    if isinstance(timeout, httpx.Timeout):
        return timeout
    if timeout is None:
        return httpx.Timeout(None)
    return httpx.Timeout(timeout, connect=min(DEFAULT_CONNECT_TIMEOUT_S, timeout))


class _BaseClient:
    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        *,
        region: str | None = None,
        base_url: str | None = None,
        workspace: str | None = None,
        protocol: Protocol = "native",
        max_retries: int = DEFAULT_MAX_RETRIES,
        timeout: TimeoutTypes = DEFAULT_TIMEOUT_S,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        token_counter: TokenCounter | None = None,
    ) -> None:
        if protocol not in ("native", "compatible"):
            raise ValueError(f"protocol must be 'native' or 'compatible', got {protocol!r}")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be >= 1")
        self._api_key = resolve_api_key(api_key)
        self.endpoints = resolve_endpoints(region=region, base_url=base_url, workspace=workspace)
        self.protocol: Protocol = protocol
        self.max_retries = max_retries
        self.max_concurrency = max_concurrency
        self.timeout = _timeout(timeout)
        self.token_counter = token_counter
        self._usage = UsageTracker()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.endpoints.native_base!r}, "
            f"region={self.endpoints.region!r}, protocol={self.protocol!r})"
        )

    @property
    def usage(self) -> Usage:
        """Tokens and estimated cost of every successful request this client has sent."""
        return self._usage.total

    def reset_usage(self) -> None:
        """Start the running usage total from zero."""
        self._usage.reset()

    def _headers(self) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self._api_key.get_secret_value()}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": _USER_AGENT,
        }
        if self.endpoints.workspace:
            headers["X-DashScope-WorkSpace"] = self.endpoints.workspace
        return headers

    def _plan(
        self,
        texts: Sequence[str],
        *,
        model: str | ModelSpec,
        dimension: int | None,
        text_type: TextType | None,
        output_type: OutputType,
        instruct: str | None,
        protocol: Protocol | None,
    ) -> _Call:
        spec = get_model_spec(model)
        protocol = protocol or self.protocol
        compatible = protocol == "compatible"
        check_options(
            spec,
            dimension=dimension,
            text_type=text_type,
            output_type=output_type,
            instruct=instruct,
            compatible=compatible,
        )
        check_texts(texts, spec, token_counter=self.token_counter)
        requests = []
        for indices in plan_batches(len(texts), spec.max_batch_size):
            chunk = [texts[i] for i in indices]
            if compatible:
                url = self.endpoints.compatible_base + COMPATIBLE_EMBEDDINGS_PATH
                body = compatible_body(spec.name, chunk, dimension=dimension)
            else:
                url = self.endpoints.native_base + TEXT_EMBEDDING_PATH
                body = native_text_body(
                    spec.name,
                    chunk,
                    dimension=dimension,
                    text_type=text_type,
                    output_type=output_type,
                    instruct=instruct,
                )
            content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            requests.append(_Request(url, content, indices))
        expected = dimension or spec.default_dimension
        return _Call(spec, protocol, output_type, expected, requests)

    def _parse(self, call: _Call, request: _Request, response: httpx.Response) -> BatchOutput:
        """Turn one answer into a batch output, or raise its typed error."""
        header_id = response.headers.get("x-request-id")
        payload = decode_json(response.content)
        if response.status_code >= 400 or body_error_code(payload) is not None:
            raise parse_error(
                response.status_code,
                payload,
                text=response.text,
                header_request_id=header_id,
                retry_after=parse_retry_after(response.headers),
            )
        count = len(request.indices)
        if call.protocol == "compatible":
            output = parse_compatible(
                payload, count, expected_dimension=call.expected_dimension, request_id=header_id
            )
        else:
            output = parse_native_text(
                payload,
                count,
                output_type=call.output_type,
                expected_dimension=call.expected_dimension,
                request_id=header_id,
            )
        self._usage.add(usage_for(call.spec, output.total_tokens, 1, self.endpoints.region))
        return output

    def _retry_wait(
        self, attempt: int, error: APIError, headers: typing.Mapping[str, str] | None
    ) -> float | None:
        """Seconds to wait before sending again, or ``None`` to raise ``error`` now."""
        if attempt >= self.max_retries:
            return None
        if isinstance(error, APIStatusError):
            if not should_retry(error, headers or {}):
                return None
            delay = retry_delay(attempt, error.retry_after)
        elif isinstance(error, APIConnectionError):
            delay = retry_delay(attempt)
        else:
            return None
        if delay is not None:
            logger.info(
                "retrying in %.2fs (attempt %d of %d) after %s",
                delay,
                attempt + 1,
                self.max_retries,
                error,
            )
        return delay

    def _finish(self, call: _Call, outputs: Sequence[BatchOutput]) -> EmbeddingResult:
        dense: list[list[float]] | None = None
        sparse: list[SparseVector] | None = None
        if call.output_type != "sparse":
            dense = [vector for out in outputs for vector in (out.dense or ())]
        if call.output_type != "dense":
            sparse = [vector for out in outputs for vector in (out.sparse or ())]
        tokens = sum(out.total_tokens for out in outputs)
        return EmbeddingResult(
            model=call.spec.name,
            embeddings=dense,
            sparse_embeddings=sparse,
            usage=usage_for(call.spec, tokens, len(outputs), self.endpoints.region),
            request_ids=tuple(out.request_id or "" for out in outputs),
        )


def _transport_error(exc: httpx.TransportError, url: str) -> APIConnectionError:
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"no answer in time from {url} ({type(exc).__name__})")
    return APIConnectionError(f"could not reach {url}: {type(exc).__name__}: {exc}")


class DashScopeClient(_BaseClient):
    """Synchronous client for the DashScope text embedding endpoints.

    >>> client = DashScopeClient()  # key from DASHSCOPE_API_KEY, region cn-beijing
    >>> result = client.embed_texts(["hello", "world"], model="text-embedding-v4")
    >>> len(result.embeddings), result.usage.total_tokens

    Requests run up to ``max_concurrency`` at a time on a thread pool; each is retried on its
    own, so a failed request never re-sends ones that succeeded.

    Args:
        api_key: The key; defaults to ``DASHSCOPE_API_KEY``. Kept as a secret, never shown.
        region: ``cn-beijing`` (default), ``ap-southeast-1`` or ``cn-hongkong``.
        base_url: An explicit host or base URL (overrides ``region``); else the environment's
            ``DASHSCOPE_BASE_URL`` / ``DASHSCOPE_HTTP_BASE_URL``.
        workspace: Sent as ``X-DashScope-WorkSpace``; defaults to ``DASHSCOPE_WORKSPACE_ID``.
        protocol: ``native`` (default; has text_type, sparse, instruct) or ``compatible`` (the
            OpenAI-compatible endpoint, dense only, for gateways that speak only it).
        max_retries: Retries per request on 429, 5xx and transport errors.
        timeout: Seconds per request (or an ``httpx.Timeout``; ``None`` waits forever).
        max_concurrency: Requests in flight at once, across all calls on this client.
        token_counter: Exact token counter for the pre-send length check.
        http_client: Your own ``httpx.Client`` (proxies, tests); it is not closed by us.
    """

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        *,
        http_client: httpx.Client | None = None,
        **kwargs: typing.Any,
    ) -> None:
        super().__init__(api_key, **kwargs)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(
            timeout=self.timeout,
            limits=httpx.Limits(max_keepalive_connections=max(20, self.max_concurrency)),
        )
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def embed_texts(
        self,
        texts: Sequence[str],
        *,
        model: str | ModelSpec = "text-embedding-v4",
        dimension: int | None = None,
        text_type: TextType | None = None,
        output_type: OutputType = "dense",
        instruct: str | None = None,
        protocol: Protocol | None = None,
    ) -> EmbeddingResult:
        """Embed ``texts``, split into requests by the model's limits, results in input order.

        Args:
            texts: The texts; none may be empty.
            model: A model name or :class:`ModelSpec` (unknown names get conservative limits).
            dimension: Output size; ``None`` for the model's default.
            text_type: ``document`` for stored chunks, ``query`` for questions; ``None`` sends
                nothing (the service's default is ``document``). Native protocol only.
            output_type: ``dense``, ``sparse`` or ``dense&sparse`` (v3/v4, native only).
            instruct: Task instruction for queries (text-embedding-v4, ``text_type='query'``).
            protocol: Override the client's protocol for this call.

        Raises:
            InvalidInputError: Before sending, for bad input (its index) or options.
            APIError: A typed error once retries are spent; no partial result is returned.
        """
        call = self._plan(
            texts,
            model=model,
            dimension=dimension,
            text_type=text_type,
            output_type=output_type,
            instruct=instruct,
            protocol=protocol,
        )
        if len(call.requests) <= 1 or self.max_concurrency == 1:
            return self._finish(call, [self._send(call, r) for r in call.requests])
        futures = [self._executor().submit(self._send, call, r) for r in call.requests]
        done, _ = concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
        failed = [f for f in futures if f in done and f.exception() is not None]
        if failed:
            for future in futures:
                future.cancel()
            raise typing.cast(BaseException, failed[0].exception())
        return self._finish(call, [f.result() for f in futures])

    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self.max_concurrency, thread_name_prefix="dashscope-embeddings"
                )
            return self._pool

    def _send(self, call: _Call, request: _Request) -> BatchOutput:
        for attempt in range(self.max_retries + 1):
            headers: httpx.Headers | None = None
            try:
                response = self._http.post(
                    request.url,
                    content=request.content,
                    headers=self._headers(),
                    timeout=self.timeout,
                )
                headers = response.headers
                return self._parse(call, request, response)
            except httpx.TransportError as exc:
                error: APIError = _transport_error(exc, request.url)
                error.__cause__ = exc
            except APIStatusError as exc:
                error = exc
            delay = self._retry_wait(attempt, error, headers)
            if delay is None:
                raise error
            _sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Release connections and threads (an injected ``http_client`` is left open)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> DashScopeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass
class _LoopState:
    http: httpx.AsyncClient
    semaphore: asyncio.Semaphore
    owned: bool


async def _all_or_nothing(coros: Sequence[Awaitable[BatchOutput]]) -> list[BatchOutput]:
    """Run side by side; on the first failure cancel the rest and raise it."""
    if len(coros) <= 1:
        return [await c for c in coros]
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        failed = [t for t in tasks if t in done and not t.cancelled() and t.exception()]
        if failed:
            raise typing.cast(BaseException, failed[0].exception())
        return [t.result() for t in tasks]
    finally:
        pending = [t for t in tasks if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


class AsyncDashScopeClient(_BaseClient):
    """Asynchronous twin of :class:`DashScopeClient`: same arguments, ``await`` the calls.

    >>> async with AsyncDashScopeClient() as client:
    ...     result = await client.embed_texts(["hello"], model="text-embedding-v4")

    ``max_concurrency`` bounds requests in flight per event loop. The client may be used from
    several event loops one after another (e.g. repeated ``asyncio.run``); each gets its own
    connection pool. ``http_client`` takes your own ``httpx.AsyncClient`` (never closed by us).
    """

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        *,
        http_client: httpx.AsyncClient | None = None,
        **kwargs: typing.Any,
    ) -> None:
        super().__init__(api_key, **kwargs)
        self._injected = http_client
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            http = self._injected or httpx.AsyncClient(
                timeout=self.timeout,
                limits=httpx.Limits(max_keepalive_connections=max(20, self.max_concurrency)),
            )
            state = _LoopState(
                http, asyncio.Semaphore(self.max_concurrency), self._injected is None
            )
            self._states[loop] = state
        return state

    async def embed_texts(
        self,
        texts: Sequence[str],
        *,
        model: str | ModelSpec = "text-embedding-v4",
        dimension: int | None = None,
        text_type: TextType | None = None,
        output_type: OutputType = "dense",
        instruct: str | None = None,
        protocol: Protocol | None = None,
    ) -> EmbeddingResult:
        """Embed ``texts``; see :meth:`DashScopeClient.embed_texts`."""
        call = self._plan(
            texts,
            model=model,
            dimension=dimension,
            text_type=text_type,
            output_type=output_type,
            instruct=instruct,
            protocol=protocol,
        )
        state = self._state()
        outputs = await _all_or_nothing([self._send(state, call, r) for r in call.requests])
        return self._finish(call, outputs)

    async def _send(self, state: _LoopState, call: _Call, request: _Request) -> BatchOutput:
        async with state.semaphore:
            for attempt in range(self.max_retries + 1):
                headers: httpx.Headers | None = None
                try:
                    response = await state.http.post(
                        request.url,
                        content=request.content,
                        headers=self._headers(),
                        timeout=self.timeout,
                    )
                    headers = response.headers
                    return self._parse(call, request, response)
                except httpx.TransportError as exc:
                    error: APIError = _transport_error(exc, request.url)
                    error.__cause__ = exc
                except APIStatusError as exc:
                    error = exc
                delay = self._retry_wait(attempt, error, headers)
                if delay is None:
                    raise error
                await _async_sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        """Close the connection pool of the running loop (an injected client is left open)."""
        loop = asyncio.get_running_loop()
        state = self._states.pop(loop, None)
        if state is not None and state.owned:
            await state.http.aclose()

    async def __aenter__(self) -> AsyncDashScopeClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
