"""The Ray Data embedder: one core client per actor, Ray batches in, the same batches out."""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import typing
import urllib.request
import warnings
from collections.abc import Mapping

import httpx
import ray
from pydantic import SecretStr

from dashscope_embeddings._client import DashScopeClient
from dashscope_embeddings._config import resolve_api_key, resolve_endpoints
from dashscope_embeddings._errors import ConfigurationError, InvalidInputError
from dashscope_embeddings._limiter import RateBudget, RateWindow
from dashscope_embeddings._options import ClientOptions, ClientSettings
from dashscope_embeddings._registry import get_model_spec
from dashscope_embeddings._types import (
    FailedInput,
    OnError,
    OutputType,
    PartialResult,
    SparseVector,
    TextType,
)
from dashscope_embeddings.ray._budgets import FleetRate, PermitTransport
from dashscope_embeddings.ray._columns import (
    add_columns,
    batch_format,
    column_names,
    column_values,
    dense_column,
    sparse_column,
    string_column,
)
from dashscope_embeddings.ray._fleet import account_key
from dashscope_embeddings.ray._quota import FleetQuota, FleetQuotaError, QuotaLimits
from dashscope_embeddings.ray._rejected import (
    RejectedRowsError,
    reason,
    rejected_rows_error,
    text_problem,
)
from dashscope_embeddings.resources.text import LongText

if typing.TYPE_CHECKING:  # typing.Unpack is 3.11+; only the type checker needs it
    from typing_extensions import Unpack

__all__ = ["DashScopeEmbedder"]

logger = logging.getLogger("dashscope_embeddings.ray")

_FLEET_OPTIONS = ("rpm", "tpm", "max_concurrency")
_DEFAULT_TIMEOUT_S = typing.cast(float, ClientSettings.model_fields["timeout"].default)
_LEASE_MARGIN_S = 30.0  # a permit outlives its attempt's deadline by this much
_LEASE_NO_DEADLINE_S = 600.0


def _env_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (httpx skips it for our own transport)."""
    target = httpx.URL(url)
    proxies = urllib.request.getproxies()
    if not proxies or urllib.request.proxy_bypass(target.host):
        return None
    return proxies.get(target.scheme) or proxies.get("all")


class DashScopeEmbedder:
    """Embeds a text column of Ray Data batches; for ``Dataset.map_batches`` with actors.

    >>> ds = ray.data.read_parquet("corpus/")  # doctest: +SKIP
    >>> ds = ds.map_batches(
    ...     DashScopeEmbedder,
    ...     fn_constructor_kwargs={"model": "text-embedding-v4", "dimension": 512,
    ...                            "key_column": "id", "rpm": 1800, "max_concurrency": 16},
    ...     compute=ray.data.ActorPoolStrategy(size=4),
    ...     batch_size=256, batch_format="pyarrow", num_cpus=0.25,
    ... )
    >>> ds.write_parquet("vectors/")  # doctest: +SKIP

    Each actor builds one :class:`~dashscope_embeddings.DashScopeClient` in ``__init__`` and
    sends a batch's texts through it side by side. The answer is the batch in the same format
    (numpy, pandas or pyarrow), same rows in the same order, every column kept, plus the vector
    column (see ``dashscope_embeddings.ray._columns`` for the types). Keep the dataset's order
    with ``DataContext.get_current().execution_options.preserve_order = True``.

    The actors of one account share one adaptive concurrency limit through the fleet quota
    named ``quota_name`` (a 429 seen by any of them steps the whole fleet back); ``rpm``,
    ``tpm`` and ``max_concurrency``, when given, are the account's and cap it (see the package
    docstring). ``quota_name=None`` makes the limits each actor's own.

    Args:
        model: The embedding model.
        text_column: The column holding the texts.
        output_column: The dense vector column added (replaced if present).
        dimension: Output size; ``None`` for the model's default.
        text_type: ``document`` (stored chunks; not sent on the compatible protocol, which
            has no such field) or ``query``; ``None`` sends none.
        output_type: ``dense``, ``sparse`` or ``dense&sparse`` (v3/v4).
        on_error: A row the service rejects, or with no text: ``raise`` (default) fails the
            batch with :class:`RejectedRowsError` naming the rows; ``skip`` gives it a null
            vector and the reason in ``error_column``.
        long_text: A text over the model's token limit: ``error``, ``truncate`` or ``chunk``.
        key_column: A column naming rows in errors (an id); without it rows are named by their
            position in the Ray batch.
        error_column: With ``on_error="skip"``: the reason column (default
            ``<output_column>_error``, null where the row has its vector).
        sparse_column: The sparse vector column (default ``<output_column>_sparse``).
        quota_name: The fleet quota shared by actors (its coordinator holds each account's
            adaptive limit and the declared limits); ``None``: per-actor limits.
        rate_window_s: Length of the ``rpm`` / ``tpm`` window in seconds (60, the service's;
            shorter only against an emulator with a short window).
        api_key: The key; by default ``DASHSCOPE_API_KEY`` in the actor's environment (then
            the key never travels in a pickle). An explicit key is kept as a secret.
        **options: Any other option of the core client (``base_url``, ``region``, ``timeout``,
            ``max_retries``, ``adaptive_concurrency``...).

    Raises:
        ConfigurationError: A bad option, column name or value.
    """

    def __init__(
        self,
        model: str = "text-embedding-v4",
        *,
        text_column: str = "text",
        output_column: str = "embedding",
        dimension: int | None = None,
        text_type: TextType | None = "document",
        output_type: OutputType = "dense",
        on_error: OnError = "raise",
        long_text: LongText = "error",
        key_column: str | None = None,
        error_column: str | None = None,
        sparse_column: str | None = None,
        quota_name: str | None = "default",
        rate_window_s: float = 60.0,
        api_key: str | SecretStr | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        if output_type not in ("dense", "sparse", "dense&sparse"):
            raise ConfigurationError(
                f"output_type must be 'dense', 'sparse' or 'dense&sparse', got {output_type!r}"
            )
        if on_error not in ("raise", "skip"):
            raise ConfigurationError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if long_text not in typing.get_args(LongText):
            raise ConfigurationError(
                f"long_text must be 'error', 'truncate' or 'chunk', got {long_text!r}"
            )
        if not rate_window_s > 0:
            raise ConfigurationError(f"rate_window_s must be > 0 seconds, got {rate_window_s!r}")
        self.model = model
        self.text_column = text_column
        self.output_column = output_column
        self.sparse_column = sparse_column or f"{output_column}_sparse"
        self.error_column = error_column or f"{output_column}_error"
        added = [
            *([output_column] if output_type != "sparse" else []),
            *([self.sparse_column] if output_type != "dense" else []),
            *([self.error_column] if on_error == "skip" else []),
        ]
        if text_column in added or len(set(added)) < len(added):
            raise ConfigurationError(
                f"column names must differ: text {text_column!r}, added {added}"
            )
        self.dimension = dimension
        # The compatible endpoint has no text_type (it embeds every text as a document).
        compatible = options.get("protocol") == "compatible"
        self.text_type: TextType | None = (
            None if compatible and text_type == "document" else text_type
        )
        self.output_type: OutputType = output_type
        self.on_error: OnError = on_error
        self.long_text: LongText = long_text
        self.key_column = key_column
        self.quota_name = quota_name
        self.rate_window_s = rate_window_s
        self._api_key = SecretStr(api_key) if isinstance(api_key, str) else api_key
        del api_key  # never a plain local in a frame a traceback could show
        self._options: dict[str, typing.Any] = dict(options)
        self._client: DashScopeClient | None = None
        self._http: httpx.Client | None = None
        self._quota: FleetQuota | None = None
        self._lock = threading.Lock()  # Ray may run several batches of one actor at once
        self._connect()

    # --- set-up ------------------------------------------------------------------------------

    def _connect(self) -> DashScopeClient:
        options = dict(self._options)
        fleet = {name: options.pop(name) for name in _FLEET_OPTIONS if name in options}
        declared = any(v is not None for v in fleet.values())
        rates: tuple[RateBudget | None, RateBudget | None] = (None, None)
        if self.quota_name is None or not ray.is_initialized():
            if declared and self.quota_name is not None:
                logger.info(
                    "Ray is not initialised in this process: rpm / tpm / max_concurrency apply "
                    "to this process alone, not to a fleet"
                )
            options.update(fleet)
        else:
            rates = self._join_fleet(self.quota_name, fleet if declared else None, options)
        self._client = DashScopeClient(
            self._api_key,
            http_client=self._http,
            rpm_budget=rates[0],
            tpm_budget=rates[1],
            **typing.cast(ClientOptions, options),
        )
        return self._client

    def _join_fleet(
        self, name: str, fleet: dict[str, typing.Any] | None, options: dict[str, typing.Any]
    ) -> tuple[RateBudget | None, RateBudget | None]:
        """Connect to the quota ``name``; the rate budgets to give the client.

        ``fleet``: the declared ``rpm`` / ``tpm`` / ``max_concurrency`` (``None``: none; the
        fleet's limits are left as they are). Sets ``self._http`` (every attempt under a
        permit of this account's fleet-wide adaptive limit) and fills ``options``.
        """
        limits = None
        if fleet is not None:
            limits = QuotaLimits(
                rpm=fleet.get("rpm"),
                tpm=fleet.get("tpm"),
                max_concurrency=fleet.get("max_concurrency"),
                window_s=self.rate_window_s,
            )
        try:
            self._quota = FleetQuota.connect(name, limits)
        except FleetQuotaError as exc:
            if limits is not None:
                raise
            logger.warning(  # nothing was declared: the fleet's limit is a help, not a promise
                "%s; this process paces itself with its own adaptive limiter", exc
            )
            return None, None
        rpm_budget: RateBudget | None = None
        tpm_budget: RateBudget | None = None
        if limits is not None:
            fallback = (
                RateWindow(limits.rpm, window_s=limits.window_s) if limits.rpm else None,
                RateWindow(limits.tpm, window_s=limits.window_s) if limits.tpm else None,
            )
            if limits.tpm is not None:  # one round trip reserves the request and its tokens
                tpm_budget = FleetRate(self._quota, tokens=True, fallback=fallback)
            elif limits.rpm is not None:
                rpm_budget = FleetRate(self._quota, tokens=False, fallback=fallback)
            if limits.max_concurrency is not None:
                # Twice the fleet's cap: requests queue at the coordinator, so a permit given
                # back goes to the next request at once (one message, not a round trip later).
                options["max_concurrency"] = min(1024, 2 * limits.max_concurrency)
        adaptive = options.get("adaptive_concurrency", True) is not False
        if adaptive or (limits is not None and limits.max_concurrency is not None):
            options.setdefault("timeout", _DEFAULT_TIMEOUT_S)  # else httpx's would hold
            self._http = self._permit_client(options, adaptive=adaptive)
        return rpm_budget, tpm_budget

    def _permit_client(self, options: Mapping[str, typing.Any], *, adaptive: bool) -> httpx.Client:
        assert self._quota is not None
        with warnings.catch_warnings():  # the client itself warns about these options
            warnings.simplefilter("ignore")
            endpoints = resolve_endpoints(
                region=options.get("region"),
                base_url=options.get("base_url"),
                workspace=options.get("workspace"),
            )
        timeout = options.get("timeout")
        lease_s = (
            float(timeout) + _LEASE_MARGIN_S
            if isinstance(timeout, (int, float))
            else _LEASE_NO_DEADLINE_S
        )
        account = account_key(resolve_api_key(self._api_key), endpoints.native_base, self.model)
        inner = httpx.HTTPTransport(
            limits=httpx.Limits(
                max_keepalive_connections=max(20, options.get("max_concurrency", 0))
            ),
            proxy=_env_proxy(endpoints.native_base),
        )
        transport = PermitTransport(
            inner, self._quota, lease_s=lease_s, account=account, adaptive=adaptive
        )
        return httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(None),  # the core applies each attempt's deadline
        )

    @property
    def client(self) -> DashScopeClient:
        """This process's client (made again after unpickling, on first use)."""
        client = self._client
        if client is not None:
            return client
        with self._lock:
            return self._client if self._client is not None else self._connect()

    def close(self) -> None:
        """Close the client and its connections (Ray does it when the actor ends)."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._http is not None:
            self._http.close()
            self._http = None

    def __del__(self) -> None:
        # An embedder made outside Ray Data is rarely closed by hand: its own connections
        # (the fleet's permit transport) go with it, as the core client's do.
        http = self.__dict__.get("_http")
        if http is not None:
            try:  # noqa: SIM105 (this may run at interpreter exit)
                http.close()
            except Exception:  # best effort during garbage collection
                pass

    def __getstate__(self) -> dict[str, typing.Any]:
        # Never the client, its connections or the quota handle: each process makes its own.
        state = dict(self.__dict__)
        state.update(_client=None, _http=None, _quota=None)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, typing.Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        fleet = ", ".join(
            f"{n}={self._options[n]}" for n in _FLEET_OPTIONS if self._options.get(n) is not None
        )
        quota = f", quota_name={self.quota_name!r}" + (f" ({fleet})" if fleet else "")
        return (
            f"DashScopeEmbedder(model={self.model!r}, text_column={self.text_column!r}, "
            f"output_column={self.output_column!r}, output_type={self.output_type!r}, "
            f"on_error={self.on_error!r}{quota})"
        )

    # --- a batch -----------------------------------------------------------------------------

    def __call__(self, batch: typing.Any) -> typing.Any:
        """Embed one Ray batch; the same batch (format, rows, order) with the new columns.

        Raises:
            RejectedRowsError: ``on_error="raise"`` and some rows got no vector.
            KeyError: The text or key column is not in the batch.
            TypeError: Not one of Ray's batch formats.
            APIError: A call that failed as a whole (bad key, retries spent...).
        """
        fmt = batch_format(batch)
        texts = column_values(batch, fmt, self.text_column)
        if self.key_column is not None and self.key_column not in column_names(batch, fmt):
            raise KeyError(
                f"key_column {self.key_column!r} is not in this Ray batch (columns: "
                f"{', '.join(column_names(batch, fmt))})"
            )
        rows = len(texts)
        failed: dict[int, FailedInput] = {}
        to_send: list[int] = []
        for row, value in enumerate(texts):
            problem = text_problem(value)
            if problem is None:
                to_send.append(row)
            else:
                failed[row] = FailedInput(index=row, code="InvalidInput", message=problem)
        dense: list[list[float] | None] = [None] * rows
        sparse: list[SparseVector | None] = [None] * rows
        self._embed(texts, to_send, dense, sparse, failed)
        if failed and self.on_error == "raise":
            raise self._rejected(batch, fmt, failed, rows)
        if failed:
            logger.warning(
                "%d of %d rows of a Ray batch got no vector (null %r, reason in %r)",
                len(failed),
                rows,
                self.output_column,
                self.error_column,
            )
        columns: dict[str, typing.Any] = {}
        if self.output_type != "sparse":
            columns[self.output_column] = dense_column(
                dense, self._dimension(dense), arrow=fmt == "pyarrow" or self.on_error == "skip"
            )
        if self.output_type != "dense":
            columns[self.sparse_column] = sparse_column(sparse)
        if self.on_error == "skip":
            columns[self.error_column] = string_column(
                [reason(failed[r]) if r in failed else None for r in range(rows)]
            )
        return add_columns(batch, fmt, columns)

    def _embed(
        self,
        texts: list[object],
        rows: list[int],
        dense: list[list[float] | None],
        sparse: list[SparseVector | None],
        failed: dict[int, FailedInput],
    ) -> None:
        """Embed ``texts[rows]`` into ``dense`` / ``sparse``; record each failure by row."""
        pending = list(rows)
        while pending:
            try:
                result = self.client.embed_texts(
                    [typing.cast(str, texts[row]) for row in pending],
                    model=self.model,
                    dimension=self.dimension,
                    text_type=self.text_type,
                    output_type=self.output_type,
                    long_text=self.long_text,
                    on_error="skip",
                )
            except InvalidInputError as exc:  # refused before sending: drop that row, go on
                if exc.index is None or not 0 <= exc.index < len(pending):
                    raise
                row = pending.pop(exc.index)
                message = re.sub(r"^input \d+ ", "the text ", str(exc))
                failed[row] = FailedInput(index=row, code="InvalidInput", message=message)
                continue
            failures = result.failed if isinstance(result, PartialResult) else {}
            for position, row in enumerate(pending):
                failure = failures.get(position)
                if failure is not None:
                    failed[row] = dataclasses.replace(failure, index=row)
                    continue
                if result.dense is not None:
                    dense[row] = result.dense[position]
                if result.sparse is not None:
                    sparse[row] = result.sparse[position]
            return

    def _dimension(self, dense: list[list[float] | None]) -> int:
        for vector in dense:
            if vector is not None:
                return len(vector)
        size = self.dimension or get_model_spec(self.model).default_dimension
        if size is None:
            raise ConfigurationError(
                f"no row of this Ray batch got a vector and {self.model}'s output size is not "
                "known: pass dimension= so the vector column keeps one type"
            )
        return size

    def _rejected(
        self, batch: typing.Any, fmt: typing.Any, failed: dict[int, FailedInput], rows: int
    ) -> RejectedRowsError:
        keys: dict[int, object] = {}
        if self.key_column is not None:
            values = column_values(batch, fmt, self.key_column)
            keys = {row: values[row] for row in failed}
        return rejected_rows_error(
            failed,
            rows=rows,
            keys=keys,
            key_column=self.key_column,
            columns=(self.output_column, self.error_column),
        )
