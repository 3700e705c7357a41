"""The core client's I/O: the sync and async send loops and their fan-out, over httpx.

Everything without I/O (settings, planning, parsing, retry decisions, usage) lives in
:class:`~dashscope_embeddings._base.BaseClient`; these two classes add only what differs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
import typing
import weakref
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass

import httpx
from pydantic import SecretStr

from dashscope_embeddings._base import (
    BaseClient,
    Call,
    ClientOptions,
    Protocol,
    Request,
    transport_error,
)
from dashscope_embeddings._errors import APIError, APIStatusError
from dashscope_embeddings._payloads import BatchOutput
from dashscope_embeddings._registry import ModelSpec
from dashscope_embeddings._types import EmbeddingResult, OutputType, TextType

if typing.TYPE_CHECKING:  # typing.Unpack is 3.11+; only the type checker needs it
    from typing_extensions import Unpack

__all__ = ["AsyncDashScopeClient", "DashScopeClient"]

# Backoff waits go through these names, so tests can record them instead of sleeping.
_sleep = time.sleep
_async_sleep = asyncio.sleep


class DashScopeClient(BaseClient):
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
        **options: Unpack[ClientOptions],
    ) -> None:
        super().__init__(api_key, options)
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

    def _send(self, call: Call, request: Request) -> BatchOutput:
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
                error: APIError = transport_error(exc, request.url)
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

    def __del__(self) -> None:
        # An adapter's client is rarely closed by hand: release its sockets when it goes away.
        try:
            if self._pool is not None:
                self._pool.shutdown(wait=False)
            if self._owns_http:
                self._http.close()
        except Exception:  # best effort during garbage collection
            pass

    def __enter__(self) -> DashScopeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass
class _LoopState:
    http: httpx.AsyncClient
    semaphore: asyncio.Semaphore
    closer: typing.AsyncGenerator[None, None] | None  # None for an injected client


async def _close_at_loop_shutdown(http: httpx.AsyncClient) -> typing.AsyncGenerator[None, None]:
    """Close ``http`` when this generator is closed.

    Started once and left suspended, it is registered with its event loop, whose
    ``shutdown_asyncgens`` (run by ``asyncio.run``) closes it while the loop is still alive.
    """
    try:
        yield
    finally:
        await http.aclose()


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


class AsyncDashScopeClient(BaseClient):
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
        **options: Unpack[ClientOptions],
    ) -> None:
        super().__init__(api_key, options)
        self._injected = http_client
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )

    async def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            semaphore = asyncio.Semaphore(self.max_concurrency)
            if self._injected is not None:
                state = self._states[loop] = _LoopState(self._injected, semaphore, None)
            else:
                http = httpx.AsyncClient(
                    timeout=self.timeout,
                    limits=httpx.Limits(max_keepalive_connections=max(20, self.max_concurrency)),
                )
                # A pool belongs to one loop. Started here, this generator is registered with
                # the loop, so a loop ended by asyncio.run closes its pool instead of leaking it.
                closer = _close_at_loop_shutdown(http)
                state = _LoopState(http, semaphore, closer)
                self._states[loop] = state  # before the await: one pool per loop, always
                await closer.__anext__()
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
        state = await self._state()
        outputs = await _all_or_nothing([self._send(state, call, r) for r in call.requests])
        return self._finish(call, outputs)

    async def _send(self, state: _LoopState, call: Call, request: Request) -> BatchOutput:
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
                    error: APIError = transport_error(exc, request.url)
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
        state = self._states.pop(asyncio.get_running_loop(), None)
        if state is not None and state.closer is not None:
            await state.closer.aclose()

    async def __aenter__(self) -> AsyncDashScopeClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
