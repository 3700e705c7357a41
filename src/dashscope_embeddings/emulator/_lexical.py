"""Deterministic lexical vectors and the emulator's tokenizer.

The emulator does not run a model. It turns a text into a feature-hashed bag of words: texts
that share words (or word stems, through character trigrams) get nearby vectors, so a small
retrieval demo gives sensible answers, but nothing here measures model quality.

* :func:`tokenize` splits lower-cased text into word tokens, single CJK / kana / hangul
  characters and single punctuation characters. Every token counts for ``usage`` and for the
  per-text token limit.
* :func:`analyze` keeps the content tokens (no punctuation, no English stop words; a text made
  only of those falls back to all its tokens) with a sublinear weight ``1 + log(tf)``.
* :func:`dense_vector` hashes each content token, plus the character trigrams of longer words
  at a smaller weight, into ``dimension`` signed buckets with a keyed BLAKE2b hash (stable
  across processes, unlike :func:`hash`) seeded with the model name, then L2-normalises.
* :func:`sparse_vector` gives one ``{"index", "value", "token"}`` entry per content token.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import math
import re
import struct
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "SPARSE_VOCABULARY_SIZE",
    "Analysis",
    "analyze",
    "count_tokens",
    "dense_vector",
    "encode_base64",
    "marker_feature",
    "sparse_vector",
    "tokenize",
]

SPARSE_VOCABULARY_SIZE = 250_000
"""Sparse indices are a stable hash of the token modulo this size (a pretend vocabulary)."""

_TRIGRAM_WEIGHT = 0.3
_TRIGRAM_MIN_WORD = 4

_CJK = (
    "\u1100-\u11ff"  # hangul jamo
    "\u2e80-\u2fdf"  # CJK radicals
    "\u3040-\u30ff"  # hiragana, katakana
    "\u3100-\u31bf"  # bopomofo
    "\u31f0-\u31ff"  # katakana extension
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uac00-\ud7af"  # hangul syllables
    "\uf900-\ufaff"  # CJK compatibility ideographs
)
_TOKEN_RE = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|[^\w\s]")
_WORD_RE = re.compile(rf"[^\W{_CJK}]+")

_STOP_WORDS_TEXT = """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    get got had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
"""
_STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())


def tokenize(text: str) -> list[str]:
    """Split text into lower-cased tokens.

    A token is a run of word characters, one CJK / kana / hangul character, or one punctuation
    character; whitespace separates tokens and is not one.

    Args:
        text: Any string.

    Returns:
        The tokens in text order.
    """
    return _TOKEN_RE.findall(text.lower())


def count_tokens(text: str) -> int:
    """Number of tokens the emulator bills and limits for ``text`` (see :func:`tokenize`)."""
    return len(tokenize(text))


@dataclass(frozen=True)
class Analysis:
    """One text, tokenized.

    Attributes:
        token_count: All tokens, including punctuation and stop words (billed and limited).
        weights: Content token -> sublinear term weight ``1 + log(tf)``.
    """

    token_count: int
    weights: dict[str, float]


def analyze(text: str) -> Analysis:
    """Tokenize ``text`` and weight its content tokens.

    Punctuation and English stop words are dropped from the weights unless nothing else is
    left, in which case every token is kept, so any text with a token gets a non-zero vector.

    Args:
        text: Any string.

    Returns:
        The token count and the content-token weights.
    """
    tokens = tokenize(text)
    content = [t for t in tokens if t not in _STOP_WORDS and _is_wordlike(t)]
    counts = Counter(content or tokens)
    weights = {token: 1.0 + math.log(tf) for token, tf in counts.items()}
    return Analysis(token_count=len(tokens), weights=weights)


def _is_wordlike(token: str) -> bool:
    return token[0].isalnum() or token[0] == "_"


@functools.lru_cache(maxsize=262_144)
def _hash64(seed: str, token: str) -> int:
    digest = hashlib.blake2b(
        token.encode("utf-8", "surrogatepass"),
        digest_size=8,
        key=seed.encode("utf-8", "surrogatepass")[:64],
    ).digest()
    return int.from_bytes(digest, "little")


@functools.lru_cache(maxsize=131_072)
def _token_features(seed: str, token: str) -> tuple[tuple[int, float], ...]:
    """Hashes and relative weights of a token and, for longer words, its trigrams."""
    features = [(_hash64(seed, token), 1.0)]
    if len(token) >= _TRIGRAM_MIN_WORD and _WORD_RE.fullmatch(token):
        padded = f"<{token}>"
        features.extend(
            (_hash64(seed, "\x01" + padded[i : i + 3]), _TRIGRAM_WEIGHT)
            for i in range(len(padded) - 2)
        )
    return tuple(features)


def marker_feature(kind: str, value: str, weight: float) -> tuple[str, float]:
    """A feature that is not a token, e.g. the ``text_type`` or an ``instruct`` string.

    Args:
        kind: Namespace of the marker (``"text_type"``, ``"instruct"``).
        value: Its value.
        weight: Its weight before normalisation (token weights are >= 1).

    Returns:
        A ``(feature key, weight)`` pair for :func:`dense_vector`'s ``extra`` argument.
    """
    return (f"\x00{kind}\x00{value}", weight)


def dense_vector(
    analysis: Analysis,
    *,
    model: str,
    dimension: int,
    extra: Iterable[tuple[str, float]] = (),
) -> list[float]:
    """A deterministic, L2-normalised, float32-representable vector.

    Args:
        analysis: The text, from :func:`analyze`.
        model: Model name; seeds the hash so different models give different vectors.
        dimension: Length of the vector (>= 1).
        extra: Marker features from :func:`marker_feature`, hashed like tokens.

    Returns:
        ``dimension`` floats with unit L2 norm (to float32 precision).
    """
    buckets: dict[int, float] = {}
    for token, weight in analysis.weights.items():
        for h, scale in _token_features(model, token):
            bucket = h % dimension
            signed = weight * scale if h >> 63 else -weight * scale
            buckets[bucket] = buckets.get(bucket, 0.0) + signed
    for key, weight in extra:
        h = _hash64(model, key)
        bucket = h % dimension
        buckets[bucket] = buckets.get(bucket, 0.0) + (weight if h >> 63 else -weight)
    norm = math.sqrt(math.fsum(v * v for v in buckets.values()))
    if norm == 0.0:  # hash collisions cancelled out exactly: any unit vector will do
        buckets = {_hash64(model, "\x02" + repr(sorted(analysis.weights))) % dimension: 1.0}
        norm = 1.0
    vector = [0.0] * dimension
    for bucket, value in buckets.items():
        vector[bucket] = value / norm
    packed = struct.pack(f"<{dimension}f", *vector)
    return list(struct.unpack(f"<{dimension}f", packed))


def sparse_vector(analysis: Analysis) -> list[dict[str, int | float | str]]:
    """One entry per content token, sorted by index.

    Args:
        analysis: The text, from :func:`analyze`.

    Returns:
        ``[{"index": int, "value": float, "token": str}, ...]``; ``index`` is a stable hash of
        the token modulo :data:`SPARSE_VOCABULARY_SIZE`. Tokens whose indices collide are
        merged into one entry (weights summed, first token in text order kept).
    """
    merged: dict[int, tuple[float, str]] = {}
    for token, weight in analysis.weights.items():
        index = _hash64("sparse-vocabulary", token) % SPARSE_VOCABULARY_SIZE
        previous = merged.get(index)
        merged[index] = (weight, token) if previous is None else (previous[0] + weight, previous[1])
    return [
        {"index": index, "value": round(weight, 4), "token": token}
        for index, (weight, token) in sorted(merged.items())
    ]


def encode_base64(vector: list[float]) -> str:
    """Base64 of the vector as little-endian float32, as OpenAI's ``encoding_format=base64``."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
