"""Text inputs before any request: how tokens are counted, and what is refused, by index.

Pure: no I/O. :func:`token_counting` picks a call's counting (a user's ``token_counter``, the
Qwen tokenizer of the ``tokenizer`` extra, or lower/upper bounds); :func:`check_texts` and
:func:`check_options` refuse bad input before anything is sent, naming the caller's index.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable, Iterable, Sequence

from dashscope_embeddings._errors import InvalidInputError
from dashscope_embeddings._registry import MODELS, ModelSpec
from dashscope_embeddings._tokens import (
    TokenCounter,
    lower_bound,
    upper_bound,
    upper_bound_split,
)
from dashscope_embeddings._types import OutputType, TextType, WireProtocol

__all__ = [
    "MAX_TEXT_CHARS",
    "OUTPUT_TYPES",
    "TEXT_TYPES",
    "LongText",
    "TokenCounting",
    "check_options",
    "check_texts",
    "count_for_estimate",
    "materialize",
    "token_counting",
]

TEXT_TYPES = ("query", "document")
OUTPUT_TYPES = ("dense", "sparse", "dense&sparse")

LongText = typing.Literal["error", "truncate", "chunk"]
"""What to do with a text over the model's token limit: ``error`` (refuse it before sending,
naming its index), ``truncate`` (cut it to the limit) or ``chunk`` (split it, embed the
pieces, and return their token-weighted mean, re-normalised). Cuts are exact with the
``tokenizer`` extra (or a ``token_counter``), else by an upper bound of the count."""

MAX_TEXT_CHARS = 1_000_000
"""A longer text is refused in every ``long_text`` mode: split it before embedding."""

_BLANK_RE = re.compile(
    r"[\s\x00-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u2028-\u202f\u2060-\u206f\ufeff]*"
)


_Resolved = tuple[TokenCounter, TokenCounter, Callable[[str, int], list[str]], str]
"""refuse, cut, split, how (see :class:`TokenCounting`)."""


class TokenCounting:
    """How a call counts tokens: exactly, or by bounds.

    ``refuse`` counts for the per-text limit check (exact, or a lower bound: refuse only what
    is surely over); ``cut`` counts for cutting, packing and the ``tpm`` budget (exact, or an
    upper bound: never overfill); ``split`` cuts a text into pieces within a token count.

    Which of them a call gets is settled on first use: the Qwen vocabulary (about a third of a
    second of CPU) is loaded only when something is counted, so a call whose texts surely fit
    never loads it.
    """

    __slots__ = ("_custom", "_resolve", "_resolved")

    def __init__(
        self,
        resolve: Callable[[], _Resolved],
        *,
        custom: bool = False,
    ) -> None:
        self._resolve = resolve
        self._resolved: _Resolved | None = None
        self._custom = custom

    def _get(self) -> _Resolved:
        resolved = self._resolved
        if resolved is None:
            resolved = self._resolved = self._resolve()
        return resolved

    @property
    def custom(self) -> bool:
        """Whether the caller gave the counter (known without loading anything)."""
        return self._custom

    @property
    def refuse(self) -> TokenCounter:
        return self._get()[0]

    @property
    def cut(self) -> TokenCounter:
        return self._get()[1]

    @property
    def split(self) -> Callable[[str, int], list[str]]:
        return self._get()[2]

    @property
    def how(self) -> str:
        """``"counted with the Qwen tokenizer"``, ``"by the given token_counter"`` or ``""``."""
        return self._get()[3]

    @property
    def exact(self) -> bool:
        """Whether counts are exact (not bounds)."""
        return bool(self.how)


def _split_by(count: TokenCounter) -> Callable[[str, int], list[str]]:
    """A splitter for any counter: the longest prefix within the limit, by binary search."""

    def split(text: str, limit: int) -> list[str]:
        pieces: list[str] = []
        rest = text
        while rest:
            if count(rest) <= limit:
                pieces.append(rest)
                break
            low, high = 1, len(rest)
            while low < high:
                mid = (low + high + 1) // 2
                if count(rest[:mid]) <= limit:
                    low = mid
                else:
                    high = mid - 1
            pieces.append(rest[:low])
            rest = rest[low:]
        return pieces

    return split


def token_counting(token_counter: TokenCounter | None = None) -> TokenCounting:
    """The counting a call uses: ``token_counter``, else the Qwen tokenizer, else bounds.

    The Qwen tokenizer is used when the ``tokenizer`` extra is installed; it is loaded when a
    count is first asked for, not here.
    """
    if token_counter is not None:
        given = token_counter
        return TokenCounting(
            lambda: (given, given, _split_by(given), "by the given token_counter"), custom=True
        )

    def resolve() -> _Resolved:
        from dashscope_embeddings import _tokenizer

        exact = _tokenizer.exact_counter()
        if exact is not None:
            return exact, exact, exact.split, "counted with the Qwen tokenizer"
        return lower_bound, upper_bound, upper_bound_split, ""

    return TokenCounting(resolve)


def count_for_estimate(texts: Iterable[str]) -> tuple[int, bool]:
    """Tokens of ``texts`` and whether the count is exact (else an upper bound: "at most").

    For cost estimates such as the CLI's dry run.
    """
    counting = token_counting()
    return sum(counting.cut(t) for t in texts), counting.exact


def materialize(texts: Iterable[str]) -> Sequence[str]:
    """The inputs as a sequence, read once (a generator is accepted and consumed here).

    Raises:
        InvalidInputError: For a single string or bytes (a common slip), or a non-iterable.
    """
    if isinstance(texts, (str, bytes)):
        raise InvalidInputError(
            f"texts must be a list of strings, got a single {type(texts).__name__}; "
            "wrap it in a list or use embed_query"
        )
    if isinstance(texts, Sequence):
        return texts
    if not isinstance(texts, Iterable):
        raise InvalidInputError(
            f"texts must be a list (or any iterable) of strings, got {type(texts).__name__}"
        )
    return list(texts)


def check_texts(
    texts: Sequence[str],
    spec: ModelSpec,
    *,
    token_counter: TokenCounter | None = None,
    long_ok: bool = False,
    counting: TokenCounting | None = None,
) -> None:
    """Refuse what the service would refuse, before anything is sent.

    Non-strings, texts that are empty or only whitespace / control characters, text that cannot
    be sent as UTF-8 (a lone surrogate), texts over :data:`MAX_TEXT_CHARS`, and (unless
    ``long_ok``) texts over the token limit: counted exactly with the ``tokenizer`` extra or a
    ``token_counter``, else refused only when a lower bound of the count is over. Each check is
    linear in the text's length.

    Raises:
        InvalidInputError: Naming the first offending input's index.
    """
    limit = spec.max_tokens_per_input
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidInputError(
                f"input {index} is a {type(text).__name__}, not a str", index=index
            )
        if len(text) > MAX_TEXT_CHARS:
            raise InvalidInputError(
                f"input {index} has {len(text):,} characters, over the {MAX_TEXT_CHARS:,} this "
                "client sends or cuts as one text; split it before embedding",
                index=index,
            )
        if _BLANK_RE.fullmatch(text):
            raise InvalidInputError(
                f"input {index} is "
                f"{'empty' if not text else 'only whitespace or control characters'}; the "
                "service rejects empty texts",
                index=index,
            )
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InvalidInputError(
                    f"input {index} cannot be sent as UTF-8: {exc.reason} at character "
                    f"{exc.start} ({text[exc.start]!r}); it was probably decoded with the "
                    "wrong codec",
                    index=index,
                ) from None
        if long_ok:
            continue
        if counting is None:
            counting = token_counting(token_counter)
        # A token holds at least one UTF-8 byte (at most 4 per character); the lower bound is
        # never over the character count: only longer texts need counting (and only they load
        # the vocabulary).
        if counting.custom:
            over = counting.refuse(text) > limit
        elif len(text) * 4 <= limit:
            continue
        elif counting.exact:
            over = len(text) * 4 > limit and len(text.encode("utf-8")) > limit
        else:
            over = len(text) > limit
        if not over:
            continue
        tokens = counting.refuse(text)
        if tokens > limit:
            amount = f"{tokens} tokens ({counting.how})" if counting.exact else (
                f"at least {tokens} tokens (estimated)"
            )
            raise InvalidInputError(
                f"input {index} has {amount}, over {spec.name}'s limit of {limit} per text; "
                "the service rejects it rather than truncating: split it, or pass "
                "long_text='truncate' or 'chunk'",
                index=index,
            )


def _models_with(feature: Callable[[ModelSpec], bool]) -> str:
    return ", ".join(name for name, spec in MODELS.items() if feature(spec)) or "none"


def check_options(
    spec: ModelSpec,
    *,
    dimension: int | None,
    text_type: TextType | None,
    output_type: OutputType,
    instruct: str | None,
    protocol: WireProtocol,
) -> None:
    """Refuse options the model or endpoint cannot honour, before anything is sent.

    Raises:
        InvalidInputError: With ``index=None``; the message names the option and, where a
            model lacks a feature, the models that have it.
    """
    if spec.endpoint != "text":
        raise InvalidInputError(
            f"{spec.name} is a {spec.endpoint.replace('_', ' ')} model, not served by the "
            "text embedding endpoint"
        )
    if protocol not in ("native", "compatible"):
        raise InvalidInputError(f"protocol must be 'native' or 'compatible', got {protocol!r}")
    if protocol == "compatible":
        if not spec.supports_compatible_mode and spec.known:
            raise InvalidInputError(
                f"{spec.name} is not served on the OpenAI-compatible endpoint; use the native one"
            )
        for name, value in (("text_type", text_type), ("instruct", instruct)):
            if value is not None:
                raise InvalidInputError(
                    f"{name} needs the native endpoint; the OpenAI-compatible one has no such "
                    "field and embeds queries and documents alike"
                )
        if output_type != "dense":
            raise InvalidInputError(
                "sparse output needs the native endpoint; the OpenAI-compatible one is dense only"
            )
    if dimension is not None:
        if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension < 1:
            raise InvalidInputError(f"dimension must be a positive int, got {dimension!r}")
        if spec.dimensions and dimension not in spec.dimensions:
            allowed = ", ".join(str(d) for d in spec.dimensions)
            raise InvalidInputError(
                f"dimension {dimension} is not offered by {spec.name}; allowed: {allowed}"
            )
    if text_type is not None and text_type not in TEXT_TYPES:
        raise InvalidInputError(f"text_type must be 'query' or 'document', got {text_type!r}")
    if output_type not in OUTPUT_TYPES:
        raise InvalidInputError(
            f"output_type must be one of {', '.join(OUTPUT_TYPES)}; got {output_type!r}"
        )
    if output_type != "dense" and not spec.supports_sparse:
        raise InvalidInputError(
            f"{spec.name} has no sparse output (output_type={output_type!r}); models with it: "
            f"{_models_with(lambda s: s.supports_sparse)}"
        )
    if instruct is not None:
        if not spec.supports_instruct:
            raise InvalidInputError(
                f"{spec.name} ignores instruct; leave it unset, or use a model that applies it: "
                f"{_models_with(lambda s: s.supports_instruct and s.endpoint == 'text')}"
            )
        if text_type != "query":
            raise InvalidInputError(
                "instruct only takes effect on queries (text_type='query'); "
                f"got text_type={text_type!r}"
            )
        if not isinstance(instruct, str) or not instruct.strip():
            raise InvalidInputError("instruct must be a non-empty string")
