"""client.files / .batches / .tasks: per-call options reach the one request path, and the
sync and async namespaces have the same methods, parameters and docstrings."""

from __future__ import annotations

import asyncio
import inspect
import typing

import httpx
import pytest

from dashscope_embeddings import (
    APITimeoutError,
    AsyncDashScopeClient,
    DashScopeClient,
    _namespaces,
    _transport,
)

BASE = "https://dashscope.test/api/v1"
KEY = "sk-unit-namespaces-key"
PAIRS = [
    (_namespaces.Files, _namespaces.AsyncFiles),
    (_namespaces.Batches, _namespaces.AsyncBatches),
    (_namespaces.Tasks, _namespaces.AsyncTasks),
]
OPTIONS = ("timeout", "max_retries", "extra_headers")

BATCH = {
    "id": "batch_1",
    "object": "batch",
    "status": "in_progress",
    "input_file_id": "file-1",
    "request_counts": {"total": 1, "completed": 0, "failed": 0},
}
FILE = {"id": "file-1", "object": "file", "bytes": 3, "filename": "a.jsonl", "purpose": "batch"}
TASK = {"output": {"task_id": "t-1", "task_status": "PENDING"}, "request_id": "r"}


def public_methods(cls: type) -> dict[str, typing.Any]:
    return {
        name: member
        for name, member in vars(cls).items()
        if callable(member) and not name.startswith("_")
    }


@pytest.mark.parametrize(("sync", "async_"), PAIRS)
def test_sync_and_async_namespaces_are_twins(sync: type, async_: type) -> None:
    methods, twins = public_methods(sync), public_methods(async_)
    assert methods.keys() == twins.keys()
    for name, method in methods.items():
        twin = twins[name]
        assert inspect.iscoroutinefunction(twin) and not inspect.iscoroutinefunction(method)
        assert inspect.signature(method) == inspect.signature(twin), name
        assert inspect.getdoc(method) == inspect.getdoc(twin), name


@pytest.mark.parametrize("cls", [c for pair in PAIRS for c in pair])
def test_every_method_takes_the_per_call_options(cls: type) -> None:
    for name, method in public_methods(cls).items():
        parameters = inspect.signature(method).parameters
        for option in OPTIONS:
            assert option in parameters, f"{cls.__name__}.{name} lacks {option}"
            assert parameters[option].kind is inspect.Parameter.KEYWORD_ONLY


def answer_for(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if path.endswith("/files") and request.method == "GET":
        return httpx.Response(200, json={"object": "list", "data": [FILE]})
    if "/files" in path:
        return httpx.Response(200, json=FILE)
    if "/tasks/" in path:
        return httpx.Response(200, json=TASK)
    if path.endswith("/batches") and request.method == "GET":
        return httpx.Response(200, json={"object": "list", "data": [BATCH]})
    return httpx.Response(200, json=BATCH)


CALLS: list[tuple[str, str, tuple[object, ...]]] = [
    ("files", "upload", (b"{}\n",)),
    ("files", "retrieve", ("file-1",)),
    ("files", "list", ()),
    ("files", "content", ("file-1",)),
    ("files", "delete", ("file-1",)),
    ("batches", "create", ("file-1",)),
    ("batches", "retrieve", ("batch_1",)),
    ("batches", "cancel", ("batch_1",)),
    ("batches", "list", ()),
    ("tasks", "retrieve", ("t-1",)),
    ("tasks", "cancel", ("t-1",)),
]


@pytest.mark.parametrize(("namespace", "method", "args"), CALLS)
def test_extra_headers_and_timeout_reach_the_request(
    namespace: str, method: str, args: tuple[object, ...]
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer_for(request)

    http = httpx.Client(transport=httpx.MockTransport(handler))
    with DashScopeClient(KEY, base_url=BASE, http_client=http, timeout=60) as client:
        call = getattr(getattr(client, namespace), method)
        call(*args, extra_headers={"X-Trace": "abc"}, timeout=7.5, max_retries=0)
    assert seen[0].headers["X-Trace"] == "abc"
    assert seen[0].extensions["timeout"]["read"] == 7.5


@pytest.mark.parametrize(("namespace", "method", "args"), CALLS)
def test_async_extra_headers_and_timeout_reach_the_request(
    namespace: str, method: str, args: tuple[object, ...]
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer_for(request)

    async def run() -> None:
        http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        async with AsyncDashScopeClient(KEY, base_url=BASE, http_client=http, timeout=60) as client:
            call = getattr(getattr(client, namespace), method)
            await call(*args, extra_headers={"X-Trace": "abc"}, timeout=7.5, max_retries=0)

    asyncio.run(run())
    assert seen[0].headers["X-Trace"] == "abc"
    assert seen[0].extensions["timeout"]["read"] == 7.5


def test_max_retries_per_call_bounds_the_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_transport, "_wait", lambda cancel, delay: False)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        raise httpx.ReadTimeout("slow", request=request)

    http = httpx.Client(transport=httpx.MockTransport(handler))
    with DashScopeClient(KEY, base_url=BASE, http_client=http, max_retries=5) as client:
        with pytest.raises(APITimeoutError):
            client.batches.retrieve("batch_1", max_retries=1)
    assert len(seen) == 2  # the first attempt and the one retry of this call
