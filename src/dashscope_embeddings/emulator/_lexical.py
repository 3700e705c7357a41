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
* :func:`sparse_vector` gives one ``{"index", "value", "token"}`` entry per content token,
  weighted by :func:`term_importance` (a built-in list of very common words stands in for
  document frequencies: common words weigh less than rare ones) times ``1 + log(tf)``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import math
import re
import struct
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "SPARSE_VOCABULARY_SIZE",
    "Analysis",
    "analyze",
    "count_tokens",
    "decode_base64",
    "dense_vector",
    "encode_base64",
    "marker_feature",
    "sparse_vector",
    "term_importance",
    "tokenize",
    "truncate_tokens",
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

# Very common words, most frequent first: an English list after the classic frequency lists
# (function words, then the Fry "first 300" kind), then frequent Chinese characters. No corpus
# is available to the emulator, so this stands in for document frequencies in sparse weights.
# Every stop word of analyze() is listed (a text made only of them still gets sparse entries).
_COMMON_WORDS_TEXT = """
    the of and to a in is it you that he was for on are with as i his they be at one have this
    from or had by not but what some we can out other were all there when up use your how into
    its because being word
    said an each she which do their time if will way about many then them write would like so
    these her long make thing see him two has look more day could go come did number sound no
    most people my over know water than call first who may down side been now find any new work
    part take get place made live where after back little only round man year came show every
    good me give our under name very through just form sentence great think say help low line
    differ turn cause much mean before move right boy old too same tell does set three want air
    well also play small end put home read hand port large spell add even land here must big
    high such follow act why ask men change went light kind off need house picture try us again
    animal point mother world near build self earth father head stand own page should country
    found answer school grow study still learn plant cover food sun four between state keep eye
    never last let thought city tree cross farm hard start might story saw far sea draw left
    late run while press close night real life few north open seem together next white children
    am doing having below further itself himself herself myself themselves whom nor
    begin got walk example ease paper group always music those both mark often letter until
    mile river car feet care second book carry took science eat room friend began idea fish
    mountain stop once base hear horse cut sure watch color face wood main enough plain girl
    usual young ready above ever red list though feel talk bird soon body dog family direct pose
    leave song measure door product black short numeral class wind question happen complete
    ship area half rock order fire south problem piece told knew pass since top whole king space
    heard best hour better true during hundred five remember step early hold west ground
    interest reach fast verb sing listen six table travel less morning ten simple several vowel
    toward war lay against pattern slow center love person money serve appear road map rain rule
    govern pull cold notice voice unit power town fine certain fly fall lead cry dark machine
    note wait plan figure star box noun field rest correct able pound done beauty drive stood
    contain front teach week final gave green oh quick develop ocean warm free minute strong
    special mind behind clear tail produce fact street inch multiply nothing course stay wheel
    full force blue object decide surface deep moon island foot system busy test record boat
    common gold possible plane stead dry wonder laugh thousand ago ran check game shape equate
    hot miss brought heat snow tire bring yes distant fill east paint language among yours
    yourself yourselves ours ourselves theirs hers
"""
_COMMON_CHINESE_TEXT = """
    的 一 是 不 了 在 人 有 我 他 这 个 们 中 来 上 大 为 和 国 地 到 以 说 时 要 就 出 会 可 也 你
    对 生 能 而 子 那 得 于 着 下 自 之 年 过 发 后 作 里
"""


def _relative_ranks(text: str) -> dict[str, float]:
    """Word -> log-scaled frequency rank in [0, 1] (0: the most common word of the list)."""
    words = list(dict.fromkeys(text.split()))
    last = math.log1p(len(words) - 1)
    return {word: math.log1p(rank) / last for rank, word in enumerate(words)}


_COMMON_RANK = {**_relative_ranks(_COMMON_WORDS_TEXT), **_relative_ranks(_COMMON_CHINESE_TEXT)}

# Sparse term importance (a stand-in for IDF): the most common word weighs _COMMON_MIN, the
# rarest listed one _COMMON_MAX, on a log scale of the rank; digits-only tokens and unlisted
# single characters are in between; every other (unlisted, hence rare) word weighs 1.
_COMMON_MIN = 0.15
_COMMON_MAX = 0.6
_DIGITS_IMPORTANCE = 0.5
_SINGLE_CHAR_IMPORTANCE = 0.7


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
    """Number of tokens the emulator bills and limits for ``text``.

    The Qwen tokenizer's count, as the service's, when the ``tokenizer`` extra is installed;
    else the number of :func:`tokenize` tokens.
    """
    if not text.strip():
        # Whether the service strips blank texts before counting is [UNCONFIRMED]; the emulator
        # refuses them as of length 0 (the client refuses them before sending either way).
        return 0
    from dashscope_embeddings import _tokenizer

    exact = _tokenizer.service_counter()
    return exact(text) if exact is not None else len(tokenize(text))


def truncate_tokens(text: str, limit: int) -> str:
    """The longest start of ``text`` of at most ``limit`` tokens, as :func:`count_tokens` counts."""
    from dashscope_embeddings import _tokenizer

    exact = _tokenizer.service_counter()
    if exact is not None:
        return exact.prefix(text, limit)
    return " ".join(tokenize(text)[:limit])


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
    return Analysis(token_count=count_tokens(text), weights=weights)


def _is_wordlike(token: str) -> bool:
    return token[0].isalnum() or token[0] == "_"


@functools.lru_cache(maxsize=64)
def _keyed_hasher(seed: str) -> hashlib.blake2b:
    """A BLAKE2b-64 hasher keyed with ``seed``; copied per token (cheaper than re-keying)."""
    return hashlib.blake2b(digest_size=8, key=seed.encode("utf-8", "surrogatepass")[:64])


@functools.lru_cache(maxsize=262_144)
def _hash64(seed: str, token: str) -> int:
    hasher = _keyed_hasher(seed).copy()
    hasher.update(token.encode("utf-8", "surrogatepass"))
    return int.from_bytes(hasher.digest(), "little")


@functools.lru_cache(maxsize=131_072)
def _token_features(seed: str, token: str) -> tuple[tuple[int, float], ...]:
    """Hashes and relative weights of a token and, for longer words, its trigrams."""
    features = [(_hash64(seed, token), 1.0)]
    if len(token) >= _TRIGRAM_MIN_WORD and _WORD_RE.fullmatch(token):
        padded = f"<{token}>"
        features += [
            (_hash64(seed, "\x01" + padded[i : i + 3]), _TRIGRAM_WEIGHT)
            for i in range(len(padded) - 2)
        ]
    return tuple(features)


@functools.lru_cache(maxsize=65_536)
def _token_buckets(seed: str, dimension: int, token: str) -> tuple[tuple[int, float], ...]:
    """``(bucket, signed relative weight)`` of each feature of ``token`` at ``dimension``.

    ``weight * (-scale)`` equals ``-weight * scale`` exactly in IEEE arithmetic, so folding the
    sign into the cached scale leaves every vector bit-for-bit unchanged.
    """
    return tuple(
        [(h % dimension, scale if h >> 63 else -scale) for h, scale in _token_features(seed, token)]
    )


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
    get = buckets.get
    for token, weight in analysis.weights.items():
        for bucket, signed in _token_buckets(model, dimension, token):
            buckets[bucket] = get(bucket, 0.0) + weight * signed
    for key, weight in extra:
        h = _hash64(model, key)
        bucket = h % dimension
        buckets[bucket] = get(bucket, 0.0) + (weight if h >> 63 else -weight)
    norm = math.sqrt(math.fsum([v * v for v in buckets.values()]))
    if norm == 0.0:  # hash collisions cancelled out exactly: any unit vector will do
        buckets = {_hash64(model, "\x02" + repr(sorted(analysis.weights))) % dimension: 1.0}
        norm = 1.0
    # Only the non-zero buckets go through float32 (zeros stay 0.0): same values as packing
    # the whole vector, for a fraction of the work.
    count = len(buckets)
    packed = struct.pack(f"<{count}f", *[value / norm for value in buckets.values()])
    vector = [0.0] * dimension
    for bucket, value in zip(buckets, struct.unpack(f"<{count}f", packed), strict=True):
        vector[bucket] = value
    return vector


def term_importance(token: str) -> float:
    """How much a token weighs in a sparse vector, in (0, 1]: rarer words weigh more.

    Without a corpus, rarity is taken from a built-in list of very common words (English words
    and frequent Chinese characters, ordered by frequency): a listed word weighs between 0.15
    (the most common) and 0.6 (the least common listed one), growing with the log of its rank;
    a token of digits weighs 0.5; an unlisted single character 0.7; any other word 1.

    Args:
        token: A token from :func:`tokenize`.

    Returns:
        The importance factor applied to the term's ``1 + log(tf)`` weight.
    """
    rank = _COMMON_RANK.get(token)
    if rank is not None:
        return _COMMON_MIN + (_COMMON_MAX - _COMMON_MIN) * rank
    if token.isdigit():
        return _DIGITS_IMPORTANCE
    if len(token) == 1:
        return _SINGLE_CHAR_IMPORTANCE
    return 1.0


def sparse_vector(analysis: Analysis) -> list[dict[str, int | float | str]]:
    """One entry per content token, sorted by index.

    Args:
        analysis: The text, from :func:`analyze`.

    Returns:
        ``[{"index": int, "value": float, "token": str}, ...]``; ``index`` is a stable hash of
        the token modulo :data:`SPARSE_VOCABULARY_SIZE`; ``value`` is
        :func:`term_importance` times ``1 + log(tf)``, rounded to 4 decimals. Tokens whose
        indices collide are merged into one entry (values summed, first token in text order
        kept).
    """
    merged: dict[int, tuple[float, str]] = {}
    for token, weight in analysis.weights.items():
        index = _hash64("sparse-vocabulary", token) % SPARSE_VOCABULARY_SIZE
        value = term_importance(token) * weight
        previous = merged.get(index)
        merged[index] = (value, token) if previous is None else (previous[0] + value, previous[1])
    return [
        {"index": index, "value": round(value, 4), "token": token}
        for index, (value, token) in sorted(merged.items())
    ]


def encode_base64(vector: Sequence[float]) -> str:
    """Base64 of the vector as little-endian float32, as OpenAI's ``encoding_format=base64``."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def decode_base64(text: str) -> list[float] | None:
    """The floats of :func:`encode_base64`'s output, or ``None`` when ``text`` is not one."""
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error is a ValueError
        return None
    if len(raw) % 4:
        return None
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))
