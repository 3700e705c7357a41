from __future__ import annotations

import pytest

from dashscope_embeddings import InvalidInputError, estimate_tokens, get_model_spec
from dashscope_embeddings.resources.text import check_options, check_texts, materialize
from dashscope_embeddings.resources.text import plan_requests as plan_batches

V4 = get_model_spec("text-embedding-v4")
V2 = get_model_spec("text-embedding-v2")


@pytest.mark.parametrize("count", [1, 9, 10, 11, 25, 99, 100, 101])
@pytest.mark.parametrize("cap", [1, 10, 25])
def test_plan_covers_every_input_once_in_order(count: int, cap: int) -> None:
    batches = plan_batches(count, cap)
    flat = [i for r in batches for i in r]
    assert flat == list(range(count))
    assert all(1 <= len(r) <= cap for r in batches)
    assert len(batches) == -(-count // cap)  # the fewest possible
    assert max(map(len, batches)) - min(map(len, batches)) <= 1


def test_plan_of_nothing_is_empty() -> None:
    assert plan_batches(0, 10) == []
    with pytest.raises(ValueError):
        plan_batches(3, 0)


def test_check_texts_names_the_bad_index() -> None:
    with pytest.raises(InvalidInputError, match="input 2 is empty") as info:
        check_texts(["a", "b", "", "d"], V4)
    assert info.value.index == 2
    with pytest.raises(InvalidInputError, match="input 1 is a int") as info:
        check_texts(["a", 5, "c"], V4)  # type: ignore[list-item]
    assert info.value.index == 1
    with pytest.raises(InvalidInputError, match="single str"):
        materialize("hello")


def test_check_texts_refuses_a_text_over_the_token_limit() -> None:
    long_text = "word " * 2100  # ~2100 tokens: fine for v4 (8192), over v2's 2048
    check_texts(["ok", long_text], V4)
    with pytest.raises(InvalidInputError, match=r"input 1 has (about |at least )?\d+ tokens .*2048") as info:
        check_texts(["ok", long_text], V2)
    assert info.value.index == 1


def test_user_token_counter_is_used() -> None:
    with pytest.raises(InvalidInputError, match="given token_counter"):
        check_texts(["short"], V2, token_counter=lambda _t: 5000)


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("hello world", 2, 3),
        ("The quick brown fox jumps over the lazy dog.", 9, 13),
        ("今天天气很好", 6, 6),
        ("2024-01-01", 10, 10),
        ("", 0, 0),
    ],
)
def test_estimate_tokens_is_near_real_counts(text: str, low: int, high: int) -> None:
    assert low <= estimate_tokens(text) <= high
    assert estimate_tokens(text) <= len(text)


def _opts(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "dimension": None,
        "text_type": None,
        "output_type": "dense",
        "instruct": None,
        "protocol": "native",
    }
    base.update(kw)
    return base


@pytest.mark.parametrize(
    ("model", "kw", "message"),
    [
        ("text-embedding-v4", {"dimension": 100}, "dimension 100 is not offered"),
        ("text-embedding-v3", {"dimension": 256}, "dimension 256 is not offered"),
        ("text-embedding-v2", {"dimension": 1024}, "dimension 1024"),
        ("text-embedding-v4", {"dimension": True}, "positive int"),
        ("text-embedding-v4", {"text_type": "passage"}, "text_type"),
        ("text-embedding-v4", {"output_type": "both"}, "output_type"),
        ("text-embedding-v2", {"output_type": "sparse"}, "no sparse output"),
        ("text-embedding-v3", {"instruct": "x", "text_type": "query"}, "ignores instruct"),
        (
            "text-embedding-v4",
            {"instruct": "x", "text_type": "document"},
            "only takes effect on queries",
        ),
        ("text-embedding-v4", {"output_type": "sparse", "protocol": "compatible"}, "native endpoint"),
        (
            "text-embedding-v4",
            {"instruct": "x", "text_type": "query", "protocol": "compatible"},
            "native endpoint",
        ),
        ("qwen3-vl-embedding", {}, "multimodal model"),
        ("text-embedding-async-v2", {}, "async task model"),
    ],
)
def test_check_options_refuses(model: str, kw: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        check_options(get_model_spec(model), **_opts(**kw))  # type: ignore[arg-type]


def test_check_options_accepts_valid_combinations() -> None:
    check_options(
        V4,
        **_opts(dimension=64, text_type="query", output_type="dense&sparse", instruct="Find"),  # type: ignore[arg-type]
    )
    check_options(get_model_spec("text-embedding-v2"), **_opts(dimension=1536))  # type: ignore[arg-type]
    check_options(get_model_spec("custom-model"), **_opts(dimension=4096, protocol="compatible"))  # type: ignore[arg-type]
