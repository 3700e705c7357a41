"""The LlamaIndex adapter: batching, text_type, pickling, async, and a real index."""

from __future__ import annotations

import asyncio
import pickle

import pytest
from llama_index.core import VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import TextNode

from dashscope_embeddings import ServerError
from dashscope_embeddings.emulator import Emulator
from dashscope_embeddings.llama_index import (
    DashScopeEmbedding,
    DashScopeTextEmbeddingModels,
    DashScopeTextEmbeddingType,
)
from tests.conftest import TEST_KEY, sent_bodies


def test_is_a_base_embedding_defaulting_to_the_current_model(emulator_env: Emulator) -> None:
    emb = DashScopeEmbedding()
    assert isinstance(emb, BaseEmbedding)
    assert emb.model_name == "text-embedding-v4" and emb.embed_batch_size == 25
    assert emb.text_type == "document" and DashScopeEmbedding.class_name() == "DashScopeEmbedding"


def test_old_constructor_forms(emulator_env: Emulator) -> None:
    emb = DashScopeEmbedding(
        DashScopeTextEmbeddingModels.TEXT_EMBEDDING_V3,
        DashScopeTextEmbeddingType.TEXT_TYPE_DOCUMENT,
        TEST_KEY,
        10,
    )
    assert (emb.model_name, emb.text_type, emb.embed_batch_size) == (
        "text-embedding-v3",
        "document",
        10,
    )
    assert len(emb.get_text_embedding("hello")) == 1024


def test_unknown_argument_is_refused_with_the_likely_name(emulator_env: Emulator) -> None:
    with pytest.raises(ValueError, match="no option 'dimenson'; did you mean 'dimension'"):
        DashScopeEmbedding(dimenson=512)
    # the other spelling is accepted as an alias
    assert DashScopeEmbedding(dimensions=512).dimension == 512


def test_embed_batch_size_25_never_sends_more_than_10(emulator_env: Emulator) -> None:
    emb = DashScopeEmbedding(model_name="text-embedding-v4", embed_batch_size=25)
    texts = [f"node {i} text about {i % 3}" for i in range(60)]
    vectors = emb.get_text_embedding_batch(texts)
    sizes = [len(b["input"]["texts"]) for b in sent_bodies(emulator_env)]
    assert max(sizes) <= 10 and sum(sizes) == 60
    assert {b["parameters"]["text_type"] for b in sent_bodies(emulator_env)} == {"document"}
    assert vectors[7] == emb.get_text_embedding(texts[7])


def test_text_type_really_reaches_the_service(emulator_env: Emulator) -> None:
    emb = DashScopeEmbedding(model_name="text-embedding-v4", text_type="query", instruct=None)
    emb.get_text_embedding("x")
    emb.get_query_embedding("y")
    assert [b["parameters"]["text_type"] for b in sent_bodies(emulator_env)] == ["query", "query"]
    emulator_env.clear_requests()
    DashScopeEmbedding(model_name="text-embedding-v4").get_text_embedding("x")
    assert sent_bodies(emulator_env)[0]["parameters"]["text_type"] == "document"


def test_async_hooks(emulator_env: Emulator) -> None:
    emb = DashScopeEmbedding(model_name="text-embedding-v4", instruct="Retrieve passages")

    async def go() -> tuple[list[list[float]], list[float], list[float]]:
        batch = await emb.aget_text_embedding_batch([f"t{i}" for i in range(15)])
        query = await emb.aget_query_embedding("question")
        one = await emb.aget_text_embedding("t3")
        return batch, query, one

    batch, query, one = asyncio.run(go())
    assert len(batch) == 15 and one == batch[3] and len(query) == 1024
    query_body = [b for b in sent_bodies(emulator_env) if b["parameters"]["text_type"] == "query"]
    assert query_body and query_body[0]["parameters"]["instruct"] == "Retrieve passages"


def test_pickles_and_works_after(emulator_env: Emulator) -> None:
    emb = DashScopeEmbedding(model_name="text-embedding-v4", api_key=TEST_KEY, dimension=256)
    before = emb.get_text_embedding("pickle me")
    clone = pickle.loads(pickle.dumps(emb))
    assert clone.get_text_embedding("pickle me") == before
    assert clone.dimension == 256


def test_failures_raise_instead_of_returning_none(emulator_env: Emulator) -> None:
    emulator_env.inject(500, "InternalError", "down", times=3)
    with pytest.raises(ServerError):
        DashScopeEmbedding(model_name="text-embedding-v4", max_retries=0).get_text_embedding("x")


def test_key_never_serialised(emulator_env: Emulator) -> None:
    emb = DashScopeEmbedding(model_name="text-embedding-v4", api_key="sk-li-secret-2")
    for shown in (repr(emb), str(emb.to_dict()), emb.to_json(), str(emb.to_payload())):
        assert "sk-li-secret-2" not in shown


def test_vector_store_index_round_trip(emulator_env: Emulator) -> None:
    nodes = [
        TextNode(text="Refunds are issued within 30 days of purchase.", id_="refund"),
        TextNode(text="Shipping takes three to five business days.", id_="shipping"),
        TextNode(text="Our office is closed on public holidays.", id_="office"),
    ]
    index = VectorStoreIndex(nodes, embed_model=DashScopeEmbedding(model_name="text-embedding-v4"))
    hits = index.as_retriever(similarity_top_k=1).retrieve("how long do refunds take")
    assert hits[0].node.node_id == "refund"


def test_compatible_protocol_refuses_query_text_type(emulator_env: Emulator) -> None:
    with pytest.raises(ValueError, match="needs the native endpoint"):
        DashScopeEmbedding(model_name="text-embedding-v4", protocol="compatible", text_type="query")
    emb = DashScopeEmbedding(model_name="text-embedding-v4", protocol="compatible")
    assert len(emb.get_query_embedding("q")) == 1024


def test_serialisation_round_trip(emulator_env: Emulator) -> None:
    emb = DashScopeEmbedding(
        model_name="text-embedding-v4", dimension=512, text_type="query", max_concurrency=2
    )
    clone = DashScopeEmbedding.from_dict(emb.to_dict())
    assert (clone.model_name, clone.dimension, clone.text_type, clone.max_concurrency) == (
        "text-embedding-v4",
        512,
        "query",
        2,
    )
    assert clone.get_text_embedding("x") == emb.get_text_embedding("x")


def test_ingestion_pipeline_with_worker_processes(emulator_env: Emulator) -> None:
    from llama_index.core.ingestion import IngestionPipeline

    nodes = [TextNode(text=f"node {i} about things", id_=str(i)) for i in range(40)]
    pipeline = IngestionPipeline(
        transformations=[DashScopeEmbedding(model_name="text-embedding-v4")]
    )
    out = pipeline.run(nodes=nodes, num_workers=2)
    assert sorted(n.node_id for n in out) == sorted(n.node_id for n in nodes)
    assert all(n.embedding is not None and len(n.embedding) == 1024 for n in out)
    sizes = [len(b["input"]["texts"]) for b in sent_bodies(emulator_env)]
    assert sum(sizes) == 40 and max(sizes) <= 10  # sent from the worker processes
