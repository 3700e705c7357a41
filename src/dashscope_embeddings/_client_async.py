"""The asynchronous client: per-event-loop connection pools and limiters.

Everything else is in ``_client_base.py``; the sync twin is ``_client_sync.py``.

A pool belongs to one event loop. The client may be used from several loops one after another
(e.g. repeated ``asyncio.run``): each gets its own pool, closed when that loop shuts down, and
nothing of a finished loop is kept (its pool entry is dropped as the loop shuts down, or at the
latest when a pool is opened for a later loop).
"""

from __future__ import annotations

import asyncio
import time
import typing
import weakref
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
)
from dataclasses import dataclass

import httpx
from pydantic import SecretStr

from dashscope_embeddings._client_base import (
    DEFAULT_MODEL,
    DEFAULT_MULTIMODAL_MODEL,
    ClientBase,
    Pacing,
    Share,
    Shared,
    call_budget,
    render_options,
    request_options,
)
from dashscope_embeddings._client_sync import http_limits
from dashscope_embeddings._fanout import CallOutcome, CallPlan, Job, UnitOutput, run_call_async
from dashscope_embeddings._limiter import AsyncLimiter, RateBudget
from dashscope_embeddings._options import (
    NOT_GIVEN,
    ClientOptions,
    NotGiven,
    RequestOptions,
    TimeoutTypes,
)
from dashscope_embeddings._progress import Progress, ProgressTracker, make_tracker
from dashscope_embeddings._registry import ModelSpec, get_model_spec
from dashscope_embeddings._transport import Answer, APIRequest, AsyncTransport
from dashscope_embeddings._types import (
    EmbeddingResult,
    OnError,
    OutputType,
    PartialResult,
    TextType,
    WireProtocol,
)
from dashscope_embeddings.resources import text

if typing.TYPE_CHECKING:  # typing.Unpack is 3.11+; only the type checker needs it
    from typing_extensions import Unpack

    from dashscope_embeddings._namespaces import AsyncBatches, AsyncFiles, AsyncTasks
    from dashscope_embeddings._stream import StreamPart

__all__ = ["AsyncDashScopeClient"]

T = typing.TypeVar("T")


@dataclass
class _LoopPool:
    http: httpx.AsyncClient
    closer: AsyncGenerator[None, None]


class AsyncConnections(Shared):
    """The per-loop ``httpx.AsyncClient`` pools of a client and its copies.

    An injected client is used on every loop instead, and never closed by us.
    """

    def __init__(self, injected: httpx.AsyncClient | None, max_concurrency: int) -> None:
        super().__init__()
        self.injected = injected
        self._limits = http_limits(max_concurrency)
        # Keyed by the loop itself: each value holds its loop (httpx binds to it), so entries
        # are dropped as their loop ends rather than left to a weak key that could never die.
        self.pools: dict[asyncio.AbstractEventLoop, _LoopPool] = {}

    async def http(self) -> httpx.AsyncClient:
        """The running loop's client, opened on first use."""
        if self.injected is not None:
            return self.injected
        loop = asyncio.get_running_loop()
        pool = self.pools.get(loop)
        if pool is not None:
            return pool.http
        for other in list(self.pools):  # a copy: other threads may run loops of their own
            if other.is_closed():  # ended without shutting down its async generators
                self.pools.pop(other, None)
        http = httpx.AsyncClient(timeout=httpx.Timeout(None), limits=self._limits)
        # Started here, this generator is registered with the loop, so a loop ended by
        # asyncio.run closes its pool (and drops its entry) instead of leaking them.
        closer = self._close_at_shutdown(loop, http)
        self.pools[loop] = _LoopPool(http, closer)  # before the await: one pool per loop
        await closer.__anext__()
        return http

    async def _close_at_shutdown(
        self, loop: asyncio.AbstractEventLoop, http: httpx.AsyncClient
    ) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            pool = self.pools.get(loop)
            if pool is not None and pool.http is http:
                self.pools.pop(loop, None)
            await http.aclose()

    async def close_running(self) -> None:
        """Close the running loop's pool (the others close as their loops shut down)."""
        pool = self.pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.closer.aclose()


class AsyncPacing(Pacing):
    """Pacing, and one limiter of its permits per event loop."""

    def __init__(
        self, settings: typing.Any, budgets: tuple[RateBudget | None, RateBudget | None]
    ) -> None:
        super().__init__(settings, budgets)
        # A limiter holds no reference to its loop once no one waits: weak keys can die.
        self.limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncLimiter] = (
            weakref.WeakKeyDictionary()
        )

    def limiter(self) -> AsyncLimiter:
        """The running loop's limiter."""
        loop = asyncio.get_running_loop()
        limiter = self.limiters.get(loop)
        if limiter is None:
            limiter = self.limiters[loop] = AsyncLimiter(self.controller)
        return limiter


class AsyncDashScopeClient(ClientBase[AsyncConnections, AsyncPacing]):
    """Asynchronous twin of :class:`DashScopeClient`: same arguments, ``await`` the calls.

    >>> async with AsyncDashScopeClient() as client:  # doctest: +SKIP
    ...     result = await client.embed_texts(["hello"], model="text-embedding-v4")

    ``max_concurrency`` bounds requests in flight per event loop. The client may be used from
    several event loops one after another (e.g. repeated ``asyncio.run``); each gets its own
    connection pool, closed when that loop shuts down. A closed client stays closed: every
    later call raises :class:`~dashscope_embeddings.ClientClosedError`.

    Args:
        api_key: The key; defaults to ``DASHSCOPE_API_KEY``. Kept as a secret, never shown.
        http_client: Your own ``httpx.AsyncClient`` (never closed by us; its timeout holds
            unless you also pass ``timeout``).
        rpm_budget: A shared requests-per-minute budget; see :class:`DashScopeClient`.
        tpm_budget: The same for (estimated) input tokens.
        **options: Any field of :class:`~dashscope_embeddings.ClientSettings`:

            {options}

    Raises:
        ConfigurationError: No key, an unknown region or option, a value out of range.
    """

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        *,
        http_client: httpx.AsyncClient | None = None,
        rpm_budget: RateBudget | None = None,
        tpm_budget: RateBudget | None = None,
        _share: Share[AsyncConnections, AsyncPacing] | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        secret = SecretStr(api_key) if isinstance(api_key, str) else api_key
        del api_key  # never a plain local in a frame a traceback could show
        super().__init__(
            secret,
            http_client=http_client,
            rpm_budget=rpm_budget,
            tpm_budget=tpm_budget,
            _share=_share,
            **options,
        )
        self._transport = AsyncTransport(
            api_key=self._api_key,
            endpoints=self.endpoints,
            settings=self.settings,
            usage=self._usage,
            use_client_timeout=self._connections.injected is not None
            and not self.settings.timeout_given(),
            rates=self._rates,
        )

    def _new_pacing(self) -> AsyncPacing:
        return AsyncPacing(self.settings, self._budgets)

    def _open(self, http_client: httpx.AsyncClient | None) -> AsyncConnections:
        return AsyncConnections(http_client, self.settings.max_concurrency)

    @property
    def files(self) -> AsyncFiles:
        """Upload, get, download and delete stored files (for the Batch API)."""
        from dashscope_embeddings._namespaces import AsyncFiles

        return AsyncFiles(self)

    @property
    def batches(self) -> AsyncBatches:
        """Create, get, list and cancel Batch API jobs."""
        from dashscope_embeddings._namespaces import AsyncBatches

        return AsyncBatches(self)

    @property
    def tasks(self) -> AsyncTasks:
        """Poll and cancel asynchronous tasks."""
        from dashscope_embeddings._namespaces import AsyncTasks

        return AsyncTasks(self)

    async def _request(
        self,
        request: APIRequest,
        parse: Callable[[Answer], T],
        options: RequestOptions | None = None,
    ) -> T:
        """Send one request through the transport (retries, errors, deadline)."""
        self._check_open()
        http = await self._connections.http()
        return await self._transport.send(
            http, self._pacing.limiter(), request, parse, options=options or RequestOptions()
        )

    async def _http_client(self) -> httpx.AsyncClient:
        """The running loop's connection pool, for a request outside the transport.

        A file task's signed result link is fetched through it, without the key.
        """
        self._check_open()
        return await self._connections.http()

    @typing.overload
    async def embed_texts(
        self,
        texts: Iterable[str],
        *,
        model: str | ModelSpec = DEFAULT_MODEL,
        dimension: int | None = None,
        text_type: TextType | None = None,
        output_type: OutputType = "dense",
        instruct: str | None = None,
        protocol: WireProtocol | None = None,
        on_error: typing.Literal["raise"] = ...,
        long_text: text.LongText = "error",
        progress: Progress = None,
        extra_body: Mapping[str, typing.Any] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> EmbeddingResult: ...

    @typing.overload
    async def embed_texts(
        self,
        texts: Iterable[str],
        *,
        model: str | ModelSpec = DEFAULT_MODEL,
        dimension: int | None = None,
        text_type: TextType | None = None,
        output_type: OutputType = "dense",
        instruct: str | None = None,
        protocol: WireProtocol | None = None,
        on_error: typing.Literal["skip"],
        long_text: text.LongText = ...,
        progress: Progress = ...,
        extra_body: Mapping[str, typing.Any] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> PartialResult: ...

    async def embed_texts(
        self,
        texts: Iterable[str],
        *,
        model: str | ModelSpec = DEFAULT_MODEL,
        dimension: int | None = None,
        text_type: TextType | None = None,
        output_type: OutputType = "dense",
        instruct: str | None = None,
        protocol: WireProtocol | None = None,
        on_error: OnError = "raise",
        long_text: text.LongText = "error",
        progress: Progress = None,
        extra_body: Mapping[str, typing.Any] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> EmbeddingResult | PartialResult:
        """Embed ``texts``; see :meth:`DashScopeClient.embed_texts`."""
        call = self._plan_text(
            texts,
            model=model,
            dimension=dimension,
            text_type=text_type,
            output_type=output_type,
            instruct=instruct,
            protocol=protocol,
            extra_body=extra_body,
            long_text=long_text,
        )
        options = request_options(timeout, max_retries, extra_headers)
        tracker = make_tracker(progress, call.refs, description=call.spec.name)
        started = time.monotonic()
        try:
            outcome = await self._run(call, options, tracker)
        finally:
            if tracker is not None:
                tracker.finish()
        return self._finish_text(call, outcome, on_error, started)

    def aembed_stream(
        self,
        texts: Iterable[str] | AsyncIterable[str],
        *,
        model: str | ModelSpec = DEFAULT_MODEL,
        dimension: int | None = None,
        text_type: TextType | None = None,
        output_type: OutputType = "dense",
        instruct: str | None = None,
        protocol: WireProtocol | None = None,
        on_error: OnError = "raise",
        long_text: text.LongText = "error",
        numpy: bool = False,
        part_size: int | None = None,
        window: int | None = None,
        extra_body: Mapping[str, typing.Any] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> AsyncGenerator[StreamPart, None]:
        """Async :meth:`DashScopeClient.embed_stream`; ``texts`` may be an async iterable.

        >>> async for part in client.aembed_stream(texts):  # doctest: +SKIP
        ...     store.add(part.embeddings)
        """
        spec = get_model_spec(model)
        size, depth = self._stream_shape(spec, part_size, window)

        call = typing.cast(
            "Callable[..., Awaitable[EmbeddingResult | PartialResult]]", self.embed_texts
        )

        async def embed(chunk: list[str]) -> EmbeddingResult | PartialResult:
            return await call(
                chunk,
                model=spec,
                dimension=dimension,
                text_type=text_type,
                output_type=output_type,
                instruct=instruct,
                protocol=protocol,
                on_error=on_error,
                long_text=long_text,
                extra_body=extra_body,
                extra_headers=extra_headers,
                timeout=timeout,
                max_retries=max_retries,
            )

        self._check_open()
        from dashscope_embeddings._stream import astream

        return astream(embed, texts, part_size=size, window=depth, numpy=numpy, on_error=on_error)

    @typing.overload
    async def embed_multimodal(
        self,
        inputs: Iterable[object],
        *,
        model: str | ModelSpec = DEFAULT_MULTIMODAL_MODEL,
        dimension: int | None = None,
        fps: float | None = None,
        instruct: str | None = None,
        on_error: typing.Literal["raise"] = ...,
        extra_body: Mapping[str, typing.Any] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> EmbeddingResult: ...

    @typing.overload
    async def embed_multimodal(
        self,
        inputs: Iterable[object],
        *,
        model: str | ModelSpec = DEFAULT_MULTIMODAL_MODEL,
        dimension: int | None = None,
        fps: float | None = None,
        instruct: str | None = None,
        on_error: typing.Literal["skip"],
        extra_body: Mapping[str, typing.Any] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> PartialResult: ...

    async def embed_multimodal(
        self,
        inputs: Iterable[object],
        *,
        model: str | ModelSpec = DEFAULT_MULTIMODAL_MODEL,
        dimension: int | None = None,
        fps: float | None = None,
        instruct: str | None = None,
        on_error: OnError = "raise",
        extra_body: Mapping[str, typing.Any] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> EmbeddingResult | PartialResult:
        """Embed texts, images and videos; see :meth:`DashScopeClient.embed_multimodal`."""
        call, plan = self._plan_multimodal(
            inputs,
            model=model,
            dimension=dimension,
            fps=fps,
            instruct=instruct,
            extra_body=extra_body,
        )
        options = request_options(timeout, max_retries, extra_headers)
        return self._finish_multimodal(call, await self._run(plan, options), on_error)

    async def _run(
        self, plan: CallPlan, options: RequestOptions, tracker: ProgressTracker | None = None
    ) -> CallOutcome:
        """Send a planned call's requests side by side (see ``_fanout``)."""
        if not plan.jobs:
            return CallOutcome()
        self._check_open()
        http = await self._connections.http()
        limiter = self._pacing.limiter()
        budget = call_budget(
            self._transport.max_retries(options), self._controller.limit, len(plan.jobs)
        )
        send = self._transport.send

        async def job(item: Job) -> UnitOutput:
            return await send(
                http,
                limiter,
                item.request,
                plan.parser(item),
                options=options,
                usage=plan.usage,
                budget=budget,
            )

        outcome = await run_call_async(plan, budget, job, tracker.units_done if tracker else None)
        outcome.retries = budget.spent
        return outcome

    async def aclose(self) -> None:
        """Release connections, as :meth:`DashScopeClient.close` does.

        Of pools shared with ``with_options`` copies, the running loop's closes at once when
        the last holder closes, those of other event loops as those loops shut down.
        """
        self._closed = True
        _, connections_last = self._release()
        if connections_last:
            await self._connections.close_running()

    def __del__(self) -> None:
        # No I/O here: pools close as their loops shut down; only let go of the shared ones.
        try:  # noqa: SIM105 (no module globals needed: this may run at interpreter exit)
            self._release()
        except Exception:  # best effort during garbage collection
            pass

    async def __aenter__(self) -> AsyncDashScopeClient:
        """Start of ``async with``: the client itself, closed when the block ends."""
        self._check_open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the client."""
        await self.aclose()


AsyncDashScopeClient.__doc__ = render_options(AsyncDashScopeClient.__doc__)
