"""Result types: sparse vectors, usage with estimated cost, and embedding results."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field

__all__ = [
    "EmbeddingResult",
    "FailedInput",
    "OnError",
    "OutputType",
    "PartialResult",
    "SparseVector",
    "TextType",
    "Usage",
    "WireProtocol",
]

TextType = typing.Literal["query", "document"]
OutputType = typing.Literal["dense", "sparse", "dense&sparse"]
OnError = typing.Literal["raise", "skip"]
"""What a call does when some inputs fail: ``raise`` a PartialEmbeddingError carrying every
good vector (the default), or ``skip`` them and return a :class:`PartialResult`."""
WireProtocol = typing.Literal["native", "compatible"]
"""``native``: the DashScope endpoint (text_type, sparse, instruct). ``compatible``: the
OpenAI-compatible ``/embeddings`` endpoint (dense only, no text_type)."""


@dataclass(frozen=True)
class SparseVector:
    """A sparse vector: vocabulary ids with weights, sorted by id.

    >>> v = SparseVector(indices=(7, 42), values=(0.8, 0.3), tokens=("wind", "rain"))
    >>> v.as_dict()
    {7: 0.8, 42: 0.3}
    """

    indices: tuple[int, ...]
    values: tuple[float, ...]
    tokens: tuple[str, ...] | None = None
    """The token text of each entry, where the service returned it."""

    def __post_init__(self) -> None:
        if len(self.indices) != len(self.values):
            raise ValueError("indices and values must have the same length")
        if self.tokens is not None and len(self.tokens) != len(self.indices):
            raise ValueError("tokens must have one entry per index")

    def __len__(self) -> int:
        return len(self.indices)

    def as_dict(self) -> dict[int, float]:
        """``{index: value}``, the shape most sparse stores accept."""
        return dict(zip(self.indices, self.values, strict=True))


@dataclass(frozen=True)
class Usage:
    """Tokens billed and the estimated price, for one call or a running total.

    ``cost`` is an estimate from the registry's list prices, in ``currency`` (CNY on the
    mainland host, USD on the international ones); ``None`` where the registry has no price.
    """

    total_tokens: int = 0
    requests: int = 0
    cost: float | None = None
    currency: str | None = None

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        cost: float | None
        currency = self.currency or other.currency
        if self.requests == 0:
            cost, currency = other.cost, other.currency
        elif other.requests == 0:
            cost, currency = self.cost, self.currency
        elif self.cost is None or other.cost is None or self.currency != other.currency:
            cost = None
        else:
            cost = self.cost + other.cost
        return Usage(
            total_tokens=self.total_tokens + other.total_tokens,
            requests=self.requests + other.requests,
            cost=cost,
            currency=currency,
        )

    def __repr__(self) -> str:
        # The cost is a sum of float prices: ten significant digits drop the float noise.
        cost = "None" if self.cost is None else format(self.cost, ".10g")
        return (
            f"Usage(total_tokens={self.total_tokens!r}, requests={self.requests!r}, "
            f"cost={cost}, currency={self.currency!r})"
        )

    __str__ = __repr__


def _dense_summary(vectors: typing.Any) -> str:
    """``"2000 x 1024"`` for a list (or array) of vectors; ``None`` entries are counted."""
    if vectors is None:
        return "None"
    shape = getattr(vectors, "shape", None)
    if shape is not None:  # a numpy array
        return " x ".join(str(n) for n in shape)
    missing = sum(1 for v in vectors if v is None)
    first = next((v for v in vectors if v is not None), None)
    size = f"{len(vectors)}" + (f" ({missing} None)" if missing else "")
    return f"{size} x {len(first)}" if first is not None else f"{size} vectors"


def _sparse_summary(vectors: typing.Any) -> str:
    if vectors is None:
        return "None"
    missing = sum(1 for v in vectors if v is None)
    return f"{len(vectors)} vectors" + (f" ({missing} None)" if missing else "")


def _failed_summary(failed: typing.Mapping[int, typing.Any]) -> str:
    indices = sorted(failed)
    shown = ", ".join(str(i) for i in indices[:10])
    return f"[{shown}{f', ... ({len(indices)} in all)' if len(indices) > 10 else ''}]"


@dataclass(frozen=True)
class EmbeddingResult:
    """The embeddings of one call, in input order.

    ``embeddings`` and ``sparse_embeddings`` are always lists (no ``None`` checks for the kind
    you asked for); reading the kind a call did not ask for raises ``AttributeError`` naming
    the ``output_type`` that would have returned it.

    >>> result = client.embed_texts(["hi"], model="text-embedding-v4")  # doctest: +SKIP
    >>> result.embeddings[0][:3], result.usage.total_tokens  # doctest: +SKIP

    Attributes:
        model: The model that produced them.
        dense: Dense vectors, one per input, or ``None`` when not asked for.
        sparse: Sparse vectors, one per input, or ``None`` when not asked for.
        usage: Tokens and estimated cost of this call.
        request_ids: The service's request id of each request the call was split into.
    """

    model: str
    dense: list[list[float]] | None
    sparse: list[SparseVector] | None
    usage: Usage
    request_ids: tuple[str, ...] = field(default=())

    @property
    def embeddings(self) -> list[list[float]]:
        """Dense vectors, one per input, in input order."""
        if self.dense is None:
            raise AttributeError(
                "this result has no dense vectors: ask for output_type='dense' or 'dense&sparse'"
            )
        return self.dense

    @property
    def sparse_embeddings(self) -> list[SparseVector]:
        """Sparse vectors, one per input, in input order."""
        if self.sparse is None:
            raise AttributeError(
                "this result has no sparse vectors: ask for output_type='sparse' or "
                "'dense&sparse' (text-embedding-v3 / v4)"
            )
        return self.sparse

    def to_numpy(self) -> typing.Any:
        """The dense vectors as one float32 array of shape ``(inputs, dimension)``.

        Needs numpy (the ``numpy`` extra).
        """
        try:
            import numpy as np
        except ImportError as exc:
            raise ImportError(
                'to_numpy() needs numpy: pip install "dashscope-embeddings[numpy]"'
            ) from exc
        return np.asarray(self.embeddings, dtype=np.float32)

    def __len__(self) -> int:
        if self.dense is not None:
            return len(self.dense)
        return len(self.sparse or ())

    def __repr__(self) -> str:
        # A summary: the vectors themselves would be megabytes of text.
        return (
            f"EmbeddingResult(model={self.model!r}, dense={_dense_summary(self.dense)}, "
            f"sparse={_sparse_summary(self.sparse)}, usage={self.usage!r}, "
            f"request_ids={len(self.request_ids)})"
        )


@dataclass(frozen=True)
class FailedInput:
    """Why one input has no vector.

    Attributes:
        index: The input's position in what the caller passed.
        code: The service's error code (e.g. ``DataInspectionFailed``), or our error's name.
        message: The service's message, or ours.
        status_code: The HTTP status, where there was one.
        request_id: The service's request id of the request that failed, where known.
    """

    index: int
    code: str | None
    message: str
    status_code: int | None = None
    request_id: str | None = None

    def __str__(self) -> str:
        status = f"HTTP {self.status_code} " if self.status_code else ""
        code = f"{self.code}: " if self.code else ""
        rid = f" (request_id={self.request_id})" if self.request_id else ""
        return f"input {self.index}: {status}{code}{self.message}{rid}"


@dataclass(frozen=True)
class PartialResult:
    """The result of a call in which some inputs may have failed, in input order.

    ``embeddings[i]`` is ``None`` exactly where ``i`` is in ``failed``; never a placeholder
    vector. ``complete`` tells whether nothing failed.

    Attributes:
        model: The model that produced the vectors.
        dense: Dense vectors or ``None`` per input, or ``None`` when not asked for.
        sparse: Sparse vectors or ``None`` per input, or ``None`` when not asked for.
        failed: Caller index -> why that input has no vector.
        usage: Tokens and estimated cost of everything the call was billed for.
        request_ids: The service's request ids of the successful requests.
    """

    model: str
    dense: list[list[float] | None] | None
    sparse: list[SparseVector | None] | None
    failed: dict[int, FailedInput]
    usage: Usage
    request_ids: tuple[str, ...] = field(default=())

    @property
    def complete(self) -> bool:
        """Whether every input has its vector."""
        return not self.failed

    @property
    def embeddings(self) -> list[list[float] | None]:
        """Dense vectors per input, ``None`` where that input failed."""
        if self.dense is None:
            raise AttributeError("this result has no dense vectors (see output_type)")
        return self.dense

    @property
    def sparse_embeddings(self) -> list[SparseVector | None]:
        """Sparse vectors per input, ``None`` where that input failed."""
        if self.sparse is None:
            raise AttributeError("this result has no sparse vectors (see output_type)")
        return self.sparse

    def __len__(self) -> int:
        if self.dense is not None:
            return len(self.dense)
        return len(self.sparse or ())

    def __repr__(self) -> str:
        return (
            f"PartialResult(model={self.model!r}, dense={_dense_summary(self.dense)}, "
            f"sparse={_sparse_summary(self.sparse)}, failed={_failed_summary(self.failed)}, "
            f"usage={self.usage!r}, request_ids={len(self.request_ids)})"
        )
