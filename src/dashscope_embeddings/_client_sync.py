"""The synchronous client: one ``httpx.Client`` and a thread pool.

Everything else is in ``_client_base.py``; the async twin is ``_client_async.py``.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
import typing
from collections.abc import Callable, Generator, Iterable, Mapping

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
from dashscope_embeddings._fanout import CallOutcome, CallPlan, Job, UnitOutput, run_call_sync
from dashscope_embeddings._limiter import RateBudget, SyncLimiter
from dashscope_embeddings._options import (
    NOT_GIVEN,
    ClientOptions,
    NotGiven,
    RequestOptions,
    TimeoutTypes,
)
from dashscope_embeddings._progress import Progress, ProgressTracker, make_tracker
from dashscope_embeddings._registry import ModelSpec, get_model_spec
from dashscope_embeddings._transport import Answer, APIRequest, SyncTransport
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

    # Imported where used: importing the core stays cheap (multimodal inputs, the Batch API
    # namespaces and streaming load on first use).
    from dashscope_embeddings._namespaces import Batches, Files, Tasks
    from dashscope_embeddings._stream import StreamPart

__all__ = ["DashScopeClient"]

T = typing.TypeVar("T")


def http_limits(max_concurrency: int) -> httpx.Limits:
    """Keep-alive connections for ``max_concurrency`` requests in flight."""
    return httpx.Limits(max_keepalive_connections=max(20, max_concurrency))


class SyncConnections(Shared):
    """The ``httpx.Client`` of a client and its copies; closed by the last, unless injected."""

    def __init__(self, http: httpx.Client, *, injected: bool) -> None:
        super().__init__()
        self.http = http
        self.injected = injected

    def close(self) -> None:
        if not self.injected:
            self.http.close()


class SyncPacing(Pacing):
    """Pacing, the limiter of its permits, and the thread pool its calls run on."""

    def __init__(
        self, settings: typing.Any, budgets: tuple[RateBudget | None, RateBudget | None]
    ) -> None:
        super().__init__(settings, budgets)
        self.limiter = SyncLimiter(self.controller)
        self.workers = settings.max_concurrency
        self.pool: concurrent.futures.ThreadPoolExecutor | None = None
        self.pool_lock = threading.Lock()

    def close(self, *, wait: bool) -> None:
        with self.pool_lock:
            pool, self.pool = self.pool, None
        if pool is not None:
            pool.shutdown(wait=wait)


class DashScopeClient(ClientBase[SyncConnections, SyncPacing]):
    """Synchronous client for the DashScope embedding endpoints.

    >>> client = DashScopeClient()  # key from DASHSCOPE_API_KEY, region cn-beijing
    >>> result = client.embed_texts(["hello", "world"], model="text-embedding-v4")
    >>> len(result.embeddings), result.usage.total_tokens

    A call is split into requests by the model's limits; they run up to ``max_concurrency``
    at a time on a thread pool, each retried on its own, so a failed request never re-sends
    ones that succeeded. When one fails for good, the others stop and its error is raised.

    Lifecycle: the client opens its connection pool on first use and keeps it until
    ``close()`` (or the ``with`` block ends, or the client is garbage-collected). A closed
    client stays closed: every later call raises :class:`~dashscope_embeddings.ClientClosedError`.

    Args:
        api_key: The key; defaults to ``DASHSCOPE_API_KEY``. Kept as a secret, never shown.
        http_client: Your own ``httpx.Client`` (proxies, custom TLS, tests). It is not closed
            by us, and its own timeout holds unless you also pass ``timeout``.
        rpm_budget: A requests-per-minute budget shared with other processes (any object with
            ``wait_time(units)`` and ``spend(units)``, e.g. one backed by a Ray actor); it
            replaces the local ``rpm`` window.
        tpm_budget: The same for (estimated) input tokens; replaces the local ``tpm`` window.
        **options: Any field of :class:`~dashscope_embeddings.ClientSettings`:

            {options}

    Raises:
        ConfigurationError: No key, an unknown region or option, a value out of range.
    """

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        *,
        http_client: httpx.Client | None = None,
        rpm_budget: RateBudget | None = None,
        tpm_budget: RateBudget | None = None,
        _share: Share[SyncConnections, SyncPacing] | None = None,
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
        self._transport = SyncTransport(
            http=self._http,
            limiter=self._pacing.limiter,
            api_key=self._api_key,
            endpoints=self.endpoints,
            settings=self.settings,
            usage=self._usage,
            use_client_timeout=self._connections.injected and not self.settings.timeout_given(),
            rates=self._rates,
        )

    def _new_pacing(self) -> SyncPacing:
        return SyncPacing(self.settings, self._budgets)

    def _open(self, http_client: httpx.Client | None) -> SyncConnections:
        if http_client is not None:
            return SyncConnections(http_client, injected=True)
        http = httpx.Client(
            timeout=httpx.Timeout(None), limits=http_limits(self.settings.max_concurrency)
        )
        return SyncConnections(http, injected=False)

    @property
    def _http(self) -> httpx.Client:
        return self._connections.http

    @property
    def files(self) -> Files:
        """Upload, get, download and delete stored files (for the Batch API)."""
        from dashscope_embeddings._namespaces import Files

        return Files(self)

    @property
    def batches(self) -> Batches:
        """Create, get, list and cancel Batch API jobs."""
        from dashscope_embeddings._namespaces import Batches

        return Batches(self)

    @property
    def tasks(self) -> Tasks:
        """Poll and cancel asynchronous tasks."""
        from dashscope_embeddings._namespaces import Tasks

        return Tasks(self)

    def _request(
        self,
        request: APIRequest,
        parse: Callable[[Answer], T],
        options: RequestOptions | None = None,
    ) -> T:
        """Send one request through the transport (retries, errors, deadline)."""
        self._check_open()
        return self._transport.send(request, parse, options=options or RequestOptions())

    @typing.overload
    def embed_texts(
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
    def embed_texts(
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

    def embed_texts(
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
        """Embed ``texts``, split into requests by the model's limits, results in input order.

        Args:
            texts: The texts (a list, or any iterable, read once); none may be empty.
            model: A model name or :class:`ModelSpec` (unknown names get conservative limits).
            dimension: Output size; ``None`` for the model's default.
            text_type: ``document`` for stored chunks, ``query`` for questions; ``None`` sends
                nothing (the service's default is ``document``). Native protocol only.
            output_type: ``dense``, ``sparse`` or ``dense&sparse`` (v3/v4, native only).
            instruct: Task instruction for queries (text-embedding-v4, ``text_type='query'``).
            protocol: Override the client's protocol for this call.
            on_error: When the service rejects some inputs (the others are still embedded):
                ``raise`` (default) a :class:`PartialEmbeddingError` carrying every good
                vector, or ``skip`` and return a :class:`PartialResult` naming the failed ones.
            long_text: A text over the model's token limit: ``error`` (default, refused before
                sending), ``truncate`` or ``chunk`` (token-weighted mean of the pieces).
            progress: ``True`` for a tqdm bar (the ``progress`` extra), or a callable
                ``(done, total)`` called as requests come back, counting texts.
            extra_body: Merged into every request body (e.g. ``{"parameters": {"new": 1}}``),
                for a service parameter this package does not know yet.
            extra_headers: Added to every request of this call.
            timeout: Deadline per attempt for this call, in seconds.
            max_retries: The call's retry budget to start with (one more per request that
                succeeds; at most 10 attempts per request).

        Returns:
            An :class:`EmbeddingResult`, or with ``on_error="skip"`` a :class:`PartialResult`
            (whose ``failed`` is empty when nothing failed).

        Raises:
            InvalidInputError: Before sending, for bad input (its index) or options.
            PartialEmbeddingError: Some inputs were rejected; the rest are on the error.
            APIError: A typed error that stopped the call (retries spent, a bad key...); what
                finished before it is in its ``partial``.
            ClientClosedError: After ``close()``.
        """
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
            outcome = self._run(call, options, tracker)
        finally:
            if tracker is not None:
                tracker.finish()
        return self._finish_text(call, outcome, on_error, started)

    def embed_stream(
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
        numpy: bool = False,
        part_size: int | None = None,
        window: int | None = None,
        extra_body: Mapping[str, typing.Any] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> Generator[StreamPart, None, None]:
        """Embed a corpus of any size with bounded memory, yielding parts in input order.

        >>> for part in client.embed_stream(open("corpus.txt"), numpy=True):  # doctest: +SKIP
        ...     vectors[part.start : part.start + len(part)] = part.embeddings

        ``texts`` is read lazily, ``part_size`` texts at a time (default: ten requests' worth);
        up to ``window`` parts are embedded at once (default: enough to keep the concurrency
        limit busy), and never more than that are held. ``numpy=True`` gives each part's
        vectors as one float32 array (the ``numpy`` extra). Other arguments as in
        :meth:`embed_texts`; a part with rejected inputs raises ``PartialEmbeddingError``
        naming their index in the whole stream (or, with ``on_error="skip"``, is yielded with
        its ``failed`` map).
        """
        spec = get_model_spec(model)
        size, depth = self._stream_shape(spec, part_size, window)

        call = typing.cast("Callable[..., EmbeddingResult | PartialResult]", self.embed_texts)

        def embed(chunk: list[str]) -> EmbeddingResult | PartialResult:
            return call(
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
        from dashscope_embeddings._stream import stream

        return stream(embed, texts, part_size=size, window=depth, numpy=numpy, on_error=on_error)

    @typing.overload
    def embed_multimodal(
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
    def embed_multimodal(
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

    def embed_multimodal(
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
        """Embed texts, images and videos with a multimodal model, results in input order.

        See :mod:`dashscope_embeddings.resources.multimodal` for the inputs each model takes.
        Errors and ``on_error`` as in :meth:`embed_texts`.
        """
        call, plan = self._plan_multimodal(
            inputs,
            model=model,
            dimension=dimension,
            fps=fps,
            instruct=instruct,
            extra_body=extra_body,
        )
        options = request_options(timeout, max_retries, extra_headers)
        return self._finish_multimodal(call, self._run(plan, options), on_error)

    def _run(
        self, plan: CallPlan, options: RequestOptions, tracker: ProgressTracker | None = None
    ) -> CallOutcome:
        """Send a planned call's requests side by side (see ``_fanout``)."""
        if not plan.jobs:
            return CallOutcome()
        budget = call_budget(
            self._transport.max_retries(options), self._controller.limit, len(plan.jobs)
        )
        send = self._transport.send

        def job(item: Job, cancel: threading.Event) -> UnitOutput:
            return send(
                item.request,
                plan.parser(item),
                options=options,
                usage=plan.usage,
                cancel=cancel,
                budget=budget,
            )

        outcome = run_call_sync(
            self._executor(), plan, budget, job, tracker.units_done if tracker else None
        )
        outcome.retries = budget.spent
        return outcome

    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        pacing = self._pacing
        with pacing.pool_lock:
            self._check_open()
            if pacing.pool is None:
                pacing.pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=pacing.workers, thread_name_prefix="dashscope-embeddings"
                )
            return pacing.pool

    def _let_go(self, *, wait: bool) -> None:
        pacing_last, connections_last = self._release()
        if pacing_last:
            self._pacing.close(wait=wait)
        if connections_last:
            self._connections.close()

    def close(self) -> None:
        """Release connections and threads; the client cannot be used afterwards.

        Connections shared with ``with_options`` copies close when the last of them closes;
        an injected ``http_client`` is left open.
        """
        self._closed = True
        self._let_go(wait=True)

    def __del__(self) -> None:
        # An adapter's client is rarely closed by hand: release its sockets when it goes away.
        try:  # noqa: SIM105 (no module globals needed: this may run at interpreter exit)
            self._let_go(wait=False)
        except Exception:  # best effort during garbage collection
            pass

    def __enter__(self) -> DashScopeClient:
        """Start of ``with``: the client itself, closed when the block ends."""
        self._check_open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the client."""
        self.close()


DashScopeClient.__doc__ = render_options(DashScopeClient.__doc__)
