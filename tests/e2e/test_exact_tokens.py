"""Exact token limits against an emulator that counts with the Qwen tokenizer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dashscope_embeddings import (
    DashScopeClient,
    InvalidInputError,
    PartialEmbeddingError,
    _tokenizer,
)
from dashscope_embeddings.emulator import Emulator, _lexical
from tests.conftest import TEST_KEY, sent_bodies

EXACT = _tokenizer.exact_counter()
pytestmark = pytest.mark.skipif(
    EXACT is None, reason="the tokenizer extra (dashscope + tiktoken) is not installed"
)
DATA = Path(__file__).resolve().parents[2] / "benchmarks" / "data"
LIMIT = 8192


@pytest.fixture
def qwen_emulator(emulator: Emulator) -> Iterator[Emulator]:
    """The emulator, which limits and bills by the Qwen count when the extra is installed."""
    sample = "嵌入模型把文本变成向量。Embeddings turn text into vectors: 3.14159, 🙂."
    assert EXACT is not None
    assert _lexical.analyze(sample).token_count == EXACT(sample)
    yield emulator


def _without_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_tokenizer, "exact_counter", lambda: None)


def _source(kind: str) -> str:
    if kind == "zh":
        return (DATA / "zh_prose.txt").read_text(encoding="utf-8")
    if kind == "en":
        return (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    return (Path(__file__).resolve().parents[2] / "src/dashscope_embeddings/_fanout.py").read_text(
        encoding="utf-8"
    )


def _text_of(kind: str, tokens: int, salt: int) -> str:
    """A text of (about) ``tokens`` exact tokens, unique per ``salt``."""
    assert EXACT is not None
    base = f"[{kind}-{salt}] " + _source(kind)
    while EXACT(base) < tokens + 10:
        base += "\n" + base
    return EXACT.prefix(base, tokens)


@pytest.mark.parametrize("disabled", [False, True], ids=["exact", "bounds"])
def test_7000_token_chinese_text_is_embedded_with_defaults(
    qwen_emulator: Emulator, monkeypatch: pytest.MonkeyPatch, disabled: bool
) -> None:
    assert EXACT is not None
    if disabled:
        _without_extra(monkeypatch)
    text = _text_of("zh", 7000, int(disabled))
    assert 6990 <= EXACT(text) <= 7000 and len(text) > LIMIT  # longer than the limit in chars
    with DashScopeClient(TEST_KEY, base_url=qwen_emulator.url) as client:
        result = client.embed_texts([text], model="text-embedding-v4")
    assert len(result.embeddings) == 1
    assert sent_bodies(qwen_emulator)[0]["input"]["texts"] == [text]
    assert result.usage.total_tokens == EXACT(text)  # the emulator bills the Qwen count


def test_exactly_the_texts_over_the_limit_are_refused_by_index(qwen_emulator: Emulator) -> None:
    assert EXACT is not None
    texts = [
        _text_of(kind, size, salt)
        for salt, (kind, size) in enumerate(
            (k, s) for k in ("zh", "en", "code") for s in (7800, 8150, 8192, 8193, 8600, 9000)
        )
    ]
    over = [i for i, t in enumerate(texts) if EXACT(t) > LIMIT]
    assert over and len(over) < len(texts)
    refused = []
    with DashScopeClient(TEST_KEY, base_url=qwen_emulator.url) as client:
        for index, text in enumerate(texts):
            try:
                client.embed_texts(["short", text], model="text-embedding-v4")
            except InvalidInputError as exc:
                assert exc.index == 1 and "Qwen tokenizer" in str(exc)
                refused.append(index)
    assert refused == over
    statuses = [r.status for r in qwen_emulator.requests]
    assert len(statuses) == len(texts) - len(over) and set(statuses) == {200}  # 0 rejections


def test_truncate_sends_98_to_100_percent_of_the_limit(qwen_emulator: Emulator) -> None:
    assert EXACT is not None
    text = _text_of("zh", 20_000, 99)
    with DashScopeClient(TEST_KEY, base_url=qwen_emulator.url) as client:
        client.embed_texts([text], model="text-embedding-v4", long_text="truncate")
    (sent,) = sent_bodies(qwen_emulator)[0]["input"]["texts"]
    assert text.startswith(sent)
    assert 0.98 * LIMIT <= EXACT(sent) <= LIMIT
    assert [r.status for r in qwen_emulator.requests] == [200]


def test_chunk_pieces_fill_the_limit_and_join_back(qwen_emulator: Emulator) -> None:
    assert EXACT is not None
    text = _text_of("en", 20_000, 98)
    with DashScopeClient(TEST_KEY, base_url=qwen_emulator.url) as client:
        result = client.embed_texts([text], model="text-embedding-v4", long_text="chunk")
    pieces = [t for b in sent_bodies(qwen_emulator) for t in b["input"]["texts"]]
    assert "".join(pieces) == text and len(pieces) == 3
    assert all(EXACT(p) <= LIMIT for p in pieces) and EXACT(pieces[0]) >= 0.98 * LIMIT
    assert len(result.embeddings) == 1


def _undercount(text: str) -> int:
    return len(text) // 4  # a Chinese character is about 0.7 tokens: this counts too few


def test_service_length_rejection_recuts_a_truncated_text(qwen_emulator: Emulator) -> None:
    assert EXACT is not None
    text = _text_of("zh", 14_000, 97)
    with DashScopeClient(TEST_KEY, base_url=qwen_emulator.url, token_counter=_undercount) as client:
        result = client.embed_texts(
            ["short", text], model="text-embedding-v4", long_text="truncate"
        )
    assert len(result.embeddings) == 2
    statuses = [r.status for r in qwen_emulator.requests]
    assert 400 in statuses and statuses[-1] == 200
    last = sent_bodies(qwen_emulator)[-1]["input"]["texts"]
    assert len(last) == 1 and text.startswith(last[0]) and EXACT(last[0]) <= LIMIT


def test_service_length_rejection_recuts_a_chunk_keeping_all_of_it(
    qwen_emulator: Emulator,
) -> None:
    assert EXACT is not None
    text = _text_of("zh", 14_000, 96)
    with DashScopeClient(TEST_KEY, base_url=qwen_emulator.url, token_counter=_undercount) as client:
        result = client.embed_texts([text], model="text-embedding-v4", long_text="chunk")
    assert len(result.embeddings) == 1
    accepted = [
        t
        for r in qwen_emulator.requests
        if r.status == 200 and r.json is not None
        for t in r.json["input"]["texts"]
    ]
    assert "".join(accepted) == text  # every part embedded, none dropped


def test_service_length_rejection_with_error_names_the_input(qwen_emulator: Emulator) -> None:
    assert EXACT is not None
    text = _text_of("zh", 9000, 95)
    with DashScopeClient(TEST_KEY, base_url=qwen_emulator.url, token_counter=_undercount) as client:
        with pytest.raises(PartialEmbeddingError) as info:
            client.embed_texts(["short", text, "also short"], model="text-embedding-v4")
    assert list(info.value.failed) == [1]
    failed = info.value.failed[1]
    assert failed.code == "InvalidParameter" and "Range of input length" in failed.message
    assert info.value.embeddings[0] is not None and info.value.embeddings[2] is not None
