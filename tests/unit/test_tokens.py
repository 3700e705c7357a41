"""Token bounds against the Qwen tokenizer, exact cuts, and bad input refused by index."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from dashscope_embeddings import InvalidInputError, _tokenizer
from dashscope_embeddings._config import resolve_endpoints
from dashscope_embeddings._registry import MODELS
from dashscope_embeddings._tokens import lower_bound, upper_bound, upper_bound_split
from dashscope_embeddings.resources import text

EXACT = _tokenizer.exact_counter()
needs_extra = pytest.mark.skipif(
    EXACT is None, reason="the tokenizer extra (dashscope + tiktoken) is not installed"
)
ROOT = Path(__file__).resolve().parents[2]
V4 = MODELS["text-embedding-v4"]


def _bench() -> object:
    spec = importlib.util.spec_from_file_location(
        "token_bounds", ROOT / "benchmarks/token_bounds.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CORPORA: dict[str, str] = _bench().corpora()  # type: ignore[attr-defined]
PARAGRAPHS = _bench().paragraphs  # type: ignore[attr-defined]


@needs_extra
@pytest.mark.parametrize("name", sorted(CORPORA))
def test_lower_bound_never_exceeds_and_upper_never_falls_below_exact(name: str) -> None:
    assert EXACT is not None
    for part in [CORPORA[name], *PARAGRAPHS(CORPORA[name])]:
        exact = EXACT(part)
        assert lower_bound(part) <= exact <= upper_bound(part), part[:80]


@needs_extra
def test_lower_bound_keeps_chinese_of_7000_tokens_under_the_limit() -> None:
    assert EXACT is not None
    zh = CORPORA["Chinese prose"] * 40
    piece = EXACT.prefix(zh, 7000)
    assert lower_bound(piece) <= 8192 < len(piece)


@needs_extra
@pytest.mark.parametrize("name", sorted(CORPORA))
def test_exact_split_joins_back_and_fills_each_piece(name: str) -> None:
    assert EXACT is not None
    source = CORPORA[name] * 3
    pieces = EXACT.split(source, 500)
    assert "".join(pieces) == source
    assert all(EXACT(p) <= 500 for p in pieces)
    assert all(EXACT(p) >= 490 for p in pieces[:-1])


@needs_extra
def test_exact_cut_encodes_a_long_text_a_bounded_number_of_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert EXACT is not None
    calls = []
    encode = _tokenizer.ExactCounter.encode

    def counting(self: _tokenizer.ExactCounter, value: str) -> list[int]:
        calls.append(len(value))
        return encode(self, value)

    monkeypatch.setattr(_tokenizer.ExactCounter, "encode", counting)
    long = CORPORA["Chinese prose"] * 300  # ~250,000 characters
    EXACT.prefix(long, 8192)
    assert calls[0] == len(long) and sum(calls[1:]) <= 3 * 12_000  # then only the prefix


@pytest.mark.parametrize("name", sorted(CORPORA))
def test_upper_bound_split_joins_back_within_the_bound(name: str) -> None:
    source = CORPORA[name]
    pieces = upper_bound_split(source, 300)
    assert "".join(pieces) == source and len(pieces) > 1
    assert all(upper_bound(p) <= 300 for p in pieces)


@pytest.mark.parametrize(
    ("bad", "what"),
    [
        (" \t\n\u3000", "only whitespace or control"),
        ("\x00\x01\x1b\u200b", "only whitespace or control"),
        ("ok \ud800 ok", "cannot be sent as UTF-8"),
        ("a" * 10_000_000, "10,000,000 characters"),
    ],
    ids=["whitespace", "control", "surrogate", "10MB"],
)
@pytest.mark.parametrize("long_text", ["error", "truncate", "chunk"])
def test_bad_input_is_refused_by_index_before_sending(bad: str, what: str, long_text: str) -> None:
    with pytest.raises(InvalidInputError, match=what) as info:
        text.plan_text_call(
            ["fine", "also fine", bad],
            spec=V4,
            endpoints=resolve_endpoints(),
            protocol="native",
            dimension=None,
            text_type=None,
            output_type="dense",
            instruct=None,
            token_counter=None,
            long_text=long_text,  # type: ignore[arg-type]
        )
    assert info.value.index == 2


def test_without_the_extra_refusal_uses_the_lower_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_tokenizer, "exact_counter", lambda: None)
    clearly_over = "1" * 9000  # one token per digit
    with pytest.raises(InvalidInputError, match=r"at least 9000 tokens \(estimated\)"):
        text.check_texts(["ok", clearly_over], V4)
    text.check_texts(["字" * 9000], V4)  # 9,000 CJK characters may be fewer tokens: sent


def test_count_for_estimate_says_whether_it_is_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens, exact = text.count_for_estimate(["hello world", "你好"])
    assert exact == (EXACT is not None) and tokens >= 3
    monkeypatch.setattr(_tokenizer, "exact_counter", lambda: None)
    assert text.count_for_estimate(["hello world"]) == (upper_bound("hello world"), False)
