"""The Qwen vocabulary (a third of a second of CPU) is loaded only when a count is needed.

A call whose texts all fit the model's per-text limit by their UTF-8 length alone (a token
holds at least one byte), with no ``tpm`` budget and no per-request token limit, needs no
count: planning it must not load the vocabulary. A long text, a ``tpm`` budget or a cost
estimate still counts exactly.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator

import pytest

from dashscope_embeddings import InvalidInputError, _tokenizer
from dashscope_embeddings._config import resolve_endpoints
from dashscope_embeddings._registry import MODELS
from dashscope_embeddings.resources import text

V4 = MODELS["text-embedding-v4"]


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts vocabulary loads; starts with none loaded."""
    if _tokenizer.exact_counter() is None:
        pytest.skip("the tokenizer extra (dashscope + tiktoken) is not installed")
    seen: list[int] = []
    real = _tokenizer._vocabulary_path

    def counted() -> str | None:
        seen.append(1)
        return real()

    monkeypatch.setattr(_tokenizer, "_vocabulary_path", counted)
    _tokenizer._load_once.cache_clear()
    yield seen
    _tokenizer._load_once.cache_clear()


def _plan(texts: list[str], **options: typing.Any) -> text.TextCall:
    settings: dict[str, typing.Any] = {
        "spec": V4,
        "endpoints": resolve_endpoints(),
        "protocol": "native",
        "dimension": None,
        "text_type": None,
        "output_type": "dense",
        "instruct": None,
        "token_counter": None,
    }
    settings.update(options)
    return text.plan_text_call(texts, **settings)


@pytest.mark.parametrize("long_text", ["error", "truncate", "chunk"])
def test_short_texts_are_planned_without_loading_the_vocabulary(
    loads: list[int], long_text: str
) -> None:
    call = _plan(["hello", "你好世界", "x" * 2048] * 10, long_text=long_text)
    assert call.unit_count == 3 and len(call.jobs) == 1
    assert loads == []


def test_a_text_that_may_be_over_the_limit_is_counted_exactly(loads: list[int]) -> None:
    # 2,100 CJK characters: 6,300 UTF-8 bytes could be over 8,192 tokens only when counted
    # with bytes; 9,000 could be over. The exact count decides, and says how it counted.
    with pytest.raises(InvalidInputError, match=r"tokens \(counted with the Qwen tokenizer\)"):
        _plan(["ok", "\U00020000" * 9000])
    assert loads == [1]


def test_a_tpm_budget_counts_every_request(loads: list[int]) -> None:
    call = _plan(["hello world"] * 3, with_tokens=True)
    assert call.jobs[0].request.tokens == 2  # one unit, "hello world": 2 Qwen tokens
    assert loads == [1]


def test_truncation_still_cuts_by_exact_tokens(loads: list[int]) -> None:
    long = "hello world " * 5000  # 10,000 tokens
    call = _plan([long], long_text="truncate")
    counter = _tokenizer.exact_counter()
    assert counter is not None
    assert counter(call.units[0]) <= V4.max_tokens_per_input < counter(long)
    assert loads == [1]
