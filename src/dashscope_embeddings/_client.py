"""The core clients: configuration, lifecycle and one method per endpoint call.

Each public method plans its call with an endpoint module (``resources/``), sends the requests
through the one transport (``_transport.py``) side by side (``_fanout.py``), and joins the
answers. :class:`DashScopeClient` and :class:`AsyncDashScopeClient` differ only in I/O.

Lifecycle (both clients): a client opens its connection pool on first use and keeps it until
``close()`` / ``aclose()`` (or the ``with`` / ``async with`` block ends). A closed client stays
closed: every later call raises :class:`~dashscope_embeddings.ClientClosedError`. An injected
``http_client`` is never closed by us. ``with_options(...)`` returns a copy with some settings
changed that shares the original's connections, limiter and usage total; closing the copy
closes only the copy.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import logging
import math
import threading
import time
import typing
import weakref
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass

import httpx
from pydantic import SecretStr

from dashscope_embeddings._config import (
    check_transport_security,
    resolve_api_key,
    resolve_endpoints,
)
from dashscope_embeddings._errors import ClientClosedError
from dashscope_embeddings._fanout import (
    CallOutcome,
    CallPlan,
    Job,
    UnitOutput,
    run_call_async,
    run_call_sync,
)
from dashscope_embeddings._limiter import (
    AsyncLimiter,
    ConcurrencyController,
    RateBudget,
    RateWindow,
    SyncLimiter,
)
from dashscope_embeddings._options import (
    NOT_GIVEN,
    ClientOptions,
    ClientSettings,
    NotGiven,
    RequestOptions,
    TimeoutTypes,
    validate_settings,
)
from dashscope_embeddings._progress import Progress, ProgressTracker, make_tracker
from dashscope_embeddings._registry import ModelSpec, get_model_spec
from dashscope_embeddings._retry import RetryBudget
from dashscope_embeddings._transport import (
    Answer,
    APIRequest,
    AsyncTransport,
    SyncTransport,
)
from dashscope_embeddings._types import (
    EmbeddingResult,
    OnError,
    OutputType,
    PartialResult,
    TextType,
    Usage,
    WireProtocol,
)
from dashscope_embeddings._usage import UsageTracker
from dashscope_embeddings.resources import text
from dashscope_embeddings.resources._common import assemble

if typing.TYPE_CHECKING:  # typing.Unpack is 3.11+; only the type checker needs it
    from typing_extensions import Unpack

    # Imported where used: importing the core stays cheap (multimodal inputs, the Batch API
    # namespaces and streaming load on first use).
    from dashscope_embeddings._namespaces import (
        AsyncBatches,
        AsyncFiles,
        AsyncTasks,
        Batches,
        Files,
        Tasks,
    )
    from dashscope_embeddings._stream import StreamPart

__all__ = ["AsyncDashScopeClient", "DashScopeClient"]

T = typing.TypeVar("T")

logger = logging.getLogger("dashscope_embeddings.client")

_DEFAULT_MODEL = "text-embedding-v4"
_SUMMARY_FROM = 100  # calls with at least this many texts get an INFO summary line
_DEFAULT_MULTIMODAL_MODEL = "tongyi-embedding-vision-plus"


def _call_budget(max_retries: int, in_flight: int, jobs: int) -> RetryBudget:
    """A call's retries: ``max_retries``, plus one per other request sent alongside.

    Requests sent together may each need a retry before any succeeds. None at all when
    ``max_retries`` is 0; exactly ``max_retries`` for a call of one request.
    """
    extra = max(0, min(in_flight, jobs) - 1)
    return RetryBudget(max_retries + extra if max_retries > 0 else 0)


def _pacing_changed(old: ClientSettings, new: ClientSettings) -> bool:
    names = ("max_concurrency", "adaptive_concurrency", "rpm", "tpm")
    return any(getattr(old, n) != getattr(new, n) for n in names)


def _secret(api_key: str | SecretStr | None) -> SecretStr | None:
    if api_key is None or isinstance(api_key, SecretStr):
        return api_key
    return SecretStr(api_key)


def _http_limits(max_concurrency: int) -> httpx.Limits:
    return httpx.Limits(max_keepalive_connections=max(20, max_concurrency))


class _ClientBase:
    """Settings, key, endpoints, usage and lifecycle state shared by both clients."""

    settings: ClientSettings

    def __init__(
        self,
        api_key: SecretStr | None,
        options: ClientOptions,
        budgets: tuple[RateBudget | None, RateBudget | None] = (None, None),
    ) -> None:
        self._shared_budgets = budgets
        self._api_key = resolve_api_key(api_key)
        self.settings = validate_settings(options)
        self.endpoints = resolve_endpoints(
            region=self.settings.region,
            base_url=self.settings.base_url,
            workspace=self.settings.workspace,
        )
        check_transport_security(
            self.endpoints, allow_insecure_http=self.settings.allow_insecure_http
        )
        self._usage = UsageTracker()
        self._closed = False
        self._controller, self._rates = self._pacing()

    def _pacing(
        self,
    ) -> tuple[ConcurrencyController, tuple[RateBudget | None, RateBudget | None]]:
        settings = self.settings
        controller = ConcurrencyController(
            settings.max_concurrency, adaptive=settings.adaptive_concurrency
        )
        shared_rpm, shared_tpm = getattr(self, "_shared_budgets", (None, None))
        rpm = shared_rpm or (RateWindow(settings.rpm) if settings.rpm is not None else None)
        tpm = shared_tpm or (RateWindow(settings.tpm) if settings.tpm is not None else None)
        return controller, (rpm, tpm)

    @property
    def concurrency_limit(self) -> int:
        """Requests allowed in flight right now (adapted to throttling; see ``_limiter``)."""
        return self._controller.limit

    def __repr__(self) -> str:
        endpoints = getattr(self, "endpoints", None)
        if endpoints is None:  # shown while still being built (e.g. traceback locals)
            return f"<{type(self).__name__} (not set up)>"
        return (
            f"{type(self).__name__}(base_url={endpoints.native_base!r}, "
            f"region={endpoints.region!r}, protocol={self.settings.protocol!r})"
        )

    @property
    def protocol(self) -> WireProtocol:
        """The default wire protocol of calls."""
        return self.settings.protocol

    @property
    def max_retries(self) -> int:
        """Retries per request."""
        return self.settings.max_retries

    @property
    def max_concurrency(self) -> int:
        """The most requests in flight at once."""
        return self.settings.max_concurrency

    @property
    def usage(self) -> Usage:
        """Tokens and estimated cost of every successful request sent so far.

        A retried request counts once. Copies made by ``with_options`` add to the same total.
        """
        return self._usage.total

    def reset_usage(self) -> None:
        """Start the running usage total from zero."""
        self._usage.reset()

    @property
    def closed(self) -> bool:
        """Whether ``close()`` / ``aclose()`` was called."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError(
                f"this {type(self).__name__} is closed; create a new client "
                "(a closed client never reopens)"
            )

    def _copy_settings(self, changes: Mapping[str, typing.Any]) -> ClientSettings:
        merged = {
            name: getattr(self.settings, name) for name in self.settings.model_fields_set
        }
        merged.update(changes)
        return validate_settings(merged)

    def _plan_text(
        self,
        texts: Iterable[str],
        *,
        model: str | ModelSpec,
        dimension: int | None,
        text_type: TextType | None,
        output_type: OutputType,
        instruct: str | None,
        protocol: WireProtocol | None,
        extra_body: Mapping[str, typing.Any] | None,
        long_text: text.LongText,
    ) -> text.TextCall:
        self._check_open()
        return text.plan_text_call(
            text.materialize(texts),
            spec=get_model_spec(model),
            endpoints=self.endpoints,
            protocol=self.settings.protocol if protocol is None else protocol,
            dimension=dimension,
            text_type=text_type,
            output_type=output_type,
            instruct=instruct,
            token_counter=self.settings.token_counter,
            extra_body=extra_body,
            long_text=long_text,
            with_tokens=self._rates[1] is not None,  # a tpm budget needs each request's tokens
        )

    def _plan_multimodal(
        self,
        inputs: Iterable[object],
        *,
        model: str | ModelSpec,
        dimension: int | None,
        fps: float | None,
        instruct: str | None,
        extra_body: Mapping[str, typing.Any] | None,
    ) -> tuple[ModelSpec, CallPlan]:
        self._check_open()
        spec = get_model_spec(model)
        items = list(inputs) if not isinstance(inputs, Sequence) else inputs
        from dashscope_embeddings.resources import multimodal

        plan = multimodal.plan_multimodal_call(
            items,
            spec=spec,
            endpoints=self.endpoints,
            dimension=dimension,
            fps=fps,
            instruct=instruct,
            token_counter=self.settings.token_counter,
            extra_body=extra_body,
        )
        return spec, plan

    def _finish_multimodal(
        self, spec: ModelSpec, plan: CallPlan, outcome: CallOutcome, on_error: OnError
    ) -> EmbeddingResult | PartialResult:
        return assemble(
            model=spec.name,
            spec=spec,
            region=self.endpoints.region,
            refs=typing.cast(typing.Any, plan).refs,
            outcome=outcome,
            output_type="dense",
            on_error=on_error,
            usage=plan.usage,
        )

    def _stream_shape(
        self, spec: ModelSpec, part_size: int | None, window: int | None
    ) -> tuple[int, int]:
        """Texts per part and parts in flight.

        By default ten requests per part and enough parts to fill the concurrency ceiling (the
        limiter, not the window, bounds what is on the wire).
        """
        size = part_size if part_size is not None else spec.max_batch_size * 10
        per_part = max(1, math.ceil(size / spec.max_batch_size))
        depth = window if window is not None else math.ceil(self.max_concurrency / per_part) + 1
        return size, max(1, min(depth, 64))

    def _finish_text(
        self, call: text.TextCall, outcome: CallOutcome, on_error: OnError, started: float
    ) -> EmbeddingResult | PartialResult:
        if len(call.refs) >= _SUMMARY_FROM and logger.isEnabledFor(logging.INFO):
            logger.info(
                "%s: %d texts (%d sent) in %d requests, %d retried, %d failed, %.2fs%s",
                call.spec.name,
                len(call.refs),
                call.unit_count,
                len(outcome.outputs),
                outcome.retries,
                len(outcome.failures),
                time.monotonic() - started,
                f"; stopped by {type(outcome.fatal).__name__}" if outcome.fatal else "",
            )
        return assemble(
            model=call.spec.name,
            spec=call.spec,
            region=self.endpoints.region,
            refs=call.refs,
            outcome=outcome,
            output_type=call.output_type,
            on_error=on_error,
            usage=call.usage,
        )


def _request_options(
    timeout: TimeoutTypes | NotGiven,
    max_retries: int | NotGiven,
    extra_headers: Mapping[str, str] | None,
) -> RequestOptions:
    return RequestOptions(timeout=timeout, max_retries=max_retries, extra_headers=extra_headers)


class DashScopeClient(_ClientBase):
    """Synchronous client for the DashScope embedding endpoints.

    >>> client = DashScopeClient()  # key from DASHSCOPE_API_KEY, region cn-beijing
    >>> result = client.embed_texts(["hello", "world"], model="text-embedding-v4")
    >>> len(result.embeddings), result.usage.total_tokens

    A call is split into requests by the model's limits; they run up to ``max_concurrency``
    at a time on a thread pool, each retried on its own, so a failed request never re-sends
    ones that succeeded. When one fails for good, the others stop and its error is raised.

    Args:
        api_key: The key; defaults to ``DASHSCOPE_API_KEY``. Kept as a secret, never shown.
        http_client: Your own ``httpx.Client`` (proxies, custom TLS, tests). It is not closed
            by us, and its own timeout holds unless you also pass ``timeout``.
        rpm_budget: A requests-per-minute budget shared with other processes (any object with
            ``wait_time(units)`` and ``spend(units)``, e.g. one backed by a Ray actor); it
            replaces the local ``rpm`` window.
        tpm_budget: The same for (estimated) input tokens; replaces the local ``tpm`` window.
        **options: Any field of :class:`~dashscope_embeddings.ClientSettings`: ``region``,
            ``base_url``, ``workspace``, ``protocol``, ``max_retries``, ``timeout``,
            ``max_concurrency``, ``token_counter``.

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
        **options: Unpack[ClientOptions],
    ) -> None:
        secret = _secret(api_key)
        del api_key  # never a plain local in a frame a traceback could show
        super().__init__(secret, options, (rpm_budget, tpm_budget))
        self._owns_http = http_client is None
        use_client_timeout = http_client is not None and not self.settings.timeout_given()
        self._http = http_client or httpx.Client(
            timeout=httpx.Timeout(None), limits=_http_limits(self.max_concurrency)
        )
        self._limiter = SyncLimiter(self._controller)
        self._transport = SyncTransport(
            http=self._http,
            limiter=self._limiter,
            api_key=self._api_key,
            endpoints=self.endpoints,
            settings=self.settings,
            usage=self._usage,
            use_client_timeout=use_client_timeout,
            rates=self._rates,
        )
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

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

    def with_options(self, **changes: Unpack[ClientOptions]) -> DashScopeClient:
        """A copy with some settings changed, sharing this client's connections and usage.

        >>> fast = client.with_options(timeout=5, max_retries=0)  # doctest: +SKIP
        """
        self._check_open()
        clone = copy.copy(self)
        clone.settings = self._copy_settings(changes)
        clone.endpoints = resolve_endpoints(
            region=clone.settings.region,
            base_url=clone.settings.base_url,
            workspace=clone.settings.workspace,
        )
        check_transport_security(
            clone.endpoints, allow_insecure_http=clone.settings.allow_insecure_http
        )
        clone._owns_http = False
        if _pacing_changed(self.settings, clone.settings):
            clone._controller, clone._rates = clone._pacing()
            clone._limiter = SyncLimiter(clone._controller)
            clone._pool = None
            clone._pool_lock = threading.Lock()
        clone._transport = SyncTransport(
            http=self._http,
            limiter=clone._limiter,
            api_key=self._api_key,
            endpoints=clone.endpoints,
            settings=clone.settings,
            usage=self._usage,
            use_client_timeout=self._transport._use_client_timeout
            and not clone.settings.timeout_given(),
            rates=clone._rates,
        )
        return clone

    @typing.overload
    def embed_texts(
        self,
        texts: Iterable[str],
        *,
        model: str | ModelSpec = _DEFAULT_MODEL,
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
        model: str | ModelSpec = _DEFAULT_MODEL,
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
        model: str | ModelSpec = _DEFAULT_MODEL,
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
        options = _request_options(timeout, max_retries, extra_headers)
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
        model: str | ModelSpec = _DEFAULT_MODEL,
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

        return stream(
            embed, texts, part_size=size, window=depth, numpy=numpy, on_error=on_error
        )

    @typing.overload
    def embed_multimodal(
        self,
        inputs: Iterable[object],
        *,
        model: str | ModelSpec = _DEFAULT_MULTIMODAL_MODEL,
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
        model: str | ModelSpec = _DEFAULT_MULTIMODAL_MODEL,
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
        model: str | ModelSpec = _DEFAULT_MULTIMODAL_MODEL,
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
        spec, plan = self._plan_multimodal(
            inputs,
            model=model,
            dimension=dimension,
            fps=fps,
            instruct=instruct,
            extra_body=extra_body,
        )
        options = _request_options(timeout, max_retries, extra_headers)
        return self._finish_multimodal(spec, plan, self._run(plan, options), on_error)

    def _run(
        self, plan: CallPlan, options: RequestOptions, tracker: ProgressTracker | None = None
    ) -> CallOutcome:
        """Send a planned call's requests side by side (see ``_fanout``)."""
        if not plan.jobs:
            return CallOutcome()
        budget = _call_budget(
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
        with self._pool_lock:
            self._check_open()
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self.max_concurrency, thread_name_prefix="dashscope-embeddings"
                )
            return self._pool

    def close(self) -> None:
        """Release connections and threads; the client cannot be used afterwards.

        An injected ``http_client`` is left open; a ``with_options`` copy closes only itself.
        """
        self._closed = True
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if self._owns_http:
            if pool is not None:
                pool.shutdown(wait=True)
            self._http.close()

    def __del__(self) -> None:
        # An adapter's client is rarely closed by hand: release its sockets when it goes away.
        try:
            if getattr(self, "_owns_http", False):
                if self._pool is not None:
                    self._pool.shutdown(wait=False)
                self._http.close()
        except Exception:  # best effort during garbage collection
            pass

    def __enter__(self) -> DashScopeClient:
        self._check_open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass
class _LoopState:
    http: httpx.AsyncClient
    limiter: AsyncLimiter
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


class AsyncDashScopeClient(_ClientBase):
    """Asynchronous twin of :class:`DashScopeClient`: same arguments, ``await`` the calls.

    >>> async with AsyncDashScopeClient() as client:  # doctest: +SKIP
    ...     result = await client.embed_texts(["hello"], model="text-embedding-v4")

    ``max_concurrency`` bounds requests in flight per event loop. The client may be used from
    several event loops one after another (e.g. repeated ``asyncio.run``); each gets its own
    connection pool, closed when that loop shuts down. ``http_client`` takes your own
    ``httpx.AsyncClient`` (never closed by us; its timeout holds unless you pass ``timeout``).
    """

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        *,
        http_client: httpx.AsyncClient | None = None,
        rpm_budget: RateBudget | None = None,
        tpm_budget: RateBudget | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        secret = _secret(api_key)
        del api_key  # never a plain local in a frame a traceback could show
        super().__init__(secret, options, (rpm_budget, tpm_budget))
        self._injected = http_client
        self._owns_states = True
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        self._transport = self._make_transport(
            http_client is not None and not self.settings.timeout_given()
        )

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
        state = await self._state()
        return await self._transport.send(
            state.http, state.limiter, request, parse, options=options or RequestOptions()
        )

    def _make_transport(self, use_client_timeout: bool) -> AsyncTransport:
        return AsyncTransport(
            api_key=self._api_key,
            endpoints=self.endpoints,
            settings=self.settings,
            usage=self._usage,
            use_client_timeout=use_client_timeout,
            rates=self._rates,
        )

    def with_options(self, **changes: Unpack[ClientOptions]) -> AsyncDashScopeClient:
        """A copy with some settings changed; see :meth:`DashScopeClient.with_options`."""
        self._check_open()
        clone = copy.copy(self)
        clone.settings = self._copy_settings(changes)
        clone.endpoints = resolve_endpoints(
            region=clone.settings.region,
            base_url=clone.settings.base_url,
            workspace=clone.settings.workspace,
        )
        check_transport_security(
            clone.endpoints, allow_insecure_http=clone.settings.allow_insecure_http
        )
        clone._owns_states = False
        if _pacing_changed(self.settings, clone.settings):
            clone._controller, clone._rates = clone._pacing()
            clone._states = weakref.WeakKeyDictionary()
            clone._owns_states = True
        clone._transport = clone._make_transport(
            self._transport._use_client_timeout and not clone.settings.timeout_given()
        )
        return clone

    async def _state(self) -> _LoopState:
        self._check_open()
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            limiter = AsyncLimiter(self._controller)
            if self._injected is not None:
                state = self._states[loop] = _LoopState(self._injected, limiter, None)
            else:
                http = httpx.AsyncClient(
                    timeout=httpx.Timeout(None), limits=_http_limits(self.max_concurrency)
                )
                # A pool belongs to one loop. Started here, this generator is registered with
                # the loop, so a loop ended by asyncio.run closes its pool instead of leaking it.
                closer = _close_at_loop_shutdown(http)
                state = _LoopState(http, limiter, closer)
                self._states[loop] = state  # before the await: one pool per loop, always
                await closer.__anext__()
        return state

    @typing.overload
    async def embed_texts(
        self,
        texts: Iterable[str],
        *,
        model: str | ModelSpec = _DEFAULT_MODEL,
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
        model: str | ModelSpec = _DEFAULT_MODEL,
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
        model: str | ModelSpec = _DEFAULT_MODEL,
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
        options = _request_options(timeout, max_retries, extra_headers)
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
        model: str | ModelSpec = _DEFAULT_MODEL,
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
    ) -> AsyncIterator[StreamPart]:
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

        return astream(
            embed, texts, part_size=size, window=depth, numpy=numpy, on_error=on_error
        )

    @typing.overload
    async def embed_multimodal(
        self,
        inputs: Iterable[object],
        *,
        model: str | ModelSpec = _DEFAULT_MULTIMODAL_MODEL,
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
        model: str | ModelSpec = _DEFAULT_MULTIMODAL_MODEL,
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
        model: str | ModelSpec = _DEFAULT_MULTIMODAL_MODEL,
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
        spec, plan = self._plan_multimodal(
            inputs,
            model=model,
            dimension=dimension,
            fps=fps,
            instruct=instruct,
            extra_body=extra_body,
        )
        options = _request_options(timeout, max_retries, extra_headers)
        return self._finish_multimodal(spec, plan, await self._run(plan, options), on_error)

    async def _run(
        self, plan: CallPlan, options: RequestOptions, tracker: ProgressTracker | None = None
    ) -> CallOutcome:
        """Send a planned call's requests side by side (see ``_fanout``)."""
        if not plan.jobs:
            return CallOutcome()
        state = await self._state()
        budget = _call_budget(
            self._transport.max_retries(options), self._controller.limit, len(plan.jobs)
        )

        async def job(item: Job) -> UnitOutput:
            return await self._transport.send(
                state.http,
                state.limiter,
                item.request,
                plan.parser(item),
                options=options,
                usage=plan.usage,
                budget=budget,
            )

        outcome = await run_call_async(
            plan, budget, job, tracker.units_done if tracker else None
        )
        outcome.retries = budget.spent
        return outcome

    async def aclose(self) -> None:
        """Close the running loop's connection pool; the client cannot be used afterwards.

        Pools of other event loops close when those loops shut down. An injected client is
        left open.
        """
        self._closed = True
        if not self._owns_states:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - aclose is a coroutine, a loop runs
            return
        state = self._states.pop(loop, None)
        if state is not None and state.closer is not None:
            await state.closer.aclose()

    async def __aenter__(self) -> AsyncDashScopeClient:
        self._check_open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
