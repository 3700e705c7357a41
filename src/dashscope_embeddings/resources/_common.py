"""Helpers every endpoint module shares: JSON bodies, vector checks, ordering by index."""

from __future__ import annotations

import base64
import json
import math
import struct
import typing
from collections.abc import Mapping

from dashscope_embeddings._errors import ResponseValidationError

__all__ = [
    "as_dict",
    "check_dimensions",
    "dumps",
    "malformed",
    "merge_body",
    "parse_vector",
    "place_by_index",
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
