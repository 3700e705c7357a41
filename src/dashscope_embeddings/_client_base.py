"""What the sync and async clients share.

Settings, key, endpoints, pacing, usage, lifecycle, ``with_options``, and the I/O-free
planning and assembly of every call.

:class:`DashScopeClient` (``_client_sync.py``) and :class:`AsyncDashScopeClient`
(``_client_async.py``) add only their connections and send loops. A test
(``tests/unit/test_client_parity.py``) keeps their public methods twins.

Resources shared between a client and its ``with_options`` copies are held by reference count
(:class:`Shared`): the connections always, the pacing (concurrency controller, limiters, rate
budgets, the sync thread pool) when the copy keeps the same pacing settings, and the usage
total. Each client holds them once; they are closed when the last holder lets go (``close()``,
``aclose()`` or garbage collection), whatever the order.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from pydantic import SecretStr

from dashscope_embeddings._config import checked_endpoints, resolve_api_key
from dashscope_embeddings._errors import ClientClosedError
from dashscope_embeddings._fanout import CallOutcome, CallPlan, Job, UnitOutput
from dashscope_embeddings._limiter import ConcurrencyController, RateBudget, RateWindow
from dashscope_embeddings._options import (
    ClientOptions,
    ClientSettings,
    NotGiven,
    RequestOptions,
    TimeoutTypes,
    options_doc,
    validate_settings,
)
from dashscope_embeddings._registry import ModelSpec, get_model_spec
from dashscope_embeddings._retry import RetryBudget
from dashscope_embeddings._tokens import TokenCounter, estimate_tokens
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

if typing.TYPE_CHECKING:
    from typing_extensions import Self, Unpack

    from dashscope_embeddings._transport import Answer
    from dashscope_embeddings.resources.multimodal import MultimodalCall

logger = logging.getLogger("dashscope_embeddings.client")

DEFAULT_MODEL = "text-embedding-v4"
DEFAULT_MULTIMODAL_MODEL = "tongyi-embedding-vision-plus"
_SUMMARY_FROM = 100  # calls with at least this many texts get an INFO summary line
_PACING = ("max_concurrency", "adaptive_concurrency", "rpm", "tpm")

# Input tokens assumed per media item, for a client-side ``tpm`` budget only. The service does
# not publish how it counts them; its reference shows ~1,200 billed tokens for one image.
MEDIA_TOKENS = {"image": 1200, "multi_images": 1200, "video": 2560, "audio": 2560}


def call_budget(max_retries: int, in_flight: int, jobs: int) -> RetryBudget:
    """A call's retries: ``max_retries``, plus one per other request sent alongside.

    Requests sent together may each need a retry before any succeeds. None at all when
    ``max_retries`` is 0; exactly ``max_retries`` for a call of one request.
    """
    extra = max(0, min(in_flight, jobs) - 1)
    return RetryBudget(max_retries + extra if max_retries > 0 else 0)


def request_options(
    timeout: TimeoutTypes | NotGiven,
    max_retries: int | NotGiven,
    extra_headers: Mapping[str, str] | None,
) -> RequestOptions:
    return RequestOptions(timeout=timeout, max_retries=max_retries, extra_headers=extra_headers)


def render_options(doc: str | None) -> str:
    """``doc`` with its ``{options}`` marker replaced by the list of every client option."""
    return (doc or "").replace("{options}", options_doc(indent=12).lstrip())


class Shared:
    """A resource held by a client and its ``with_options`` copies; see :meth:`release`."""

    def __init__(self) -> None:
        self._holders = 1
        self._count_lock = threading.Lock()

    def hold(self) -> Self:
        """One more client holds this."""
        with self._count_lock:
            self._holders += 1
        return self

    def release(self) -> bool:
        """One client lets go; ``True`` when it was the last (the caller then closes it)."""
        with self._count_lock:
            self._holders -= 1
            return self._holders == 0


class Pacing(Shared):
    """The concurrency controller and the ``rpm`` / ``tpm`` budgets of a client."""

    def __init__(
        self, settings: ClientSettings, budgets: tuple[RateBudget | None, RateBudget | None]
    ) -> None:
        super().__init__()
        self.controller = ConcurrencyController(
            settings.max_concurrency, adaptive=settings.adaptive_concurrency
        )
        rpm, tpm = budgets
        self.rates: tuple[RateBudget | None, RateBudget | None] = (
            rpm or (RateWindow(settings.rpm) if settings.rpm is not None else None),
            tpm or (RateWindow(settings.tpm) if settings.tpm is not None else None),
        )


ConnectionsT = typing.TypeVar("ConnectionsT", bound=Shared)
PacingT = typing.TypeVar("PacingT", bound=Pacing)


@dataclass(frozen=True)
class Share(typing.Generic[ConnectionsT, PacingT]):
    """What a ``with_options`` copy takes over from its parent (``pacing``: ``None`` if new)."""

    connections: ConnectionsT
    pacing: PacingT | None
    usage: UsageTracker


def _secret(api_key: str | SecretStr | None) -> SecretStr | None:
    if api_key is None or isinstance(api_key, SecretStr):
        return api_key
    return SecretStr(api_key)


class ClientBase(typing.Generic[ConnectionsT, PacingT]):
    """Settings, key, endpoints, pacing, usage and lifecycle shared by both clients."""

    settings: ClientSettings
    _connections: ConnectionsT
    _pacing: PacingT

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        *,
        http_client: typing.Any = None,
        rpm_budget: RateBudget | None = None,
        tpm_budget: RateBudget | None = None,
        _share: Share[ConnectionsT, PacingT] | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        secret = _secret(api_key)
        del api_key  # never a plain local in a frame a traceback could show
        self._api_key = resolve_api_key(secret)
        self.settings = validate_settings(options)
        self.endpoints = checked_endpoints(self.settings)
        self._budgets = (rpm_budget, tpm_budget)
        self._closed = False
        self._released_lock = threading.Lock()
        if _share is None:
            self._usage = UsageTracker()
            self._pacing = self._new_pacing()
            self._connections = self._open(http_client)
        else:
            self._usage = _share.usage
            pacing = _share.pacing
            self._pacing = pacing.hold() if pacing is not None else self._new_pacing()
            self._connections = _share.connections.hold()
        self._controller: ConcurrencyController = self._pacing.controller
        self._rates: tuple[RateBudget | None, RateBudget | None] = self._pacing.rates
        self._released = False

    # --- what each shell provides -------------------------------------------------------

    def _new_pacing(self) -> PacingT:
        raise NotImplementedError

    def _open(self, http_client: typing.Any) -> ConnectionsT:
        raise NotImplementedError

    # --- lifecycle ----------------------------------------------------------------------

    def with_options(self, **changes: Unpack[ClientOptions]) -> Self:
        """A copy with some settings changed, sharing this client's connections and usage.

        >>> fast = client.with_options(timeout=5, max_retries=0)  # doctest: +SKIP

        The copy is built like any client, from this one's settings with ``changes`` applied;
        it shares the connections, the usage total, and (unless a pacing setting changed:
        ``max_concurrency``, ``adaptive_concurrency``, ``rpm``, ``tpm``) the concurrency
        limit and rate budgets. Each of the two closes on its own: the shared connections
        close when the last of them is closed or collected.

        Raises:
            ConfigurationError: An unknown option or a value out of range.
            ClientClosedError: This client is closed.
        """
        self._check_open()
        options: dict[str, typing.Any] = {
            name: getattr(self.settings, name) for name in self.settings.model_fields_set
        }
        options.update(changes)
        same_pacing = all(
            options.get(n, getattr(self.settings, n)) == getattr(self.settings, n) for n in _PACING
        )
        share = Share(self._connections, self._pacing if same_pacing else None, self._usage)
        rpm_budget, tpm_budget = self._budgets
        return type(self)(
            self._api_key, rpm_budget=rpm_budget, tpm_budget=tpm_budget, _share=share, **options
        )

    def _release(self) -> tuple[bool, bool]:
        """Let go of the shared resources, once.

        Returns whether this was the last holder of the pacing and of the connections (the
        caller then closes those).
        """
        lock = getattr(self, "_released_lock", None)
        if lock is None:  # a failed __init__: nothing held
            return False, False
        with lock:
            if getattr(self, "_released", True):  # already, or never held
                return False, False
            self._released = True
        return self._pacing.release(), self._connections.release()

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

    def __repr__(self) -> str:
        endpoints = getattr(self, "endpoints", None)
        if endpoints is None:  # shown while still being built (e.g. traceback locals)
            return f"<{type(self).__name__} (not set up)>"
        return (
            f"{type(self).__name__}(base_url={endpoints.native_base!r}, "
            f"region={endpoints.region!r}, protocol={self.settings.protocol!r})"
        )

    # --- settings and usage -------------------------------------------------------------

    @property
    def concurrency_limit(self) -> int:
        """Requests allowed in flight right now (adapted to throttling; see ``_limiter``)."""
        return self._pacing.controller.limit

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
        """Tokens and estimated cost of everything the service billed so far.

        Every answered request counts once, and so does a 200 answer the client rejected and
        sent again (a cut or malformed body that still reported its usage: the service bills
        both), so this can exceed the sum of the calls' ``result.usage``, which counts only the
        answers each call kept. An attempt whose answer reports no usage (an error, a 429)
        counts nothing; one cut off before its answer came cannot be counted, though the
        service may have billed it. Copies made by ``with_options`` add to the same total.
        """
        return self._usage.total

    def reset_usage(self) -> None:
        """Start the running usage total from zero."""
        self._usage.reset()

    # --- planning and assembly (no I/O) -------------------------------------------------

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
    ) -> tuple[MultimodalCall, CallPlan]:
        """The call, and the plan to send (its requests weighed in tokens for a ``tpm``)."""
        self._check_open()
        spec = get_model_spec(model)
        items = list(inputs) if not isinstance(inputs, Sequence) else inputs
        from dashscope_embeddings.resources import multimodal

        call = multimodal.plan_multimodal_call(
            items,
            spec=spec,
            endpoints=self.endpoints,
            dimension=dimension,
            fps=fps,
            instruct=instruct,
            token_counter=self.settings.token_counter,
            extra_body=extra_body,
        )
        if self._rates[1] is None:
            return call, call
        return call, _Weighed(call, self.settings.token_counter or estimate_tokens)

    def _finish_multimodal(
        self, call: MultimodalCall, outcome: CallOutcome, on_error: OnError
    ) -> EmbeddingResult | PartialResult:
        return assemble(
            model=call.spec.name,
            spec=call.spec,
            region=self.endpoints.region,
            refs=call.refs,
            outcome=outcome,
            output_type="dense",
            on_error=on_error,
            usage=call.usage,
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


class _Weighed:
    """A multimodal call whose requests carry their estimated input tokens (for ``tpm``).

    Text at the token counter's count, media at :data:`MEDIA_TOKENS` per item.
    """

    def __init__(self, call: MultimodalCall, count: TokenCounter) -> None:
        self._call = call
        self._tokens = [
            sum(
                _content_tokens(key, value, count)
                for item in unit.contents
                for key, value in item.items()
            )
            for unit in call.units
        ]
        self.jobs = [self._weigh(job) for job in call.jobs]

    @property
    def unit_count(self) -> int:
        return self._call.unit_count

    def _weigh(self, job: Job) -> Job:
        tokens = sum(self._tokens[u] for u in job.units)
        return Job(replace(job.request, tokens=tokens), job.units)

    def build(self, units: Sequence[int]) -> Job:
        return self._weigh(self._call.build(units))

    def parser(self, job: Job) -> typing.Callable[[Answer], UnitOutput]:
        return self._call.parser(job)

    def usage(self, output: UnitOutput) -> Usage:
        return self._call.usage(output)


def _content_tokens(key: str, value: object, count: TokenCounter) -> int:
    if key == "text" and isinstance(value, str):
        return count(value)
    per_item = MEDIA_TOKENS.get(key, 0)
    return per_item * len(value) if isinstance(value, list) else per_item
