"""Token counts without a tokenizer: a lower and an upper bound of the Qwen count.

The Qwen models' tokenizer (byte-pair encoding, in the ``tokenizer`` extra: see
:mod:`dashscope_embeddings._tokenizer`) first splits a text into *pieces* with a pattern: a run
of letters with the one character before it, a single digit, a run of punctuation, a run of
whitespace. Every piece is at least one token, and no token spans two pieces or holds less
than one byte. The bounds here split text the same way (with Python's character classes) and
give each piece:

* **lower bound**: one token (a run of CJK / kana / hangul characters: one per
  :data:`CJK_CHARS_PER_TOKEN_MAX` characters). Used to *refuse*: a text whose lower bound is over a
  model's limit surely is; any other is sent.
* **upper bound**: the smaller of its UTF-8 byte count and a per-class allowance (a Latin word:
  one token per :data:`LETTERS_PER_TOKEN_MIN` letters, plus one; a CJK character: one token;
  a hangul syllable: two; ASCII punctuation and digits: one each; whitespace: one per
  :data:`SPACES_PER_TOKEN_MIN` characters, plus one). Used to *cut* (``long_text``
  truncate / chunk, packing requests, the ``tpm`` budget): a piece within it is surely
  within the limit.

Measured against the Qwen tokenizer (``benchmarks/token_bounds.py``, whose table is in
``benchmarks/RESULTS.md``), on English and Chinese prose, Chinese with tables, Python code,
JSON, numbers, Japanese and emoji the lower bound stays at or below the exact count and the
upper bound at or above it. With the ``tokenizer`` extra installed, exact counts replace both.
"""

from __future__ import annotations

import re
import typing

__all__ = [
    "CJK_CHARS_PER_TOKEN_MAX",
    "LETTERS_PER_TOKEN_MIN",
    "SPACES_PER_TOKEN_MIN",
    "TokenCounter",
    "estimate_tokens",
    "lower_bound",
    "upper_bound",
    "upper_bound_split",
]

TokenCounter = typing.Callable[[str], int]

CJK_CHARS_PER_TOKEN_MAX = 3
"""A run of CJK characters holds at least one token per this many characters."""
LETTERS_PER_TOKEN_MIN = 3
"""A Latin-script word takes at most one token per this many letters, plus one."""
SPACES_PER_TOKEN_MIN = 8
"""A run of whitespace takes at most one token per this many characters, plus one."""

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u31f0-\u31ff\u3100-\u312f"
_HANGUL = "\u1100-\u11ff\uac00-\ud7af\u3130-\u318f"
# The Qwen pre-tokenizer in Python classes: \p{L} ~ [^\W\d_], \p{N} ~ \d, neither ~ [\W_].
_PIECE_RE = re.compile(
    r"(?P<word>(?i:'s|'t|'re|'ve|'m|'ll|'d)|(?:(?![\r\n])[\W_])?[^\W\d_]+)"
    r"|(?P<digit>\d)"
    r"|(?P<punct> ?(?:(?!\s)[\W_])+[\r\n]*)"
    r"|(?P<space>\s*[\r\n]+|\s+(?!\S)|\s+)"
)
_CJK_RE = re.compile(f"[{_CJK}]")
_HANGUL_RE = re.compile(f"[{_HANGUL}]")
_CJK_RUN_RE = re.compile(f"[{_CJK}{_HANGUL}]+")


def _utf8(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _word_upper(piece: str) -> int:
    """Upper bound of one letter-run piece."""
    if piece.isascii():
        return 1 + (len(piece) - 1) // LETTERS_PER_TOKEN_MIN
    cjk = len(_CJK_RE.findall(piece))
    hangul = len(_HANGUL_RE.findall(piece))
    other = len(piece) - cjk - hangul
    bound = cjk + 2 * hangul + (1 + other // LETTERS_PER_TOKEN_MIN if other else 0)
    if other:  # non-ASCII letters of other scripts: up to their bytes
        bound = max(bound, cjk + 2 * hangul + _utf8(re.sub(f"[{_CJK}{_HANGUL}]", "", piece)) // 2)
    return min(bound, _utf8(piece))


def _piece_upper(kind: str | None, piece: str) -> int:
    if kind == "word":
        return _word_upper(piece)
    if kind == "digit":
        return 1
    if kind == "space":
        return min(1 + len(piece) // SPACES_PER_TOKEN_MIN, _utf8(piece))
    return _utf8(piece)  # punctuation, symbols, emoji: at most a token per byte


def _piece_lower(kind: str | None, piece: str) -> int:
    if kind == "word" and not piece.isascii():
        longest = sum(len(r) for r in _CJK_RUN_RE.findall(piece))
        if longest:
            return max(1, -(-longest // CJK_CHARS_PER_TOKEN_MAX))
    return 1


def lower_bound(text: str) -> int:
    """A count the Qwen tokenizer does not go below for ``text`` (never above its length)."""
    return sum(_piece_lower(m.lastgroup, m.group()) for m in _PIECE_RE.finditer(text))


def upper_bound(text: str) -> int:
    """A count the Qwen tokenizer does not go above for ``text``."""
    return sum(_piece_upper(m.lastgroup, m.group()) for m in _PIECE_RE.finditer(text))


_ESTIMATE_RE = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]"  # one CJK char
    r"|[^\W\d_\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+"  # letters
    r"|\d"  # one digit
    r"|[^\w\s]|_",  # one punctuation mark
)


def estimate_tokens(text: str) -> int:
    """A rough point estimate of ``text``'s token count (neither bound; for display).

    One token per CJK / kana / hangul character, digit and punctuation mark, and one per five
    letters of a word. The client itself counts with the Qwen tokenizer (``tokenizer`` extra)
    or, without it, refuses by :func:`lower_bound` and cuts by :func:`upper_bound`.
    """
    total = 0
    for match in _ESTIMATE_RE.finditer(text):
        length = match.end() - match.start()
        total += 1 if length <= 5 else (length + 4) // 5
    return total


def _fit_piece(kind: str | None, piece: str, budget: int) -> int:
    """How many leading characters of ``piece`` surely fit in ``budget`` tokens (maybe 0)."""
    low, high = 0, len(piece)
    while low < high:  # the bound grows with the prefix; a piece is short
        mid = (low + high + 1) // 2
        if _piece_upper(kind, piece[:mid]) <= budget:
            low = mid
        else:
            high = mid - 1
    return low


def upper_bound_split(text: str, limit: int) -> list[str]:
    """``text`` cut into consecutive pieces whose upper bound is within ``limit`` tokens.

    Cuts fall between pre-tokenizer pieces where possible, in one pass over the text.
    """
    if limit < 1:
        raise ValueError("limit must be >= 1")
    parts: list[str] = []
    start, used = 0, 0
    for match in _PIECE_RE.finditer(text):
        kind, piece, offset = match.lastgroup, match.group(), match.start()
        cost = _piece_upper(kind, piece)
        while used + cost > limit:
            if used == 0 or not piece:
                take = max(1, _fit_piece(kind, piece, limit))
            else:
                take = _fit_piece(kind, piece, limit - used)
            if take:
                if take < len(piece) and "\ud800" <= piece[take - 1] <= "\udbff":
                    take = max(1, take - 1)  # never split a surrogate pair
                offset += take
                piece = piece[take:]
            parts.append(text[start:offset])
            start, used = offset, 0
            cost = _piece_upper(kind, piece) if piece else 0
        used += cost
    if start < len(text):
        parts.append(text[start:])
    return [p for p in parts if p] or [text]
