"""Finished dense vectors: their packed and JSON forms, a shared cache, the answer order.

Finished dense vectors are kept in a bounded LRU cache shared by every emulator of the
process, keyed on everything a vector depends on (model, dimension, text, text type and the
instruction when it applies), together with their JSON text, so repeated texts cost neither
hashing nor float formatting. Texts are analysed by :mod:`._lexical` (short texts through a
bounded cache too).
"""

from __future__ import annotations

import base64
import functools
import random
import struct
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from dashscope_embeddings.emulator import _lexical

__all__ = [
    "VECTOR_CACHE",
    "DenseVector",
    "VectorCache",
    "analyze_text",
    "response_order",
    "vector_json",
]

# Floats kept in the vector cache: 2,048 vectors of 1,024 (about 12 bytes per value with the
# JSON text, so some 25 MB when full).
_VECTOR_CACHE_VALUES = 1 << 21
_ANALYSIS_CACHE_SIZE = 16_384
_ANALYSIS_CACHE_MAX_CHARS = 4_096  # longer texts are analysed every time (bounded memory)


class DenseVector:
    """A finished dense vector: little-endian float32 bytes and, once needed, its JSON text.

    The values are float32-representable (see :func:`._lexical.dense_vector`), so 4 bytes
    each hold them exactly; base64 answers are these bytes encoded.
    """

    __slots__ = ("_json", "packed", "size")

    def __init__(self, values: Sequence[float], *, as_json: bool = False) -> None:
        self.size = len(values)
        self.packed = struct.pack(f"<{self.size}f", *values)
        self._json = vector_json(values) if as_json else None

    @property
    def values(self) -> tuple[float, ...]:
        """The values as Python floats (equal to the emulator's float32 values)."""
        return struct.unpack(f"<{self.size}f", self.packed)

    def base64(self) -> str:
        """The vector as OpenAI's ``encoding_format=base64`` (little-endian float32)."""
        return base64.b64encode(self.packed).decode("ascii")

    def json(self) -> str:
        """The vector as compact JSON, exactly as ``json.dumps`` writes it.

        Most values of a lexical vector are zero: writing ``0.0`` without formatting them
        halves the cost. The zeros are all positive (bucket sums of non-zero terms are never
        -0.0), and ``repr`` is what ``json`` uses for a finite float. Computed when first
        needed (or at once, for a vector first asked for as floats).
        """
        text = self._json
        if text is None:  # computed at most a few times (a benign race between threads)
            text = self._json = vector_json(self.values)
        return text


def vector_json(values: Sequence[float]) -> str:
    """Compact JSON of finite floats, as ``json.dumps``; zeros are written without formatting."""
    return "[" + ",".join([repr(value) if value else "0.0" for value in values]) + "]"


class VectorCache:
    """A bounded LRU of finished vectors, shared by every emulator thread of the process."""

    def __init__(self, max_values: int) -> None:
        self._max_values = max_values
        self._values = 0
        self._entries: OrderedDict[tuple[Any, ...], DenseVector] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> DenseVector | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: tuple[Any, ...], vector: DenseVector) -> None:
        if vector.size > self._max_values:
            return
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._values -= previous.size
            self._entries[key] = vector
            self._values += vector.size
            while self._values > self._max_values:
                _, evicted = self._entries.popitem(last=False)
                self._values -= evicted.size

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._values = 0


VECTOR_CACHE = VectorCache(_VECTOR_CACHE_VALUES)
"""The cache every emulator of the process shares."""


@functools.lru_cache(maxsize=_ANALYSIS_CACHE_SIZE)
def _analyze_cached(text: str) -> _lexical.Analysis:
    return _lexical.analyze(text)


def analyze_text(text: str) -> _lexical.Analysis:
    """The lexical analysis of ``text`` (cached for short texts)."""
    if len(text) <= _ANALYSIS_CACHE_MAX_CHARS:
        return _analyze_cached(text)
    return _lexical.analyze(text)


def response_order(n: int, seed: int, shuffle: bool) -> list[int]:
    """Deterministic non-identity permutation (for n >= 2): clients must sort by index."""
    indices = list(range(n))
    if shuffle and n > 1:
        random.Random(f"{seed}:{n}").shuffle(indices)
        if indices == sorted(indices):
            indices.reverse()
    return indices
