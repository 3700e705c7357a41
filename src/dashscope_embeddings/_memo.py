"""The hand-off between the dense and the sparse half of one ``dense&sparse`` request.

Hybrid stores (Qdrant, Milvus) ask a dense object and a sparse object for the same texts, one
after the other. text-embedding-v3/v4 return both kinds from ONE request
(``output_type="dense&sparse"``), so the half asked first asks for both and leaves the other
half here; its sibling then takes it instead of paying for the text again.

It is a hand-off, not a cache:

* an entry is served once (taking it removes it), and only to the other half: a dense call
  never reads a dense entry it stored itself;
* keys are ``(half, model, dimension, text_type, instruct, extra parameters, text)``, so a query
  vector (``text_type="query"``, with ``instruct``) is never served for a document, nor the
  reverse, nor a vector made with other settings;
* it is bounded by entries and by bytes (the stored numbers and texts, estimated); the oldest
  entries go first, and an entry larger than the byte bound alone is not kept. Memory therefore
  does not grow with the corpus: a store that asks for all dense vectors of a large add before
  any sparse one (LangChain's Milvus) gets the newest hand-offs and pays again for the rest.

Values are kept as ``array('d')`` / ``array('q')`` (the service's numbers exactly, 8 bytes
each). One lock guards the table and is held only for table operations, never across a
request, so the memo is safe from threads and from coroutines alike. A pickled or deep-copied
memo comes back empty, with its bounds.
"""

from __future__ import annotations

import sys
import threading
import typing
from array import array
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from dashscope_embeddings._types import EmbeddingResult, OutputType, SparseVector

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_ENTRIES",
    "Half",
    "Handoff",
    "HalvesMemo",
    "MemoStats",
]

DEFAULT_MAX_ENTRIES = 4096
"""Hand-offs kept at most: a LlamaIndex insert batch (2048 nodes) fits twice."""
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
"""Estimated bytes kept at most: about 4,000 dense vectors of 1,024 numbers."""

# Per-entry bookkeeping (table slot, key tuple, record) on top of the arrays and the text.
_ENTRY_OVERHEAD = 200

Half = typing.Literal["dense", "sparse"]
"""Which half of a ``dense&sparse`` answer."""
Settings = tuple[Hashable, ...]
"""What a vector depends on besides its text: model, dimension, text_type, instruct, extras."""

_Key = tuple[str, Settings, str]
_Stored = typing.Union["array[float]", "tuple[array[int], array[float]]"]


@dataclass(frozen=True)
class MemoStats:
    """A snapshot of a memo's counters.

    Attributes:
        entries: Hand-offs held now.
        nbytes: Their estimated size in bytes.
        hits: Vectors served from the memo (requests saved).
        misses: Vectors asked for and not found (they were fetched).
        evictions: Hand-offs dropped for the bounds before being taken.
    """

    entries: int
    nbytes: int
    hits: int
    misses: int
    evictions: int


def _size(text: str, stored: _Stored) -> int:
    arrays = stored if isinstance(stored, tuple) else (stored,)
    return _ENTRY_OVERHEAD + sys.getsizeof(text) + sum(sys.getsizeof(a) for a in arrays)


class HalvesMemo:
    """A bounded, thread-safe hand-off table shared by a dense object and its sparse siblings.

    >>> memo = HalvesMemo(max_entries=2, max_bytes=1 << 20)
    >>> memo.put("sparse", ("text-embedding-v4", None, "document", None, None), "hi",
    ...          SparseVector((3,), (0.5,)))
    >>> memo.take("sparse", ("text-embedding-v4", None, "document", None, None), "hi")
    SparseVector(indices=(3,), values=(0.5,), tokens=None)
    >>> len(memo)  # served once
    0

    Args:
        max_entries: Hand-offs kept at most (>= 1).
        max_bytes: Estimated bytes kept at most (>= 1).
    """

    def __init__(
        self, *, max_entries: int = DEFAULT_MAX_ENTRIES, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError(
                f"max_entries and max_bytes must be >= 1, got {max_entries} and {max_bytes}"
            )
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._table: OrderedDict[_Key, tuple[_Stored, int]] = OrderedDict()
        self._nbytes = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0

    # --- pickling and copies: an empty memo with the same bounds -------------------------------

    def __getstate__(self) -> dict[str, int]:
        return {"max_entries": self.max_entries, "max_bytes": self.max_bytes}

    def __setstate__(self, state: dict[str, int]) -> None:
        self.__init__(max_entries=state["max_entries"], max_bytes=state["max_bytes"])  # type: ignore[misc]

    def __deepcopy__(self, memo: dict[int, object]) -> HalvesMemo:
        return HalvesMemo(max_entries=self.max_entries, max_bytes=self.max_bytes)

    # --- table ------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._table)

    @property
    def nbytes(self) -> int:
        """Estimated bytes held now (numbers, texts and bookkeeping)."""
        return self._nbytes

    @property
    def stats(self) -> MemoStats:
        """Entries, bytes, hits, misses and evictions so far."""
        with self._lock:
            return MemoStats(
                len(self._table), self._nbytes, self._hits, self._misses, self._evictions
            )

    def clear(self) -> None:
        """Drop every hand-off (the counters stay)."""
        with self._lock:
            self._table.clear()
            self._nbytes = 0

    def put(
        self, half: Half, settings: Settings, text: str, vector: list[float] | SparseVector
    ) -> None:
        """Keep ``vector`` (the ``half`` of ``text`` under ``settings``) for the other half."""
        self.put_many(half, settings, [(text, vector)])

    def put_many(
        self,
        half: Half,
        settings: Settings,
        items: Sequence[tuple[str, list[float] | SparseVector]],
    ) -> None:
        """Keep several vectors of one half at once (one lock round)."""
        records = [((half, settings, text), _encode(vector), text) for text, vector in items]
        with self._lock:
            for key, stored, text in records:
                size = _size(text, stored)
                old = self._table.pop(key, None)
                if old is not None:
                    self._nbytes -= old[1]
                if size > self.max_bytes:
                    continue
                self._table[key] = (stored, size)
                self._nbytes += size
                while len(self._table) > self.max_entries or self._nbytes > self.max_bytes:
                    _, (_, dropped) = self._table.popitem(last=False)
                    self._nbytes -= dropped
                    self._evictions += 1

    def take(self, half: Half, settings: Settings, text: str) -> list[float] | SparseVector | None:
        """Remove and return the ``half`` of ``text`` under ``settings``, if held."""
        return self.take_many(half, settings, [text])[0]

    def take_many(
        self, half: Half, settings: Settings, texts: Sequence[str]
    ) -> list[list[float] | SparseVector | None]:
        """Remove and return the held ``half`` of each text (``None`` where not held)."""
        found: list[_Stored | None] = []
        with self._lock:
            for text in texts:
                record = self._table.pop((half, settings, text), None)
                if record is None:
                    self._misses += 1
                    found.append(None)
                else:
                    self._nbytes -= record[1]
                    self._hits += 1
                    found.append(record[0])
        return [None if stored is None else _decode(stored) for stored in found]


def _encode(vector: list[float] | SparseVector) -> _Stored:
    if isinstance(vector, SparseVector):
        return (array("q", vector.indices), array("d", vector.values))
    return array("d", vector)


def _decode(stored: _Stored) -> list[float] | SparseVector:
    if isinstance(stored, tuple):
        return SparseVector(indices=tuple(stored[0]), values=tuple(stored[1]))
    return stored.tolist()


class Handoff:
    """One call's view of the memo: what it had for this half, and what must be fetched.

    Without a memo (no sibling) every text is fetched, with only the half asked for.

    >>> handoff = Handoff(None, "sparse", (), ["a", "b", "a"])
    >>> handoff.missing, handoff.output_type
    (['a', 'b'], 'sparse')
    """

    def __init__(
        self, memo: HalvesMemo | None, want: Half, settings: Settings, texts: Sequence[str]
    ) -> None:
        self.want = want
        self.texts = texts
        self._memo = memo
        self._settings = settings
        unique = list(dict.fromkeys(texts))
        held = memo.take_many(want, settings, unique) if memo is not None else [None] * len(unique)
        self._found: dict[str, list[float] | SparseVector] = {
            text: vector for text, vector in zip(unique, held, strict=True) if vector is not None
        }
        self.missing: list[str] = [text for text in unique if text not in self._found]
        """Distinct texts to fetch, in first-seen order."""

    @property
    def output_type(self) -> OutputType:
        """What to ask for: both halves when a sibling shares the memo, else this half."""
        return "dense&sparse" if self._memo is not None else self.want

    def fill(self, result: EmbeddingResult) -> None:
        """Take this half of ``result`` (for :attr:`missing`) and leave the other in the memo."""
        if self.want == "dense":
            mine: Sequence[list[float] | SparseVector] = result.embeddings
        else:
            mine = result.sparse_embeddings
        self._found.update(zip(self.missing, mine, strict=True))
        if self._memo is not None:
            other: Half = "sparse" if self.want == "dense" else "dense"
            theirs: Sequence[list[float] | SparseVector] = (
                result.sparse_embeddings if other == "sparse" else result.embeddings
            )
            self._memo.put_many(other, self._settings, list(zip(self.missing, theirs, strict=True)))

    def dense(self) -> list[list[float]]:
        """The dense vector of every text, in input order."""
        return [typing.cast("list[float]", self._found[text]) for text in self.texts]

    def sparse(self) -> list[SparseVector]:
        """The sparse vector of every text, in input order."""
        return [typing.cast(SparseVector, self._found[text]) for text in self.texts]
