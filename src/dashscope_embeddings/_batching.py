"""Input checks and request planning: pure functions over the registry, no I/O.

Everything here runs before a request is sent, so a bad input fails fast with its index and
nothing is half-sent.
"""

from __future__ import annotations

from collections.abc import Sequence

from dashscope_embeddings._errors import InvalidInputError
from dashscope_embeddings._registry import ModelSpec
from dashscope_embeddings._tokens import TokenCounter, estimate_tokens
from dashscope_embeddings._types import OutputType, TextType

__all__ = ["check_options", "check_texts", "plan_batches"]

_TEXT_TYPES = ("query", "document")
_OUTPUT_TYPES = ("dense", "sparse", "dense&sparse")


def check_texts(
    texts: Sequence[str],
    spec: ModelSpec,
    *,
    token_counter: TokenCounter | None = None,
) -> None:
    """Refuse what the service would refuse: non-strings, empty texts, texts over the limit.

    Raises:
        InvalidInputError: Naming the first offending input's index.
    """
    if isinstance(texts, (str, bytes)):
        raise InvalidInputError(
            f"texts must be a list of strings, got a single {type(texts).__name__}; "
            "wrap it in a list or use embed_query"
        )
    count = token_counter or estimate_tokens
    limit = spec.max_tokens_per_input
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidInputError(
                f"input {index} is a {type(text).__name__}, not a str", index=index
            )
        if not text:
            raise InvalidInputError(
                f"input {index} is an empty string; the service rejects empty texts",
                index=index,
            )
        # The built-in estimate never exceeds the character count, so only texts longer than
        # the limit need counting; a user's counter is always asked.
        if token_counter is not None or len(text) > limit:
            tokens = count(text)
            if tokens > limit:
                how = "by the given token_counter" if token_counter else "estimated"
                raise InvalidInputError(
                    f"input {index} has about {tokens} tokens ({how}), over {spec.name}'s "
                    f"limit of {limit} per text; the service rejects it rather than "
                    "truncating, so split it into smaller chunks",
                    index=index,
                )


def check_options(
    spec: ModelSpec,
    *,
    dimension: int | None,
    text_type: TextType | None,
    output_type: OutputType,
    instruct: str | None,
    compatible: bool,
) -> None:
    """Refuse options the model or endpoint cannot honour, before anything is sent.

    Raises:
        InvalidInputError: With ``index=None``; the message names the option.
    """
    if spec.endpoint != "text":
        raise InvalidInputError(
            f"{spec.name} is a {spec.endpoint.replace('_', ' ')} model, not served by the "
            "text embedding endpoint"
        )
    if compatible:
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
    if text_type is not None and text_type not in _TEXT_TYPES:
        raise InvalidInputError(f"text_type must be 'query' or 'document', got {text_type!r}")
    if output_type not in _OUTPUT_TYPES:
        raise InvalidInputError(
            f"output_type must be one of {', '.join(_OUTPUT_TYPES)}; got {output_type!r}"
        )
    if output_type != "dense" and not spec.supports_sparse:
        raise InvalidInputError(f"{spec.name} has no sparse output (output_type={output_type!r})")
    if instruct is not None:
        if not spec.supports_instruct:
            raise InvalidInputError(f"{spec.name} ignores instruct; leave it unset")
        if text_type != "query":
            raise InvalidInputError(
                "instruct only takes effect on queries (text_type='query'); "
                f"got text_type={text_type!r}"
            )
        if not instruct.strip():
            raise InvalidInputError("instruct must be a non-empty string")


def plan_batches(count: int, max_batch_size: int) -> list[range]:
    """Split ``count`` inputs into the fewest requests of at most ``max_batch_size``.

    The requests are balanced (sizes differ by at most one) so that, sent side by side, none
    is much slower than the others.

    >>> [len(r) for r in plan_batches(25, 10)]
    [9, 8, 8]
    """
    if max_batch_size < 1:
        raise ValueError("max_batch_size must be >= 1")
    if count <= 0:
        return []
    batches = -(-count // max_batch_size)
    base, extra = divmod(count, batches)
    ranges: list[range] = []
    start = 0
    for i in range(batches):
        size = base + (1 if i < extra else 0)
        ranges.append(range(start, start + size))
        start += size
    return ranges
