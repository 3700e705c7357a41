"""``with_options`` copies on ``httpx.MockTransport``: what they share, and what they close."""

from __future__ import annotations

import asyncio
import gc
import json

import httpx
import pytest

from dashscope_embeddings import AsyncDashScopeClient, ClientClosedError, DashScopeClient
from tests.conftest import TEST_KEY

BASE_URL = "http://127.0.0.1:9"


def _answer(request: httpx.Request) -> httpx.Response:
    texts = json.loads(request.content)["input"]["texts"]
    embeddings = [{"text_index": i, "embedding": [0.5] * 1024} for i in range(len(texts))]
    body = {"output": {"embeddings": embeddings}, "usage": {"total_tokens": 2}, "request_id": "r"}
    return httpx.Response(200, json=body)


def test_copies_share_usage_and_never_close_an_injected_client() -> None:
    http = httpx.Client(transport=httpx.MockTransport(_answer))
    parent = DashScopeClient(TEST_KEY, base_url=BASE_URL, http_client=http)
    narrow = parent.with_options(max_concurrency=2, adaptive_concurrency=False)
    quick = narrow.with_options(max_retries=0)
    assert (narrow.concurrency_limit, parent.max_concurrency) == (2, 64)
    assert quick.max_concurrency == 2 and quick.max_retries == 0
    for client in (parent, narrow, quick):
        client.embed_texts(["x"])
    assert parent.usage.requests == quick.usage.requests == 3
    del parent
    gc.collect()
    quick.embed_texts(["y"])
    narrow.close()
    quick.embed_texts(["z"])  # the copy of a closed copy still works
    quick.close()
    assert not http.is_closed  # injected: ours to use, never to close
    with pytest.raises(ClientClosedError):
        quick.with_options(timeout=1)
    http.close()


def test_an_injected_clients_timeout_holds_in_copies_unless_one_is_given() -> None:
    seen: list[object] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"]["read"])
        return _answer(request)

    http = httpx.Client(transport=httpx.MockTransport(answer), timeout=7)
    with DashScopeClient(TEST_KEY, base_url=BASE_URL, http_client=http) as client:
        client.with_options(max_retries=1).embed_texts(["x"])
        client.with_options(timeout=3).embed_texts(["x"])
    assert seen == [7, 3]


def test_async_copies_share_the_loops_pool_and_usage() -> None:
    async def main() -> int:
        parent = AsyncDashScopeClient(TEST_KEY, base_url=BASE_URL)
        copy = parent.with_options(max_concurrency=4)
        # the copy's first call opens the loop's pool; the parent's reuses it
        first = await copy._connections.http()
        assert await parent._connections.http() is first
        await parent.aclose()
        assert not first.is_closed
        await copy.aclose()
        assert first.is_closed
        return copy.max_concurrency

    assert asyncio.run(main()) == 4
