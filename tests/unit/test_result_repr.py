"""Results print as a summary, not as every float.

``asyncio.run(client.embed_texts(...))`` (Python 3.11) formats the finished task's result
twice when it restores the SIGINT handler; with the default dataclass repr that is seconds of
CPU and megabytes of text for a few thousand vectors, and a REPL or a log line floods.
"""

from __future__ import annotations

import time

from dashscope_embeddings import EmbeddingResult, PartialResult, SparseVector, Usage
from dashscope_embeddings._stream import StreamPart
from dashscope_embeddings._types import FailedInput

DENSE = [[0.125] * 1024 for _ in range(2000)]
USAGE = Usage(total_tokens=12, requests=2, cost=0.5, currency="CNY")


def test_a_result_repr_summarises_its_vectors() -> None:
    result = EmbeddingResult("text-embedding-v4", DENSE, None, USAGE, ("r1", "r2"))
    started = time.process_time()
    text = repr(result)
    assert time.process_time() - started < 0.05
    assert len(text) < 400, text
    assert "text-embedding-v4" in text and "2000 x 1024" in text
    assert "total_tokens=12" in text and "request_ids=2" in text
    assert "0.125" not in text


def test_sparse_and_partial_results_summarise_too() -> None:
    sparse = [SparseVector((1, 2), (0.5, 0.25)) for _ in range(3)]
    result = EmbeddingResult("text-embedding-v4", None, sparse, USAGE)
    assert "sparse=3 vectors" in repr(result) and "dense=None" in repr(result)
    partial = PartialResult(
        "text-embedding-v4",
        [DENSE[0], None, DENSE[2]],
        None,
        {1: FailedInput(1, "DataInspectionFailed", "rejected")},
        USAGE,
    )
    text = repr(partial)
    assert "dense=3 (1 None) x 1024" in text and "failed=[1]" in text and "0.125" not in text


def test_a_stream_part_summarises_its_vectors() -> None:
    part = StreamPart(start=20, embeddings=DENSE[:10], sparse_embeddings=None, count=10)
    text = repr(part)
    assert "start=20" in text and "10 x 1024" in text and "0.125" not in text
