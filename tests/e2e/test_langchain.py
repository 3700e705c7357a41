"""The LangChain adapter: standard suites, the wire it produces, and a real vector store."""

from __future__ import annotations

import asyncio
import typing

import pytest
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

from dashscope_embeddings import BadRequestError
from dashscope_embeddings.emulator import Emulator
from dashscope_embeddings.langchain import DashScopeEmbeddings
from tests.conftest import TEST_KEY, sent_bodies


class TestStandardUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[DashScopeEmbeddings]:
        return DashScopeEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, typing.Any]:
        return {"model": "text-embedding-v4", "api_key": TEST_KEY}

    @property
    def init_from_env_params(
        self,
    ) -> tuple[dict[str, str], dict[str, typing.Any], dict[str, typing.Any]]:
        return (
            {"DASHSCOPE_API_KEY": TEST_KEY},
            {"model": "text-embedding-v3"},
            {"dashscope_api_key": TEST_KEY, "model": "text-embedding-v3"},
        )


class TestStandardIntegrationAgainstEmulator(EmbeddingsIntegrationTests):
    @pytest.fixture(autouse=True)
    def _point_at_emulator(self, emulator_env: Emulator) -> None:
        return None

    @property
    def embeddings_class(self) -> type[DashScopeEmbeddings]:
        return DashScopeEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, typing.Any]:
        return {"model": "text-embedding-v4"}


def test_drop_in_constructor_arguments(emulator_env: Emulator) -> None:
    emb = DashScopeEmbeddings(model="text-embedding-v2", dashscope_api_key=TEST_KEY, max_retries=3)
    assert emb.model == "text-embedding-v2" and emb.max_retries == 3
    assert (
        emb.dashscope_api_key is not None and emb.dashscope_api_key.get_secret_value() == TEST_KEY
    )
    assert DashScopeEmbeddings().model == "text-embedding-v4"  # one default for the package
    assert len(emb.embed_query("hello")) == 1536


def test_unknown_argument_is_refused_with_the_likely_name(emulator_env: Emulator) -> None:
    with pytest.raises(ValueError, match="no option 'dimenson'; did you mean 'dimension'"):
        DashScopeEmbeddings(dimenson=512)
    # the other spelling is accepted as an alias
    assert DashScopeEmbeddings(dimensions=512).dimension == 512


def test_bad_settings_fail_at_construction(emulator_env: Emulator) -> None:
    # pydantic wraps the ValueError in a ValidationError (also a ValueError), message intact
    with pytest.raises(ValueError, match="ignores instruct"):
        DashScopeEmbeddings(model="text-embedding-v3", instruct="Find")
    with pytest.raises(ValueError, match="dimension 100"):
        DashScopeEmbeddings(model="text-embedding-v4", dimension=100)
    with pytest.raises(ValueError, match="unknown region 'mars'"):
        DashScopeEmbeddings(model="text-embedding-v4", region="mars")


def test_embed_documents_25_texts_v4(emulator_env: Emulator) -> None:
    texts = [f"chunk {i}: notes on subject {i % 5}" for i in range(25)]
    emb = DashScopeEmbeddings(model="text-embedding-v4")
    vectors = emb.embed_documents(texts)
    bodies = sent_bodies(emulator_env)
    assert len(bodies) == 3
    assert max(len(b["input"]["texts"]) for b in bodies) <= 10
    assert {b["parameters"]["text_type"] for b in bodies} == {"document"}
    assert len(vectors) == 25
    for i in (0, 12, 24):
        assert emb.embed_documents([texts[i]]) == [vectors[i]]
    assert emb.usage.requests == 6 and emb.usage.total_tokens > 0


@pytest.mark.parametrize("instruct", [None, "Given a question, retrieve passages that answer it"])
def test_embed_query_sends_query_and_instruct(emulator_env: Emulator, instruct: str | None) -> None:
    emb = DashScopeEmbeddings(model="text-embedding-v4", instruct=instruct, dimension=512)
    vector = emb.embed_query("how do refunds work?")
    (body,) = sent_bodies(emulator_env)
    assert body["parameters"]["text_type"] == "query"
    assert body["parameters"].get("instruct") == instruct
    assert body["parameters"]["dimension"] == 512 and len(vector) == 512
    emulator_env.clear_requests()
    emb.embed_documents(["doc"])
    (doc_body,) = sent_bodies(emulator_env)
    assert "instruct" not in doc_body["parameters"]


def test_async_is_real_async(emulator_env: Emulator) -> None:
    emb = DashScopeEmbeddings(model="text-embedding-v4")
    texts = [f"t{i} words" for i in range(12)]

    async def go() -> tuple[list[list[float]], list[float]]:
        return await emb.aembed_documents(texts), await emb.aembed_query("t1 words")

    docs, query = asyncio.run(go())
    assert docs == emb.embed_documents(texts)
    assert len(query) == 1024
    # 3 async requests (2 + 1) and 2 sync ones for the comparison call, all in one total
    assert emb.usage.requests == 5


def test_errors_raise_not_empty_vectors(emulator_env: Emulator) -> None:
    emulator_env.inject(400, "InvalidParameter", "rejected")
    with pytest.raises(BadRequestError):
        DashScopeEmbeddings(model="text-embedding-v4").embed_documents(["a"])


def test_key_is_secret_everywhere(emulator_env: Emulator) -> None:
    emb = DashScopeEmbeddings(model="text-embedding-v4", api_key="sk-lc-secret-1")
    for shown in (
        repr(emb),
        str(emb),
        str(emb.model_dump()),
        emb.model_dump_json(),
        repr(emb._runtime_state),
    ):
        assert "sk-lc-secret-1" not in shown
    with emb._runtime().sync_client(emb._call()) as client:
        assert "sk-lc-secret-1" not in repr(client)


def test_in_memory_vector_store_round_trip(emulator_env: Emulator) -> None:
    store = InMemoryVectorStore(DashScopeEmbeddings(model="text-embedding-v4"))
    store.add_documents(
        [
            Document(
                page_content="Refunds are issued within 30 days of purchase.",
                metadata={"id": "refund"},
            ),
            Document(
                page_content="Shipping takes three to five business days.",
                metadata={"id": "shipping"},
            ),
            Document(
                page_content="Our office is closed on public holidays.", metadata={"id": "office"}
            ),
        ]
    )
    hits = store.similarity_search("how long do refunds take", k=1)
    assert hits[0].metadata["id"] == "refund"
    hits = asyncio.run(store.asimilarity_search("shipping days", k=1))
    assert hits[0].metadata["id"] == "shipping"


def test_compatible_protocol_embeds_queries_without_text_type(emulator_env: Emulator) -> None:
    emb = DashScopeEmbeddings(model="text-embedding-v4", protocol="compatible", dimension=256)
    assert len(emb.embed_query("hello")) == 256
    assert len(emb.embed_documents(["a", "b"])) == 2
    (q, d) = [r.json for r in emulator_env.requests]
    assert "text_type" not in q and "text_type" not in d
    assert all(r.path == "/compatible-mode/v1/embeddings" for r in emulator_env.requests)
    with pytest.raises(ValueError, match="instruct needs the native endpoint"):
        DashScopeEmbeddings(model="text-embedding-v4", protocol="compatible", instruct="Find")


def test_close_releases_and_reopens(emulator_env: Emulator) -> None:
    emb = DashScopeEmbeddings(model="text-embedding-v4")
    first = emb.embed_query("hello")
    emb.close()
    assert emb.embed_query("hello") == first
