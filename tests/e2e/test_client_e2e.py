"""The core client against the bundled emulator over real loopback HTTP, sync and async."""

from __future__ import annotations

import asyncio
import gc
import math
import threading
import time
import typing
import weakref

import httpx
import pytest

from dashscope_embeddings import (
    APIConnectionError,
    APITimeoutError,
    AsyncDashScopeClient,
    AuthenticationError,
    BadRequestError,
    DashScopeClient,
    EmbeddingResult,
    InvalidInputError,
    NotFoundError,
    RateLimitError,
    ServerError,
)
from dashscope_embeddings.emulator import Emulator
from tests.conftest import COMPAT_PATH, NATIVE_PATH, TEST_KEY, sent_bodies

TEXTS = [f"document number {i} about topic {i % 4}" for i in range(25)]


@pytest.fixture(params=["sync", "async"])
def embed(
    request: pytest.FixtureRequest, emulator: Emulator
) -> typing.Callable[..., EmbeddingResult]:
    """Call embed_texts on a fresh sync or async client pointed at the emulator."""

    def run(
        texts: typing.Sequence[str],
        client_kwargs: dict[str, typing.Any] | None = None,
        **kwargs: typing.Any,
    ) -> EmbeddingResult:
        ckw = {"base_url": emulator.url, "max_retries": 2, **(client_kwargs or {})}
        ckw.setdefault("api_key", TEST_KEY)
        if request.param == "sync":
            with DashScopeClient(**ckw) as client:
                return typing.cast(EmbeddingResult, client.embed_texts(texts, **kwargs))

        async def go() -> EmbeddingResult:
            async with AsyncDashScopeClient(**ckw) as client:
                return typing.cast(EmbeddingResult, await client.embed_texts(texts, **kwargs))

        return asyncio.run(go())

    return run


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record backoff waits instead of sleeping them."""
    waits: list[float] = []

    async def fake_async_sleep(delay: float) -> None:
        waits.append(delay)

    def fake_wait(cancel: object, delay: float) -> bool:
        waits.append(delay)
        return False

    monkeypatch.setattr("dashscope_embeddings._transport._wait", fake_wait)
    monkeypatch.setattr("dashscope_embeddings._transport._async_sleep", fake_async_sleep)
    return waits


def test_25_texts_on_v4_are_3_requests_of_at_most_10_in_input_order(
    embed: typing.Callable[..., EmbeddingResult], emulator: Emulator
) -> None:
    result = embed(TEXTS, model="text-embedding-v4", text_type="document")
    bodies = sent_bodies(emulator)
    assert len(bodies) == 3
    assert all(len(b["input"]["texts"]) <= 10 for b in bodies)
    assert all(b["parameters"]["text_type"] == "document" for b in bodies)
    sent = sorted(t for b in bodies for t in b["input"]["texts"])
    assert sent == sorted(TEXTS)
    assert result.embeddings is not None and len(result.embeddings) == 25
    # Input order: each vector equals the one the text gets on its own.
    emulator.clear_requests()
    for i in (0, 7, 13, 24):
        alone = embed([TEXTS[i]], model="text-embedding-v4", text_type="document").embeddings
        assert alone == [result.embeddings[i]]
    assert all(
        math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-6) for v in result.embeddings
    )


def test_v2_packs_25_per_request(
    embed: typing.Callable[..., EmbeddingResult], emulator: Emulator
) -> None:
    result = embed(TEXTS + [f"another text {i}" for i in range(5)], model="text-embedding-v2")
    assert [len(b["input"]["texts"]) for b in sent_bodies(emulator)] in ([15, 15],)
    assert result.embeddings is not None and {len(v) for v in result.embeddings} == {1536}


def test_dimension_text_type_and_instruct_reach_the_wire(
    embed: typing.Callable[..., EmbeddingResult], emulator: Emulator
) -> None:
    result = embed(
        ["what is the refund policy?"],
        model="text-embedding-v4",
        dimension=256,
        text_type="query",
        instruct="Retrieve support articles",
    )
    (body,) = sent_bodies(emulator)
    assert body["parameters"] == {
        "dimension": 256,
        "text_type": "query",
        "instruct": "Retrieve support articles",
    }
    assert result.embeddings is not None and len(result.embeddings[0]) == 256


def test_dense_and_sparse_from_one_request(
    embed: typing.Callable[..., EmbeddingResult], emulator: Emulator
) -> None:
    result = embed(
        ["wind and rain", "sorrow"], model="text-embedding-v3", output_type="dense&sparse"
    )
    assert len(sent_bodies(emulator)) == 1
    assert result.embeddings is not None and len(result.embeddings) == 2
    assert result.sparse_embeddings is not None and len(result.sparse_embeddings) == 2
    first = result.sparse_embeddings[0]
    assert len(first) > 0 and list(first.indices) == sorted(first.indices)
    assert first.tokens is not None and "wind" in first.tokens


def test_sparse_only(embed: typing.Callable[..., EmbeddingResult]) -> None:
    result = embed(["alpha beta"], model="text-embedding-v4", output_type="sparse")
    assert result.dense is None
    assert result.sparse_embeddings is not None and len(result.sparse_embeddings[0]) >= 2


def test_compatible_protocol(
    embed: typing.Callable[..., EmbeddingResult], emulator: Emulator
) -> None:
    result = embed(
        TEXTS[:12],
        client_kwargs={"protocol": "compatible"},
        model="text-embedding-v3",
        dimension=768,
    )
    bodies = sent_bodies(emulator, COMPAT_PATH)
    assert len(bodies) == 2 and not sent_bodies(emulator)
    assert all(b["dimensions"] == 768 and b["encoding_format"] == "float" for b in bodies)
    assert result.embeddings is not None and [len(v) for v in result.embeddings] == [768] * 12


def test_usage_and_cost(embed: typing.Callable[..., EmbeddingResult]) -> None:
    result = embed(TEXTS, model="text-embedding-v4")
    assert result.usage.requests == 3 and result.usage.total_tokens > 25
    assert result.usage.currency == "CNY"
    assert result.usage.cost == pytest.approx(result.usage.total_tokens * 0.0005 / 1000)
    assert len(result.request_ids) == 3 and all(result.request_ids)


def test_client_running_usage_total(emulator: Emulator) -> None:
    with DashScopeClient(TEST_KEY, base_url=emulator.url) as client:
        a = client.embed_texts(["one two"], model="text-embedding-v4")
        b = client.embed_texts(TEXTS, model="text-embedding-v4")
        assert client.usage.total_tokens == a.usage.total_tokens + b.usage.total_tokens
        assert client.usage.requests == 4
        client.reset_usage()
        assert client.usage.total_tokens == 0


def test_429_then_200_is_retried_with_retry_after(
    embed: typing.Callable[..., EmbeddingResult], emulator: Emulator, no_sleep: list[float]
) -> None:
    emulator.inject(
        429,
        "Throttling.RateQuota",
        "Requests rate limit exceeded.",
        headers={"retry-after": "0.25"},
    )
    result = embed(["hello"], model="text-embedding-v4")
    assert result.embeddings is not None
    assert [r.status for r in emulator.requests] == [429, 200]
    assert no_sleep == [0.25]


def test_500s_are_retried_per_request_without_resending_others(
    embed: typing.Callable[..., EmbeddingResult], emulator: Emulator, no_sleep: list[float]
) -> None:
    emulator.inject(500, "InternalError", "boom")
    result = embed(TEXTS, model="text-embedding-v4")
    assert result.embeddings is not None and len(result.embeddings) == 25
    statuses = [r.status for r in emulator.requests]
    assert sorted(statuses) == [200, 200, 200, 500]  # 3 batches + 1 retry, not 6
    assert len(no_sleep) == 1 and 0.375 <= no_sleep[0] <= 0.5


def test_retries_run_out(embed: typing.Callable[..., EmbeddingResult], emulator: Emulator) -> None:
    emulator.inject(503, "ServiceUnavailable", "busy", times=3)
    with pytest.raises(ServerError) as info:
        embed(["x"], model="text-embedding-v4")
    assert info.value.status_code == 503 and info.value.code == "ServiceUnavailable"
    assert info.value.request_id
    assert len(emulator.requests) == 3  # 1 + max_retries=2


def test_retry_after_beyond_the_cap_raises_at_once(
    embed: typing.Callable[..., EmbeddingResult], emulator: Emulator
) -> None:
    emulator.inject(429, "Throttling", "slow down", headers={"retry-after": "600"})
    with pytest.raises(RateLimitError) as info:
        embed(["x"], model="text-embedding-v4")
    assert info.value.retry_after == 600 and len(emulator.requests) == 1


def test_200_with_error_code_is_an_error(
    embed: typing.Callable[..., EmbeddingResult], emulator: Emulator
) -> None:
    emulator.inject(
        200,
        None,
        "",
        body={"request_id": "r-200", "code": "InvalidParameter", "message": "reported under 200"},
    )
    with pytest.raises(BadRequestError, match="reported under 200") as info:
        embed(["x"], model="text-embedding-v4")
    assert info.value.request_id == "r-200" and len(emulator.requests) == 1


def test_400_is_never_retried_the_request_is_split_instead(
    embed: typing.Callable[..., EmbeddingResult], emulator: Emulator
) -> None:
    emulator.inject(400, "InvalidParameter", "bad batch")
    result = embed(TEXTS[:10], model="text-embedding-v4", client_kwargs={"max_concurrency": 1})
    # the rejected request of 10 is sent again as two halves, which pass; nothing else re-sent
    sizes = [(r.status, len(r.json["input"]["texts"])) for r in emulator.requests]
    assert sizes == [(400, 10), (200, 5), (200, 5)]
    assert len(result.embeddings) == 10


def test_a_rejected_single_input_raises_the_services_error(
    embed: typing.Callable[..., EmbeddingResult], emulator: Emulator
) -> None:
    emulator.inject(400, "InvalidParameter", "bad input")
    with pytest.raises(BadRequestError, match="bad input") as info:
        embed(["only"], model="text-embedding-v4")
    assert [r.status for r in emulator.requests] == [400]
    assert info.value.partial is not None and list(info.value.partial.failed) == [0]


def test_wrong_key_is_authentication_error_without_the_key(
    embed: typing.Callable[..., EmbeddingResult], emulator: Emulator
) -> None:
    with pytest.raises(AuthenticationError) as info:
        embed(["x"], client_kwargs={"api_key": "sk-wrong-secret-999"}, model="text-embedding-v4")
    assert info.value.status_code == 401 and info.value.code == "InvalidApiKey"
    assert "sk-wrong-secret-999" not in str(info.value) and "sk-wrong-secret-999" not in repr(
        info.value.body
    )
    assert len(emulator.requests) == 1
    assert TEST_KEY not in repr(emulator.requests)


def test_unknown_model_is_not_found(embed: typing.Callable[..., EmbeddingResult]) -> None:
    with pytest.raises(NotFoundError):
        embed(["x"], model="no-such-model")


def test_bad_input_fails_before_sending(
    embed: typing.Callable[..., EmbeddingResult], emulator: Emulator
) -> None:
    with pytest.raises(InvalidInputError, match="input 3 is empty"):
        embed(["a", "b", "c", "", "e"], model="text-embedding-v4")
    with pytest.raises(InvalidInputError, match="dimension 100"):
        embed(["a"], model="text-embedding-v4", dimension=100)
    assert emulator.requests == []


def test_empty_list_sends_nothing(
    embed: typing.Callable[..., EmbeddingResult], emulator: Emulator
) -> None:
    result = embed([], model="text-embedding-v4")
    assert result.embeddings == [] and result.usage.requests == 0 and emulator.requests == []


def test_connection_refused_is_retried_then_raised(no_sleep: list[float]) -> None:
    with (
        DashScopeClient(TEST_KEY, base_url="http://127.0.0.1:1", max_retries=2) as client,
        pytest.raises(APIConnectionError) as info,
    ):
        client.embed_texts(["x"])
    assert not isinstance(info.value, APITimeoutError)
    assert len(no_sleep) == 2 and TEST_KEY not in str(info.value)


def test_timeout_is_api_timeout_error() -> None:
    with Emulator(api_key=TEST_KEY, latency=1.0) as slow:
        with (
            DashScopeClient(TEST_KEY, base_url=slow.url, timeout=0.2, max_retries=0) as client,
            pytest.raises(APITimeoutError),
        ):
            client.embed_texts(["x"])

        async def go() -> None:
            async with AsyncDashScopeClient(
                TEST_KEY, base_url=slow.url, timeout=0.2, max_retries=0
            ) as client:
                await client.embed_texts(["x"])

        with pytest.raises(APITimeoutError):
            asyncio.run(go())


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_max_concurrency_bounds_requests_in_flight(kind: str) -> None:
    texts = [f"text {i}" for i in range(60)]  # 6 requests
    with Emulator(api_key=TEST_KEY, latency=0.05, max_in_flight=2) as emu:
        if kind == "sync":
            with DashScopeClient(
                TEST_KEY, base_url=emu.url, max_concurrency=2, max_retries=0
            ) as client:
                result = client.embed_texts(texts)
        else:

            async def go() -> EmbeddingResult:
                async with AsyncDashScopeClient(
                    TEST_KEY, base_url=emu.url, max_concurrency=2, max_retries=0
                ) as client:
                    return await client.embed_texts(texts)

            result = asyncio.run(go())
        assert [r.status for r in emu.requests] == [200] * 6
        assert result.embeddings is not None and len(result.embeddings) == 60


def test_concurrency_above_the_servers_cap_is_throttled_and_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float] = []

    def scaled_wait(cancel: threading.Event | None, delay: float) -> bool:
        waits.append(delay)  # real backoff, ten times shorter
        if cancel is None:
            time.sleep(delay / 10)
            return False
        return cancel.wait(delay / 10)

    monkeypatch.setattr("dashscope_embeddings._transport._wait", scaled_wait)
    texts = [f"text {i}" for i in range(80)]
    with Emulator(api_key=TEST_KEY, latency=0.05, max_in_flight=1) as emu:
        with DashScopeClient(
            TEST_KEY, base_url=emu.url, max_concurrency=2, max_retries=10
        ) as client:
            result = client.embed_texts(texts)
        statuses = [r.status for r in emu.requests]
    assert 429 in statuses and statuses.count(200) == 8
    assert len(waits) == statuses.count(429)
    assert result.embeddings is not None and len(result.embeddings) == 80


def test_async_client_survives_several_event_loops(emulator: Emulator) -> None:
    client = AsyncDashScopeClient(TEST_KEY, base_url=emulator.url)
    pools: list[httpx.AsyncClient] = []

    async def go() -> int:
        result = await client.embed_texts(["a b c"])
        pools.append(await client._connections.http())
        return len(result.embeddings or [])

    assert asyncio.run(go()) == 1
    assert asyncio.run(go()) == 1
    assert client.usage.requests == 2
    # each loop had its own pool, closed when asyncio.run shut that loop down
    assert len(pools) == 2 and pools[0] is not pools[1]
    assert all(pool.is_closed for pool in pools)


def test_workspace_header_is_sent(emulator: Emulator) -> None:
    with DashScopeClient(TEST_KEY, base_url=emulator.url, workspace="ws-42") as client:
        client.embed_texts(["x"])
    (req,) = emulator.requests
    assert req.headers["x-dashscope-workspace"] == "ws-42"
    assert req.headers["authorization"] == "<redacted>"


def test_compatible_protocol_refuses_text_type(
    embed: typing.Callable[..., EmbeddingResult], emulator: Emulator
) -> None:
    with pytest.raises(InvalidInputError, match="text_type needs the native endpoint"):
        embed(["x"], client_kwargs={"protocol": "compatible"}, text_type="query")
    assert emulator.requests == []


def test_key_never_in_logs(
    emulator: Emulator, caplog: pytest.LogCaptureFixture, no_sleep: list[float]
) -> None:
    emulator.inject(500, "InternalError", "boom")
    with caplog.at_level("DEBUG"), DashScopeClient(TEST_KEY, base_url=emulator.url) as client:
        client.embed_texts(["x"])
    assert any("retrying" in r.getMessage() for r in caplog.records)
    assert all(TEST_KEY not in r.getMessage() for r in caplog.records)
    assert TEST_KEY not in caplog.text


def test_injected_http_clients_are_used_and_left_open(emulator: Emulator) -> None:
    seen: list[str] = []
    http = httpx.Client(event_hooks={"request": [lambda r: seen.append(r.url.path)]})
    with DashScopeClient(TEST_KEY, base_url=emulator.url, http_client=http) as client:
        client.embed_texts(["x"])
    assert seen == [NATIVE_PATH] and not http.is_closed
    http.close()

    async def go() -> bool:
        async def hook(r: httpx.Request) -> None:
            seen.append(r.url.path)

        ahttp = httpx.AsyncClient(event_hooks={"request": [hook]})
        async with AsyncDashScopeClient(
            TEST_KEY, base_url=emulator.url, http_client=ahttp
        ) as client:
            await client.embed_texts(["y"])
        still_open = not ahttp.is_closed
        await ahttp.aclose()
        return still_open

    assert asyncio.run(go()) and seen == [NATIVE_PATH, NATIVE_PATH]


def test_two_clients_with_different_keys_side_by_side() -> None:
    with Emulator(api_key="key-one") as one, Emulator(api_key="key-two") as two:
        a = DashScopeClient("key-one", base_url=one.url)
        b = DashScopeClient("key-two", base_url=two.url, protocol="compatible")
        with a, b:
            ra = a.embed_texts(TEXTS, model="text-embedding-v4")
            rb = b.embed_texts(TEXTS, model="text-embedding-v3")
        assert ra.embeddings is not None and rb.embeddings is not None
        assert len(one.requests) == 3 and len(two.requests) == 3
        assert {r.path for r in two.requests} == {COMPAT_PATH}
        assert (
            a.usage.total_tokens == ra.usage.total_tokens
            and b.usage.total_tokens == rb.usage.total_tokens
        )


def test_finished_event_loops_are_collected(emulator: Emulator) -> None:
    """Per-loop state ends with its loop: 300 ``asyncio.run`` leave no closed loop behind."""
    client = AsyncDashScopeClient(TEST_KEY, base_url=emulator.url)
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def once() -> None:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        await client.embed_texts(["a b c"])

    for _ in range(300):
        asyncio.run(once())
    gc.collect()
    alive = sum(ref() is not None for ref in loops)
    assert alive == 0, f"{alive} of 300 finished event loops are still alive"
    assert client.usage.requests == 300
