"""The Qwen vocabulary is built once per process, however many threads ask for it at once."""

from __future__ import annotations

import threading

import pytest

from dashscope_embeddings import _tokenizer


def test_threads_asking_at_once_build_the_vocabulary_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if _tokenizer.exact_counter() is None:
        pytest.skip("the tokenizer extra (dashscope + tiktoken) is not installed")
    reads = 0
    real_path = _tokenizer._vocabulary_path

    def counting_path() -> str | None:
        nonlocal reads
        reads += 1
        return real_path()

    monkeypatch.setattr(_tokenizer, "_vocabulary_path", counting_path)
    _tokenizer._load_once.cache_clear()
    start = threading.Barrier(8)
    counters: list[object] = []

    def ask() -> None:
        start.wait()
        counters.append(_tokenizer.exact_counter())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert reads == 1
    assert len(counters) == 8 and all(c is counters[0] for c in counters)
