"""Exact token counts with the Qwen BPE vocabulary, when the ``tokenizer`` extra is installed.

The vendor's ``dashscope`` SDK ships the vocabulary of the Qwen models (``qwen.tiktoken``: one
base64 token and its rank per line); ``tiktoken`` runs the byte-pair encoding. The ranks are
read from that file and the :class:`tiktoken.Encoding` is built here, with the SDK's
pre-tokenizer pattern and special tokens, so nothing is downloaded and the ``dashscope``
package itself is never imported (only located). Texts are NFC-normalised before counting, as
the SDK does.

:func:`exact_counter` returns ``None`` when the extra is missing; everything that needs a count
then falls back to the bounds of :mod:`dashscope_embeddings._tokens`.
"""

from __future__ import annotations

import base64
import functools
import importlib.util
import os
import threading
import typing
import unicodedata
from dataclasses import dataclass

if typing.TYPE_CHECKING:
    import tiktoken

__all__ = ["ExactCounter", "exact_counter", "service_counter"]

# The SDK's pre-tokenizer (dashscope/tokenizers/qwen_tokenizer.py) and special tokens.
_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", *(f"<|extra_{i}|>" for i in range(205)))
_SPECIAL_START = 151643
# tiktoken's merge recursion can overflow on very long pieces; longer texts are encoded in
# segments cut at line breaks (as the SDK does).
_SEGMENT = 100_000


def _vocabulary_path() -> str | None:
    """Where the installed ``dashscope`` package keeps ``qwen.tiktoken`` (not importing it)."""
    try:
        spec = importlib.util.find_spec("dashscope")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = os.path.join(root, "resources", "qwen.tiktoken")
        if os.path.isfile(path):
            return path
    return None


def _segments(text: str) -> list[str]:
    """``text`` in pieces of at most ``_SEGMENT`` characters, cut after a line break if any."""
    if len(text) <= _SEGMENT:
        return [text]
    parts: list[str] = []
    start = 0
    while start < len(text):
        end = min(start + _SEGMENT, len(text))
        if end < len(text):
            cut = text.rfind("\n", start + 1, end)
            if cut > start:
                end = cut
        parts.append(text[start:end])
        start = end
    return parts


@dataclass(frozen=True)
class ExactCounter:
    """The Qwen tokenizer: exact counts, and cuts on token boundaries.

    Call it with a text for its token count. :meth:`prefix` and :meth:`split` cut a text by
    tokens in time linear in its length: it is encoded once, never re-counted per guess.
    """

    encoding: tiktoken.Encoding

    def __call__(self, text: str) -> int:
        return len(self.encode(unicodedata.normalize("NFC", text)))

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` as given (special-token text counts as the special token)."""
        out: list[int] = []
        for segment in _segments(text):
            out.extend(self.encoding.encode(segment, allowed_special="all"))
        return out

    def _offsets(self, ids: list[int]) -> list[int]:
        """Character offset where each token ends (at a character boundary)."""
        offsets: list[int] = []
        pending = b""
        position = 0
        for token in ids:
            pending += self.encoding.decode_single_token_bytes(token)
            decoded = pending.decode("utf-8", errors="ignore")
            # keep bytes of a character split between tokens for the next token
            complete = len(decoded.encode("utf-8"))
            position += len(decoded)
            pending = pending[complete:]
            offsets.append(position)
        return offsets

    def split(self, text: str, limit: int, *, first_only: bool = False) -> list[str]:
        """``text`` cut into consecutive pieces of at most ``limit`` tokens each.

        The pieces join back to ``text``. Each is re-counted once and, in the rare case that
        re-encoding a piece on its own gives more tokens, shortened until it fits.
        """
        if limit < 1:
            raise ValueError("limit must be >= 1")
        ids = self.encode(text)
        if len(ids) <= limit:
            return [text]
        offsets = self._offsets(ids)
        if offsets[-1] != len(text):  # tokens do not map back onto the text: cut by chars
            offsets = [round(len(text) * (i + 1) / len(ids)) for i in range(len(ids))]
        pieces: list[str] = []
        first = 0  # index of the first token of the current piece
        start = 0  # its character offset
        while start < len(text):
            last = min(first + limit, len(ids)) - 1
            while True:
                end = offsets[last]
                if end <= start:  # a character wider than the rest of the budget
                    end = next(o for o in offsets[last:] if o > start)
                    break
                excess = self(text[start:end]) - limit
                if excess <= 0 or last == first:
                    break
                last = max(first, last - excess)
            pieces.append(text[start:end])
            if first_only:
                break
            start = end
            while first < len(ids) and offsets[first] <= start:
                first += 1
        return pieces

    def prefix(self, text: str, limit: int) -> str:
        """The longest token-boundary prefix of ``text`` within ``limit`` tokens."""
        return self.split(text, limit, first_only=True)[0]


_LOAD_LOCK = threading.Lock()


def _load() -> ExactCounter | None:
    # One load per process: threads asking at once wait for the first rather than each
    # building the ~150,000-entry vocabulary (a lock, not lru_cache, which does not wait).
    with _LOAD_LOCK:
        return _load_once()


@functools.lru_cache(maxsize=1)
def _load_once() -> ExactCounter | None:
    path = _vocabulary_path()
    if path is None:
        return None
    try:
        import tiktoken
    except ImportError:
        return None
    ranks: dict[bytes, int] = {}
    with open(path, "rb") as file:
        for line in file:
            if line.strip():
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
    special = {token: _SPECIAL_START + i for i, token in enumerate(_SPECIAL)}
    encoding = tiktoken.Encoding(
        "qwen", pat_str=_PATTERN, mergeable_ranks=ranks, special_tokens=special
    )
    return ExactCounter(encoding)


def exact_counter() -> ExactCounter | None:
    """The Qwen tokenizer if the ``tokenizer`` extra is installed, else ``None``.

    Loaded once (about a third of a second) on first use, then cached.
    """
    return _load()


def service_counter() -> ExactCounter | None:
    """The same tokenizer, for the bundled emulator's counts.

    Apart from :func:`exact_counter`, so a test can turn the client's exact counting off while
    the emulator keeps counting like the service.
    """
    return _load()
