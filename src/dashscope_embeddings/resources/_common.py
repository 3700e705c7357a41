"""Helpers every endpoint module shares: JSON bodies, vector checks, ordering by index."""

from __future__ import annotations

import base64
import json
import math
import struct
import typing
from collections.abc import Callable, Mapping, Sequence

from dashscope_embeddings._errors import (
    APIError,
    APIStatusError,
    NotFoundError,
    PartialEmbeddingError,
    ResponseValidationError,
)
from dashscope_embeddings._fanout import CallOutcome, UnitOutput
from dashscope_embeddings._registry import ModelSpec, describe_unknown
from dashscope_embeddings._types import (
    EmbeddingResult,
    FailedInput,
    OnError,
    OutputType,
    PartialResult,
    SparseVector,
    Usage,
)
from dashscope_embeddings._usage import usage_for

__all__ = [
    "as_dict",
    "assemble",
    "check_dimensions",
    "dumps",
    "malformed",
    "merge_body",
    "parse_vector",
    "place_by_index",
    "readable_tokens",
    "total_tokens",
]

_NUMBER_TYPES = frozenset({float, int})  # exact types: a JSON true/false is not a number


def dumps(body: Mapping[str, typing.Any]) -> bytes:
    """Compact UTF-8 JSON, as the service's own SDK sends it (non-ASCII kept as is).

    Raises:
        ValueError: For text that cannot be encoded (a lone surrogate), naming where.
    """
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def merge_body(
    body: dict[str, typing.Any], extra: Mapping[str, typing.Any] | None
) -> dict[str, typing.Any]:
    """``body`` with ``extra`` merged in: nested objects key by key, anything else replaced."""
    if not extra:
        return body
    merged = dict(body)
    for key, value in extra.items():
        current = merged.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            merged[key] = merge_body(current, value)
        else:
            merged[key] = value
    return merged


def malformed(message: str, request_id: str | None) -> ResponseValidationError:
    """The error of a 200 answer that is not a whole, valid result."""
    return ResponseValidationError(f"malformed response: {message}", request_id=request_id)


def as_dict(payload: object, where: str, request_id: str | None) -> dict[str, typing.Any]:
    """``payload`` if it is a JSON object, else a malformed-response error naming ``where``."""
    if not isinstance(payload, dict):
        raise malformed(f"{where} is not an object", request_id)
    return payload


def parse_vector(raw: object, position: int, request_id: str | None) -> list[float]:
    """A dense vector from a JSON number list or base64 little-endian float32; all finite."""
    if isinstance(raw, str):
        try:
            data = base64.b64decode(raw, validate=True)
        except ValueError:
            message = f"embedding {position} is a string but not base64"
            raise malformed(message, request_id) from None
        if len(data) % 4:
            raise malformed(f"embedding {position} has a partial float32", request_id)
        vector = list(struct.unpack(f"<{len(data) // 4}f", data))
    # set(map(type, ...)) runs in C: a tenth of the cost of an isinstance() per element.
    elif isinstance(raw, list) and set(map(type, raw)) <= _NUMBER_TYPES:
        vector = raw
    else:
        raise malformed(f"embedding {position} is not a list of numbers", request_id)
    # One C-level sum finds NaN and Infinity (it is NaN or infinite iff an element is, short of
    # an overflow, which is checked element by element).
    if not math.isfinite(sum(vector)) and not all(map(math.isfinite, vector)):
        raise malformed(f"embedding {position} holds NaN or Infinity", request_id)
    return vector


def place_by_index(
    items: object, count: int, index_key: str, request_id: str | None
) -> list[dict[str, typing.Any]]:
    """Put answer items in input order by their index; every index exactly once."""
    if not isinstance(items, list):
        raise malformed("the embeddings are not a list", request_id)
    if len(items) != count:
        raise malformed(f"{len(items)} embeddings for {count} inputs", request_id)
    placed: list[dict[str, typing.Any] | None] = [None] * count
    for item in items:
        item = as_dict(item, "an embedding entry", request_id)
        index = item.get(index_key)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
            raise malformed(f"{index_key} {index!r} is not in 0..{count - 1}", request_id)
        if placed[index] is not None:
            raise malformed(f"{index_key} {index} appears twice", request_id)
        placed[index] = item
    return typing.cast("list[dict[str, typing.Any]]", placed)


def check_dimensions(
    dense: list[list[float]], expected: int | None, request_id: str | None
) -> None:
    """All vectors one size, the expected one when known, none empty."""
    sizes = {len(v) for v in dense}
    if len(sizes) > 1:
        raise malformed(f"embeddings of different sizes {sorted(sizes)}", request_id)
    if expected is not None and sizes and sizes != {expected}:
        raise malformed(f"embeddings have {sizes.pop()} values, expected {expected}", request_id)
    if 0 in sizes:
        raise malformed("an embedding is empty", request_id)


def total_tokens(usage: object, request_id: str | None) -> int:
    """``usage.total_tokens`` (or ``prompt_tokens``), 0 when absent."""
    if usage is None:
        return 0
    usage = as_dict(usage, "usage", request_id)
    value = usage.get("total_tokens", usage.get("prompt_tokens", 0))
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def readable_tokens(payload: object, names: Sequence[str]) -> int | None:
    """The first of ``names`` in a body's ``usage`` that is an integer; ``None`` if none is.

    Never raises: it reads what a rejected answer billed (see ``note_billed``).
    """
    usage = payload.get("usage") if isinstance(payload, dict) else None
    if not isinstance(usage, dict):
        return None
    for name in names:
        value = usage.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _combine_dense(parts: list[tuple[list[float], float]]) -> list[float]:
    """Token-weighted mean of chunk vectors, re-normalised to unit length."""
    total = sum(weight for _, weight in parts)
    size = len(parts[0][0])
    mean = [0.0] * size
    for vector, weight in parts:
        share = weight / total
        for i, value in enumerate(vector):
            mean[i] += value * share
    norm = math.sqrt(sum(v * v for v in mean)) or 1.0
    return [v / norm for v in mean]


def _combine_sparse(parts: list[tuple[SparseVector, float]]) -> SparseVector:
    """Token-weighted mean of chunk sparse vectors (indices merged, values averaged)."""
    total = sum(weight for _, weight in parts)
    values: dict[int, float] = {}
    tokens: dict[int, str] = {}
    for vector, weight in parts:
        for position, (index, value) in enumerate(zip(vector.indices, vector.values, strict=True)):
            values[index] = values.get(index, 0.0) + value * weight / total
            if vector.tokens is not None:
                tokens[index] = vector.tokens[position]
    order = sorted(values)
    return SparseVector(
        indices=tuple(order),
        values=tuple(values[i] for i in order),
        tokens=tuple(tokens[i] for i in order) if len(tokens) == len(order) else None,
    )


def _failed(index: int, error: BaseException) -> FailedInput:
    if isinstance(error, APIStatusError):
        return FailedInput(index, error.code, error.message, error.status_code, error.request_id)
    if isinstance(error, APIError):
        return FailedInput(index, type(error).__name__, error.message, None, error.request_id)
    return FailedInput(index, type(error).__name__, str(error))


def assemble(
    *,
    model: str,
    spec: ModelSpec,
    region: str,
    refs: Sequence[Sequence[tuple[int, float]]],
    outcome: CallOutcome,
    output_type: OutputType,
    on_error: OnError,
    usage: Callable[[UnitOutput], Usage] | None = None,
) -> EmbeddingResult | PartialResult:
    """Turn a call's outcome into its result, in the caller's order.

    Returns an :class:`EmbeddingResult` when every input has its vector; with failed inputs,
    raises :class:`PartialEmbeddingError` (``on_error="raise"``) or returns the
    :class:`PartialResult` (``on_error="skip"``). When the call was stopped by an error, that
    error is raised, carrying the finished part in ``.partial``.
    """
    want_dense = output_type != "sparse"
    want_sparse = output_type != "dense"
    unit_dense: dict[int, list[float]] = {}
    unit_sparse: dict[int, SparseVector] = {}
    tokens = 0
    outputs = sorted(outcome.outputs, key=lambda o: o.units[0] if o.units else -1)
    for output in outputs:
        tokens += output.total_tokens
        for position, unit in enumerate(output.units):
            if output.dense is not None:
                unit_dense[unit] = output.dense[position]
            if output.sparse is not None:
                unit_sparse[unit] = output.sparse[position]
    if usage is not None:  # priced per request by the endpoint (e.g. image tokens apart)
        total = Usage()
        for output in outputs:
            total = total + usage(output)
        usage_total = total
    else:
        usage_total = usage_for(spec, tokens, len(outputs), region)
    request_ids = tuple(o.request_id or "" for o in outputs)
    dense: list[list[float] | None] = []
    sparse: list[SparseVector | None] = []
    failed: dict[int, FailedInput] = {}
    first_error: tuple[int, APIError] | None = None
    for index, parts in enumerate(refs):
        error = next((outcome.failures[u] for u, _ in parts if u in outcome.failures), None)
        done = all(u in (unit_dense if want_dense else unit_sparse) for u, _ in parts)
        if error is not None:
            failed[index] = _failed(index, error)
            first_error = first_error or (index, error)
        if error is not None or not done:
            dense.append(None)
            sparse.append(None)
            continue
        if want_dense:
            vectors = [(unit_dense[u], w) for u, w in parts]
            dense.append(vectors[0][0] if len(vectors) == 1 else _combine_dense(vectors))
        if want_sparse:
            svectors = [(unit_sparse[u], w) for u, w in parts]
            sparse.append(svectors[0][0] if len(svectors) == 1 else _combine_sparse(svectors))
    partial = PartialResult(
        model=model,
        dense=dense if want_dense else None,
        sparse=sparse if want_sparse else None,
        failed=failed,
        usage=usage_total,
        request_ids=request_ids,
    )
    if outcome.fatal is not None:
        if isinstance(outcome.fatal, APIError) and outputs:
            outcome.fatal.partial = partial
        if isinstance(outcome.fatal, NotFoundError) and not spec.known:
            outcome.fatal.message += f" ({describe_unknown(spec.name)})"
            outcome.fatal.args = (outcome.fatal.message,)
        raise outcome.fatal
    if on_error == "skip":  # always the report type, whole or not (``.complete`` tells)
        return partial
    if failed:
        if len(failed) < len(refs) or first_error is None:
            raise PartialEmbeddingError(partial)
        # Nothing was embedded: raise the service's own error (naming the caller's input),
        # with every failure listed on it.
        index, error = first_error
        if len(refs) > 1:
            error.message = f"input {index}: {error.message}"
            error.args = (error.message,)
        error.partial = partial
        raise error
    if any(v is None for v in (dense if want_dense else sparse)):  # pragma: no cover - a bug
        raise ResponseValidationError("internal error: an input got no vector and no failure")
    return EmbeddingResult(
        model=model,
        dense=typing.cast("list[list[float]]", dense) if want_dense else None,
        sparse=typing.cast("list[SparseVector]", sparse) if want_sparse else None,
        usage=usage_total,
        request_ids=request_ids,
    )
