"""A client-side ``tpm`` budget paces every call that carries tokens, multimodal ones too.

The transport runs on ``httpx.MockTransport``; the budget is a recording ``tpm_budget``.
"""

from __future__ import annotations

import asyncio
import json

import httpx

from dashscope_embeddings import AsyncDashScopeClient, DashScopeClient, Image
from tests.conftest import TEST_KEY
from tests.media import png

BASE_URL = "http://127.0.0.1:9"
DIMENSION = 1152  # tongyi-embedding-vision-plus's default


class RecordingBudget:
    """A ``RateBudget`` that never makes anyone wait and records what is spent."""

    def __init__(self) -> None:
        self.spent: list[int] = []

    def wait_time(self, units: int = 1) -> float:
        return 0.0

    def spend(self, units: int = 1) -> None:
        self.spent.append(units)


def _answer(request: httpx.Request) -> httpx.Response:
    contents = json.loads(request.content)["input"]["contents"]
    embeddings = [{"index": i, "embedding": [0.5] * DIMENSION} for i in range(len(contents))]
    body = {"output": {"embeddings": embeddings}, "usage": {"input_tokens": 3}, "request_id": "r"}
    return httpx.Response(200, json=body)


INPUTS: list[object] = ["a red shoe on a wooden floor", Image(png())]


def test_tpm_budget_paces_multimodal_calls() -> None:
    budget = RecordingBudget()
    http = httpx.Client(transport=httpx.MockTransport(_answer))
    with DashScopeClient(TEST_KEY, base_url=BASE_URL, http_client=http, tpm_budget=budget) as c:
        c.embed_multimodal(INPUTS)
    assert len(budget.spent) == 1  # one request
    # the text's estimate and an image's allowance, not 0
    assert budget.spent[0] > 100


def test_tpm_budget_paces_multimodal_calls_async() -> None:
    budget = RecordingBudget()

    async def main() -> None:
        http = httpx.AsyncClient(transport=httpx.MockTransport(_answer))
        async with AsyncDashScopeClient(
            TEST_KEY, base_url=BASE_URL, http_client=http, tpm_budget=budget
        ) as client:
            await client.embed_multimodal(INPUTS)
        await http.aclose()

    asyncio.run(main())
    assert len(budget.spent) == 1 and budget.spent[0] > 100


def test_text_only_multimodal_tokens_follow_the_text() -> None:
    budget = RecordingBudget()
    http = httpx.Client(transport=httpx.MockTransport(_answer))
    with DashScopeClient(TEST_KEY, base_url=BASE_URL, http_client=http, tpm_budget=budget) as c:
        c.embed_multimodal(["one two three four", "five six"])
    assert budget.spent == [6]  # estimate_tokens: 4 + 2 words
