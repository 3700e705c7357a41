"""The file, Batch API and task endpoints go through the one request path (GET, multipart,
DELETE, raw downloads), sync and async, against the bundled emulator."""

from __future__ import annotations

import asyncio
import json

import pytest

from dashscope_embeddings import (
    APIConnectionError,
    AsyncDashScopeClient,
    BadRequestError,
    DashScopeClient,
    NotFoundError,
    RateLimitError,
    ServerError,
)
from dashscope_embeddings._options import RequestOptions
from dashscope_embeddings._retry import RetryBudget
from dashscope_embeddings._transport import APIRequest, SyncTransport
from dashscope_embeddings.emulator import Emulator
from tests.conftest import TEST_KEY


def _jsonl(groups: dict[str, list[str]]) -> bytes:
    lines = [
        {
            "custom_id": custom_id,
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": "text-embedding-v4", "input": texts, "encoding_format": "float"},
        }
        for custom_id, texts in groups.items()
    ]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


@pytest.fixture
def batch_emulator(emulator: Emulator) -> Emulator:
    emulator.batch.reset()
    return emulator


def test_a_batch_from_upload_to_joined_output(batch_emulator: Emulator) -> None:
    groups = {"a": ["red apples", "green pears"], "b": ["blue sky"], "c": ["yellow sun", "x"]}
    with DashScopeClient(TEST_KEY, base_url=batch_emulator.url, protocol="compatible") as client:
        uploaded = client.files.upload(_jsonl(groups), filename="in.jsonl")
        assert uploaded.id and uploaded.filename == "in.jsonl" and uploaded.purpose == "batch"
        assert client.files.retrieve(uploaded.id).id == uploaded.id
        assert uploaded.id in [f.id for f in client.files.list()]
        batch = client.batches.create(uploaded.id, metadata={"ds_name": "t"})
        assert batch.input_file_id == uploaded.id
        batch = client.batches.retrieve(batch.id)
        assert batch.done and batch.status == "completed" and batch.output_file_id
        assert batch.id in [b.id for b in client.batches.list()]
        output = client.files.content(batch.output_file_id)
        lines = [json.loads(line) for line in output.decode().splitlines()]
        assert [line["custom_id"] for line in lines] != list(groups)  # not in input order
        by_id = {line["custom_id"]: line["response"]["body"]["data"] for line in lines}
        for custom_id, texts in groups.items():
            realtime = client.embed_texts(texts).embeddings
            got = [d["embedding"] for d in sorted(by_id[custom_id], key=lambda d: d["index"])]
            assert got == realtime
        assert client.files.delete(uploaded.id) is True
        with pytest.raises(NotFoundError):
            client.files.retrieve(uploaded.id)
    counters = batch_emulator.batch.counters
    assert (counters.uploads, counters.batches_created, counters.lines_billed) == (1, 1, 3)


def test_cancel_and_bad_input_are_typed(batch_emulator: Emulator) -> None:
    batch_emulator.batch.configure(delay_s=60)
    with DashScopeClient(TEST_KEY, base_url=batch_emulator.url) as client:
        uploaded = client.files.upload(_jsonl({"a": ["one"]}))
        batch = client.batches.create(uploaded.id)
        assert not batch.done
        assert client.batches.cancel(batch.id).status in ("cancelling", "cancelled")
        with pytest.raises(BadRequestError):
            client.files.upload(b"not json\n")
    batch_emulator.batch.configure(delay_s=0)


def test_async_namespaces(batch_emulator: Emulator, tmp_path: object) -> None:
    path = tmp_path / "input.jsonl"  # type: ignore[operator]
    path.write_bytes(_jsonl({"only": ["hello"]}))

    async def go() -> bytes:
        async with AsyncDashScopeClient(TEST_KEY, base_url=batch_emulator.url) as client:
            uploaded = await client.files.upload(path)
            assert uploaded.filename == "input.jsonl"
            batch = await client.batches.create(uploaded.id)
            batch = await client.batches.retrieve(batch.id)
            assert batch.output_file_id is not None
            return await client.files.content(batch.output_file_id)

    assert b'"custom_id": "only"' in asyncio.run(go()).replace(b'":"', b'": "')


def test_tasks_poll_and_unknown_ids(batch_emulator: Emulator) -> None:
    batch_emulator.batch.register_url("https://example.com/in.txt", ["one", "two"])
    created = batch_emulator.batch.create_task(
        {"model": "text-embedding-async-v2", "input": {"url": "https://example.com/in.txt"}}
    )
    task_id = created["output"]["task_id"]
    with DashScopeClient(TEST_KEY, base_url=batch_emulator.url) as client:
        task = client.tasks.retrieve(task_id)
        assert task.done and task.status == "SUCCEEDED" and task.result_url
        unknown = client.tasks.retrieve("no-such-task")
        assert unknown.status == "UNKNOWN" and unknown.done


# --- creating a batch is not idempotent -------------------------------------------------------


def _transport_for(client: DashScopeClient) -> SyncTransport:
    return client._transport


@pytest.mark.parametrize(
    ("error", "idempotent", "retried"),
    [
        (ServerError("boom", status_code=500, code="InternalError"), True, True),
        (ServerError("boom", status_code=500, code="InternalError"), False, False),
        (RateLimitError("slow", status_code=429, code="Throttling"), False, True),
        (APIConnectionError("reset"), False, False),
    ],
)
def test_non_idempotent_requests_retry_only_when_nothing_was_done(
    error: Exception, idempotent: bool, retried: bool
) -> None:
    with DashScopeClient(TEST_KEY, base_url="http://127.0.0.1:9") as client:
        request = APIRequest("POST", "http://127.0.0.1:9/x", idempotent=idempotent)
        budget = RetryBudget(2)
        wait = _transport_for(client).retry_wait(0, error, budget, request)  # type: ignore[arg-type]
        assert (wait is not None) == retried


def test_a_refused_connection_is_retried_even_for_a_create() -> None:
    with DashScopeClient(TEST_KEY, base_url="http://127.0.0.1:9", max_retries=1) as client:
        waits: list[float] = []
        transport = _transport_for(client)
        original = transport.retry_wait

        def spy(*args: object) -> float | None:
            delay = original(*args)  # type: ignore[arg-type]
            if delay is not None:
                waits.append(delay)
            return 0.0 if delay is not None else None

        transport.retry_wait = spy  # type: ignore[method-assign,assignment]
        request = APIRequest("POST", "http://127.0.0.1:9/batches", content=b"{}", idempotent=False)
        with pytest.raises(APIConnectionError):
            transport.send(request, lambda a: a, options=RequestOptions())
        assert len(waits) == 1  # the refused connection sent nothing: safe to try again
