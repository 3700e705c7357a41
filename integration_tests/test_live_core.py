from __future__ import annotations

import asyncio

import pytest

from dashscope_embeddings import AsyncDashScopeClient, AuthenticationError, DashScopeClient

from .conftest import REGION


@pytest.fixture
def client() -> DashScopeClient:
    return DashScopeClient(region=REGION)


def test_dense_batches_and_order(client: DashScopeClient) -> None:
    texts = [f"sentence number {i} about the sea" for i in range(23)]
    result = client.embed_texts(texts, model="text-embedding-v4", text_type="document")
    assert result.embeddings is not None and len(result.embeddings) == 23
    assert result.usage.requests == 3 and result.usage.total_tokens > 0
    alone = client.embed_texts([texts[17]], model="text-embedding-v4", text_type="document")
    assert alone.embeddings is not None
    dot = sum(a * b for a, b in zip(alone.embeddings[0], result.embeddings[17], strict=True))
    assert dot > 0.99


@pytest.mark.parametrize("dimension", [64, 512, 2048])
def test_dimensions(client: DashScopeClient, dimension: int) -> None:
    result = client.embed_texts(["hello"], model="text-embedding-v4", dimension=dimension)
    assert result.embeddings is not None and len(result.embeddings[0]) == dimension


def test_query_with_instruct_and_sparse(client: DashScopeClient) -> None:
    result = client.embed_texts(
        ["what is the return policy?"],
        model="text-embedding-v4",
        text_type="query",
        instruct="Given a customer question, retrieve the policy that answers it",
        output_type="dense&sparse",
    )
    assert result.embeddings is not None and result.sparse_embeddings is not None
    assert len(result.sparse_embeddings[0]) > 0


def test_sparse_only(client: DashScopeClient) -> None:
    result = client.embed_texts(["wind and rain"], model="text-embedding-v3", output_type="sparse")
    assert result.sparse_embeddings is not None and len(result.sparse_embeddings[0]) > 0


def test_compatible_protocol() -> None:
    with DashScopeClient(region=REGION, protocol="compatible") as client:
        result = client.embed_texts(["hello", "world"], model="text-embedding-v4", dimension=256)
    assert result.embeddings is not None and [len(v) for v in result.embeddings] == [256, 256]


def test_async() -> None:
    async def go() -> int:
        async with AsyncDashScopeClient(region=REGION) as client:
            result = await client.embed_texts(
                [f"t{i}" for i in range(15)], model="text-embedding-v4"
            )
            return len(result.embeddings or [])

    assert asyncio.run(go()) == 15


def test_wrong_key_is_401() -> None:
    with (
        DashScopeClient("sk-invalid", region=REGION) as client,
        pytest.raises(AuthenticationError) as info,
    ):
        client.embed_texts(["x"])
    assert info.value.request_id
