"""The one request path through ``httpx.MockTransport``: deadlines, retries, usage, logs."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest

from dashscope_embeddings import (
    APIConnectionError,
    APITimeoutError,
    AsyncDashScopeClient,
    AuthenticationError,
    DashScopeClient,
    ResponseValidationError,
    _transport,
)

BASE = "https://dashscope.test/api/v1"
KEY = "sk-unit-transport-key"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(_transport, "_monotonic", fake)
    monkeypatch.setattr(_transport, "_wait", lambda cancel, delay: False)
    return fake


def embedding_body(count: int, tokens: int) -> bytes:
    return json.dumps(
        {
            "output": {
                "embeddings": [{"embedding": [0.5] * 64, "text_index": i} for i in range(count)]
            },
            "usage": {"total_tokens": tokens},
            "request_id": "req-1",
        }
    ).encode()


class LateStream(httpx.SyncByteStream):
    """A body whose chunks arrive after the clock has moved ``late`` seconds."""

    def __init__(self, chunks: list[bytes], clock: Clock, late: float) -> None:
        self.chunks, self.clock, self.late = chunks, clock, late

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.clock.now += self.late
            yield chunk


def client_with(
    handler: Callable[[httpx.Request], httpx.Response], **options: object
) -> DashScopeClient:
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return DashScopeClient(KEY, base_url=BASE, http_client=http, **options)  # type: ignore[arg-type]


def test_complete_answer_after_the_deadline_is_kept_and_billed_once(clock: Clock) -> None:
    sent: list[httpx.Request] = []
    body = embedding_body(2, 7)

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        # The whole body arrives in one piece, just after the attempt's deadline.
        return httpx.Response(
            200,
            headers={"content-type": "application/json", "content-length": str(len(body))},
            stream=LateStream([body], clock, late=11.0),
        )

    with client_with(handler, timeout=10.0) as client:
        result = client.embed_texts(["a", "b"], model="text-embedding-v4", dimension=64)
        assert len(result.embeddings) == 2
        assert len(sent) == 1  # never sent again: the service billed the first answer
        assert client.usage.total_tokens == 7


def test_complete_chunked_answer_after_the_deadline_is_kept(clock: Clock) -> None:
    sent: list[httpx.Request] = []
    body = embedding_body(1, 3)

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        half = len(body) // 2
        return httpx.Response(
            200,
            headers={"content-type": "application/json"},
            stream=LateStream([body[:half], body[half:]], clock, late=6.0),
        )

    with client_with(handler, timeout=10.0) as client:
        client.embed_texts(["a"], model="text-embedding-v4", dimension=64)
        assert len(sent) == 1
        assert client.usage.total_tokens == 3


def test_incomplete_answer_past_the_deadline_is_still_cut(clock: Clock) -> None:
    sent: list[httpx.Request] = []
    body = embedding_body(1, 3)

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(
            200,
            headers={"content-type": "application/json", "content-length": str(len(body))},
            stream=LateStream([body[:10], body[10:20], body[20:]], clock, late=6.0),
        )

    with client_with(handler, timeout=10.0, max_retries=1) as client:
        with pytest.raises(APITimeoutError, match="not complete within 10s"):
            client.embed_texts(["a"], model="text-embedding-v4", dimension=64)
        assert len(sent) == 2


def test_first_transport_failure_is_a_warning_naming_the_host_not_the_key(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 113] No route to host", request=request)

    caplog.set_level(logging.INFO, logger="dashscope_embeddings")
    with client_with(handler, max_retries=3) as client:
        with pytest.raises(APIConnectionError, match=r"dashscope\.test"):
            client.embed_texts(["a"], model="text-embedding-v4")
    retries = [r for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) == 3  # a remote host that refuses is retried as configured
    assert [r.levelno for r in retries] == [logging.WARNING, logging.INFO, logging.INFO]
    first = retries[0].getMessage()
    assert "dashscope.test" in first and "ConnectError" in first and "retrying in" in first
    assert all(KEY not in r.getMessage() for r in caplog.records)


def test_connection_refused_on_loopback_gives_up_after_two_retries(clock: Clock) -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    http = httpx.Client(transport=httpx.MockTransport(handler))
    with DashScopeClient(
        KEY, base_url="http://127.0.0.1:9/api/v1", http_client=http, max_retries=5
    ) as client:
        with pytest.raises(APIConnectionError, match=r"127\.0\.0\.1"):
            client.embed_texts(["a"], model="text-embedding-v4")
    assert len(sent) == 3  # the first attempt and two retries


def test_401_message_has_one_period_and_names_the_host() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            401,
            json={
                "code": "InvalidApiKey",
                "message": "Invalid API-key provided.",
                "request_id": "r-401",
            },
        )

    with client_with(handler) as client:
        with pytest.raises(AuthenticationError) as info:
            client.embed_texts(["a"], model="text-embedding-v4")
    text = str(info.value)
    assert ".." not in text
    assert "Invalid API-key provided. API keys are per region" in text
    assert "dashscope.test" in text


FILE_OBJECT = {
    "id": "file-batch-1",
    "object": "file",
    "bytes": 300_000,
    "created_at": 1742812800,
    "filename": "big.jsonl",
    "purpose": "batch",
}


class SlowUplink(httpx.BaseTransport):
    """Reads the request body as a slow uplink would: the clock moves with every chunk."""

    def __init__(self, clock: Clock, seconds_per_chunk: float) -> None:
        self.clock, self.per_chunk = clock, seconds_per_chunk
        self.uploads = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        for _ in request.stream:
            self.clock.now += self.per_chunk
        self.uploads += 1
        return httpx.Response(200, json=FILE_OBJECT)


def test_an_upload_slower_than_the_timeout_is_answered_and_sent_once(clock: Clock) -> None:
    uplink = SlowUplink(clock, seconds_per_chunk=30.0)
    http = httpx.Client(transport=uplink)
    with DashScopeClient(KEY, base_url=BASE, http_client=http, timeout=10.0) as client:
        stored = client.files.upload(b'{"custom_id": "a"}\n' * 15_000, filename="big.jsonl")
    assert stored.id == "file-batch-1"
    assert uplink.uploads == 1
    assert clock.now - 1000.0 > 10.0  # the upload itself took longer than the timeout


def test_an_upload_whose_answer_is_lost_is_never_sent_again_by_the_transport(
    clock: Clock,
) -> None:
    uploads: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        uploads.append(request)  # the service stored it; the answer never arrives
        raise httpx.ReadTimeout("timed out", request=request)

    with client_with(handler, max_retries=5) as client:
        with pytest.raises(APITimeoutError):
            client.files.upload(b'{"custom_id": "a"}\n', filename="part.jsonl")
    assert len(uploads) == 1


class AsyncLateStream(httpx.AsyncByteStream):
    def __init__(self, chunks: list[bytes], clock: Clock, late: float) -> None:
        self.chunks, self.clock, self.late = chunks, clock, late

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.clock.now += self.late
            yield chunk


class AsyncSlowUplink(httpx.AsyncBaseTransport):
    def __init__(self, clock: Clock, seconds_per_chunk: float) -> None:
        self.clock, self.per_chunk = clock, seconds_per_chunk
        self.uploads = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        async for _ in request.stream:
            self.clock.now += self.per_chunk
        self.uploads += 1
        return httpx.Response(200, json=FILE_OBJECT)


def test_async_complete_answer_after_the_deadline_is_kept(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[httpx.Request] = []
    body = embedding_body(1, 5)

    async def no_sleep(delay: float) -> None:
        return None

    monkeypatch.setattr(_transport, "_async_sleep", no_sleep)

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(
            200,
            headers={"content-type": "application/json", "content-length": str(len(body))},
            stream=AsyncLateStream([body], clock, late=11.0),
        )

    async def run() -> int:
        http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        async with AsyncDashScopeClient(
            KEY, base_url=BASE, http_client=http, timeout=10.0
        ) as client:
            await client.embed_texts(["a"], model="text-embedding-v4", dimension=64)
            return client.usage.total_tokens

    assert asyncio.run(run()) == 5
    assert len(sent) == 1


def test_async_upload_slower_than_the_timeout_is_sent_once(clock: Clock) -> None:
    uplink = AsyncSlowUplink(clock, seconds_per_chunk=30.0)

    async def run() -> str:
        http = httpx.AsyncClient(transport=uplink)
        async with AsyncDashScopeClient(
            KEY, base_url=BASE, http_client=http, timeout=10.0
        ) as client:
            stored = await client.files.upload(b'{"custom_id": "a"}\n' * 100, filename="b.jsonl")
            return stored.id

    assert asyncio.run(run()) == "file-batch-1"
    assert uplink.uploads == 1


def _rejected_body(kind: str, tokens: int) -> bytes:
    """A 200 answer the service billed (``usage`` readable) whose vectors fail validation."""
    items: list[dict[str, object]] = [{"embedding": [0.5] * 64, "text_index": i} for i in range(2)]
    if kind == "nan":
        items[1]["embedding"] = [0.5] * 63 + [float("nan")]
    elif kind == "count":
        items = items[:1]
    elif kind == "index":
        del items[1]["text_index"]
    body = {"output": {"embeddings": items}, "usage": {"total_tokens": tokens}, "request_id": "r"}
    return json.dumps(body).encode()  # NaN is written as the literal NaN


def _billed_twice_handler(kind: str, sent: list[httpx.Request]) -> Callable[..., httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        body = _rejected_body(kind, 7) if len(sent) == 1 else embedding_body(2, 7)
        return httpx.Response(200, headers={"content-type": "application/json"}, content=body)

    return handler


@pytest.mark.parametrize("kind", ["nan", "count", "index"])
def test_a_billed_answer_that_fails_validation_counts_in_usage(clock: Clock, kind: str) -> None:
    sent: list[httpx.Request] = []
    with client_with(_billed_twice_handler(kind, sent)) as client:
        result = client.embed_texts(["a", "b"], model="text-embedding-v4", dimension=64)
        assert len(result.embeddings) == 2
        assert len(sent) == 2  # the rejected answer was retried ...
        # ... and the service billed both answers: the running total says so.
        assert client.usage.total_tokens == 14
        assert client.usage.requests == 2


def test_a_billed_answer_rejected_until_retries_are_spent_is_counted_each_time(
    clock: Clock,
) -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, content=_rejected_body("nan", 5))

    with client_with(handler, max_retries=2) as client:
        with pytest.raises(ResponseValidationError):
            client.embed_texts(["a", "b"], model="text-embedding-v4", dimension=64)
        assert len(sent) == 3
        assert client.usage.total_tokens == 15


def test_a_rejected_answer_without_usage_adds_nothing(clock: Clock) -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if len(sent) == 1:
            return httpx.Response(200, json={"output": {"embeddings": []}, "request_id": "r"})
        return httpx.Response(200, content=embedding_body(2, 7))

    with client_with(handler) as client:
        client.embed_texts(["a", "b"], model="text-embedding-v4", dimension=64)
        assert client.usage.total_tokens == 7
        assert client.usage.requests == 1


def test_async_a_billed_answer_that_fails_validation_counts_in_usage(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[httpx.Request] = []

    async def no_sleep(delay: float) -> None:
        return None

    monkeypatch.setattr(_transport, "_async_sleep", no_sleep)

    async def run() -> tuple[int, int]:
        http = httpx.AsyncClient(transport=httpx.MockTransport(_billed_twice_handler("nan", sent)))
        async with AsyncDashScopeClient(KEY, base_url=BASE, http_client=http) as client:
            await client.embed_texts(["a", "b"], model="text-embedding-v4", dimension=64)
            return client.usage.total_tokens, client.usage.requests

    assert asyncio.run(run()) == (14, 2)
    assert len(sent) == 2


def test_a_billed_multimodal_answer_that_fails_validation_counts_in_usage(clock: Clock) -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        contents = json.loads(request.content)["input"]["contents"]
        # tongyi-embedding-vision-plus's default dimension; the first answer repeats index 0
        items = [
            {"index": 0 if len(sent) == 1 else i, "embedding": [0.5] * 1152}
            for i in range(len(contents))
        ]
        body = {"output": {"embeddings": items}, "usage": {"input_tokens": 3}, "request_id": "r"}
        return httpx.Response(200, json=body)

    with client_with(handler) as client:
        client.embed_multimodal(["a red shoe", "a blue hat"])
        assert len(sent) == 2
        assert client.usage.total_tokens == 6
        assert client.usage.requests == 2
