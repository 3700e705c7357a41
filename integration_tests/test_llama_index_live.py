from __future__ import annotations

import asyncio

from dashscope_embeddings.llama_index import DashScopeEmbedding

from .conftest import REGION


def test_batch_query_and_async() -> None:
    emb = DashScopeEmbedding(model_name="text-embedding-v4", embed_batch_size=25, region=REGION)
    vectors = emb.get_text_embedding_batch([f"node {i}" for i in range(25)])
    assert len(vectors) == 25 and len(vectors[0]) == 1024
    assert len(emb.get_query_embedding("question")) == 1024
    assert len(asyncio.run(emb.aget_query_embedding("question"))) == 1024
