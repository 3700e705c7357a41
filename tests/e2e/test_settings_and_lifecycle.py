"""Settings that hold, usage that survives close(), one lifecycle, siblings that stop,
injected clients keeping their timeout, and the per-call escape hatches."""

from __future__ import annotations

import asyncio
import gc
import time
import typing
import weakref

import httpx
import pytest

from dashscope_embeddings import (
    APITimeoutError,
    AsyncDashScopeClient,
    ClientClosedError,
    ConfigurationError,
    DashScopeClient,
    PermissionDeniedError,
)
from dashscope_embeddings._config import resolve_endpoints
from dashscope_embeddings._registry import MODELS
from dashscope_embeddings.emulator import Emulator
from dashscope_embeddings.langchain import DashScopeEmbeddings
from dashscope_embeddings.llama_index import (
    DashScopeBatchTextEmbeddingModels,
    DashScopeEmbedding,
)
from tests.conftest import NATIVE_PATH, TEST_KEY, sent_bodies

# --- usage outlives close() ---------------------------------------------------------------


def test_langchain_usage_survives_close(emulator_env: Emulator) -> None:
    emb = DashScopeEmbeddings(model="text-embedding-v4")
    emb.embed_documents(["one", "two"])
    before = emb.usage
    assert before.requests == 1 and before.total_tokens > 0
    emb.close()
    assert emb.usage == before
    emb.embed_query("three")
    assert emb.usage.requests == 2


def test_llama_index_usage_survives_close_sync_and_async(emulator_env: Emulator) -> None:
    emb = DashScopeEmbedding(model_name="text-embedding-v4")
    emb.get_text_embedding("one")

    async def go() -> None:
        await emb.aget_query_embedding("two")
        await emb.aclose()

    asyncio.run(go())
    emb.close()
    assert emb.usage.requests == 2


# --- settings hold at call time -------------------------------------------------------------


def test_changed_dimension_is_used_by_the_next_call(emulator_env: Emulator) -> None:
    emb = DashScopeEmbeddings(model="text-embedding-v4")
    assert len(emb.embed_query("hi")) == 1024
    emb.dimension = 256
    assert len(emb.embed_query("hi")) == 256
    assert sent_bodies(emulator_env)[-1]["parameters"]["dimension"] == 256


def test_model_copy_sends_the_copied_model(emulator_env: Emulator) -> None:
    v4 = DashScopeEmbeddings(model="text-embedding-v4")
    v4.embed_query("warm the client up")
    v2 = v4.model_copy(update={"model": "text-embedding-v2"})
    assert len(v2.embed_query("hi")) == 1536
    assert sent_bodies(emulator_env)[-1]["model"] == "text-embedding-v2"
    assert len(v4.embed_query("hi")) == 1024  # the original is untouched
    assert v2.usage.requests == 1 and v4.usage.requests == 2


def test_llama_index_model_copy_has_its_own_embedder(emulator_env: Emulator) -> None:
    orig = DashScopeEmbedding(model_name="text-embedding-v4")
    orig.get_text_embedding("warm up")
    small = orig.model_copy(update={"dimension": 128})
    assert len(small.get_text_embedding("x")) == 128
    assert len(orig.get_text_embedding("x")) == 1024
    assert (small.usage.requests, orig.usage.requests) == (1, 2)


def test_changing_the_base_url_rebuilds_the_connection(emulator_env: Emulator) -> None:
    emb = DashScopeEmbeddings(model="text-embedding-v4", base_url="http://127.0.0.1:9")
    emb.base_url = emulator_env.url
    assert len(emb.embed_query("hi")) == 1024


def test_model_kwargs_and_additional_kwargs_reach_parameters(emulator_env: Emulator) -> None:
    DashScopeEmbeddings(model="text-embedding-v4", model_kwargs={"new_knob": 1}).embed_query("a")
    assert sent_bodies(emulator_env)[-1]["parameters"]["new_knob"] == 1
    DashScopeEmbedding(
        model_name="text-embedding-v4", additional_kwargs={"other": "x"}
    ).get_text_embedding("a")
    params = sent_bodies(emulator_env)[-1]["parameters"]
    assert params["other"] == "x" and params["text_type"] == "document"


def test_both_adapters_take_the_same_http_clients(emulator: Emulator) -> None:
    seen: list[str] = []
    http = httpx.Client(event_hooks={"request": [lambda r: seen.append(r.url.path)]})
    try:
        for emb in (
            DashScopeEmbeddings(
                model="text-embedding-v4", api_key=TEST_KEY, base_url=emulator.url, http_client=http
            ),
            DashScopeEmbedding(
                model_name="text-embedding-v4",
                api_key=TEST_KEY,
                base_url=emulator.url,
                http_client=http,
            ),
        ):
            emb.close()  # nothing opened yet: a no-op
        DashScopeEmbedding(
            model_name="text-embedding-v4", api_key=TEST_KEY, base_url=emulator.url, http_client=http
        ).get_text_embedding("x")
        assert seen == [NATIVE_PATH] and not http.is_closed
    finally:
        http.close()


# --- one lifecycle --------------------------------------------------------------------------


def test_closed_sync_client_raises_a_typed_error(emulator: Emulator) -> None:
    client = DashScopeClient(TEST_KEY, base_url=emulator.url)
    client.embed_texts(["x"])
    client.close()
    with pytest.raises(ClientClosedError, match="closed"):
        client.embed_texts(["x"])
    with pytest.raises(ClientClosedError), client:
        pass


def test_closed_async_client_does_not_reopen(emulator: Emulator) -> None:
    async def go() -> None:
        client = AsyncDashScopeClient(TEST_KEY, base_url=emulator.url)
        await client.embed_texts(["x"])
        await client.aclose()
        with pytest.raises(ClientClosedError):
            await client.embed_texts(["x"])

    asyncio.run(go())
    assert len(emulator.requests) == 1


def test_with_options_copy_shares_usage_and_closes_alone(emulator: Emulator) -> None:
    with DashScopeClient(TEST_KEY, base_url=emulator.url) as client:
        quick = client.with_options(max_retries=0, timeout=30)
        assert (quick.max_retries, client.max_retries) == (0, 5)
        quick.embed_texts(["x"])
        quick.close()
        client.embed_texts(["y"])  # the original still works
        assert client.usage.requests == 2
    with pytest.raises(ConfigurationError, match="max_retries"):
        DashScopeClient(TEST_KEY, base_url=emulator.url).with_options(max_retries=-1)


# --- a failed sync call stops its siblings ----------------------------------------------------


def test_failed_sync_call_sends_nothing_more() -> None:
    texts = [f"text {i}" for i in range(100)]  # 10 requests
    with Emulator(api_key=TEST_KEY, latency=0.05) as emu:
        emu.inject(403, "AccessDenied", "model not activated")
        with DashScopeClient(TEST_KEY, base_url=emu.url, max_concurrency=2) as client:
            with pytest.raises(PermissionDeniedError):
                client.embed_texts(texts)
            at_error = len(emu.requests)
            time.sleep(0.3)  # anything still queued would be sent by now
            assert len(emu.requests) == at_error <= 2
            assert client.usage.requests == at_error - 1


def test_long_retry_after_does_not_hold_the_call_after_a_sibling_failed() -> None:
    texts = [f"text {i}" for i in range(20)]  # 2 requests
    with Emulator(api_key=TEST_KEY) as emu:
        emu.inject(503, "ServiceUnavailable", "busy", headers={"retry-after": "30"})
        emu.inject(403, "AccessDenied", "model not activated")
        with DashScopeClient(TEST_KEY, base_url=emu.url, max_concurrency=2) as client:
            started = time.monotonic()
            with pytest.raises(PermissionDeniedError):
                client.embed_texts(texts)
            assert time.monotonic() - started < 10  # not the 30 s the 503 asked for
        assert sorted(r.status for r in emu.requests) == [403, 503]


# --- an injected client keeps its own timeout --------------------------------------------------


def test_injected_client_timeout_is_kept_unless_timeout_is_given() -> None:
    with Emulator(api_key=TEST_KEY, latency=0.5) as emu, httpx.Client(timeout=0.1) as http:
        client = DashScopeClient(TEST_KEY, base_url=emu.url, http_client=http, max_retries=0)
        with pytest.raises(APITimeoutError):
            client.embed_texts(["x"])
        patient = DashScopeClient(
            TEST_KEY, base_url=emu.url, http_client=http, max_retries=0, timeout=5
        )
        assert len(patient.embed_texts(["x"]).embeddings) == 1


# --- escape hatches on the core calls ----------------------------------------------------------


def test_extra_body_and_extra_headers_per_call(emulator: Emulator) -> None:
    with DashScopeClient(TEST_KEY, base_url=emulator.url) as client:
        client.embed_texts(
            ["x"],
            text_type="query",
            extra_body={"parameters": {"future_flag": True}},
            extra_headers={"X-Trace": "abc"},
        )
    request = emulator.requests[-1]
    assert request.json["parameters"] == {"text_type": "query", "future_flag": True}
    assert request.headers["x-trace"] == "abc"


def test_per_call_max_retries_and_timeout(emulator: Emulator) -> None:
    emulator.inject(500, "InternalError", "boom")
    with DashScopeClient(TEST_KEY, base_url=emulator.url) as client:
        with pytest.raises(Exception, match="boom"):
            client.embed_texts(["x"], max_retries=0)
        assert len(client.embed_texts(["x"], timeout=5).embeddings) == 1
    with pytest.raises(ConfigurationError, match="timeout"):
        DashScopeClient(TEST_KEY, base_url=emulator.url).embed_texts(["x"], timeout=-1)


# --- names --------------------------------------------------------------------------------------


def test_region_environment_variable_is_read() -> None:
    endpoints = resolve_endpoints(environ={"DASHSCOPE_REGION": "ap-southeast-1"})
    assert endpoints.native_base.startswith("https://dashscope-intl.aliyuncs.com")
    with pytest.raises(ConfigurationError, match="unknown region 'moon'"):
        resolve_endpoints(environ={"DASHSCOPE_REGION": "moon"})
    # a base URL in the environment beats the region in the environment
    env = {"DASHSCOPE_REGION": "ap-southeast-1", "DASHSCOPE_BASE_URL": "http://127.0.0.1:1"}
    assert resolve_endpoints(environ=env).native_base == "http://127.0.0.1:1/api/v1"


def test_region_passed_over_is_warned_about() -> None:
    with pytest.warns(UserWarning, match="region"):
        resolve_endpoints(region="ap-southeast-1", base_url="http://127.0.0.1:1", environ={})
    with pytest.warns(UserWarning, match="DASHSCOPE_BASE_URL"):
        resolve_endpoints(region="cn-beijing", environ={"DASHSCOPE_BASE_URL": "http://127.0.0.1:1"})


def test_old_batch_enum_names_only_models_that_exist() -> None:
    for member in DashScopeBatchTextEmbeddingModels:
        assert MODELS[member.value].endpoint == "async_task"


# --- a with_options copy shares connections by reference count ----------------------------


def _record_closes(monkeypatch: pytest.MonkeyPatch, cls: type[typing.Any], name: str) -> list[int]:
    """Patch ``cls.name`` (close / aclose) to record the id of each instance it closes."""
    closed: list[int] = []
    original = getattr(cls, name)
    if asyncio.iscoroutinefunction(original):

        async def aclose(self: typing.Any) -> None:
            closed.append(id(self))
            await original(self)

        monkeypatch.setattr(cls, name, aclose)
    else:

        def close(self: typing.Any) -> None:
            closed.append(id(self))
            original(self)

        monkeypatch.setattr(cls, name, close)
    return closed


def test_with_options_copy_outlives_its_collected_parent(emulator: Emulator) -> None:
    quick = DashScopeClient(TEST_KEY, base_url=emulator.url).with_options(max_retries=0)
    gc.collect()  # the parent is gone: its __del__ ran
    assert not quick.closed
    assert quick.embed_texts(["x"]).embeddings is not None
    quick.close()


def test_async_with_options_copy_outlives_its_collected_parent(emulator: Emulator) -> None:
    async def main() -> int:
        quick = AsyncDashScopeClient(TEST_KEY, base_url=emulator.url).with_options(max_retries=0)
        gc.collect()
        assert not quick.closed
        result = await quick.embed_texts(["x"])
        await quick.aclose()
        return len(result.embeddings or [])

    assert asyncio.run(main()) == 1


def test_shared_connections_close_with_the_last_client(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[int] = []
    original_init = httpx.Client.__init__

    def init(self: httpx.Client, *args: typing.Any, **kwargs: typing.Any) -> None:
        opened.append(id(self))
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(httpx.Client, "__init__", init)
    closed = _record_closes(monkeypatch, httpx.Client, "close")
    parent = DashScopeClient(TEST_KEY, base_url=emulator.url)
    copy = parent.with_options(timeout=30)
    parent.embed_texts(["x"])
    parent.close()
    assert closed == [] and not copy.closed  # the copy still holds the connections
    copy.embed_texts(["y"])
    assert len(opened) == 1  # one pool, shared
    copy.close()
    assert closed == opened  # closed once, by the last of the two


def test_async_shared_pool_closes_with_the_last_client(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[int] = []
    original_init = httpx.AsyncClient.__init__

    def init(self: httpx.AsyncClient, *args: typing.Any, **kwargs: typing.Any) -> None:
        opened.append(id(self))
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(httpx.AsyncClient, "__init__", init)
    closed = _record_closes(monkeypatch, httpx.AsyncClient, "aclose")

    async def main() -> None:
        parent = AsyncDashScopeClient(TEST_KEY, base_url=emulator.url)
        copy = parent.with_options(timeout=30)
        await parent.embed_texts(["x"])
        await parent.aclose()
        assert closed == [] and not copy.closed
        await copy.embed_texts(["y"])
        assert len(opened) == 1  # the loop's one pool, shared
        await copy.aclose()
        assert closed == opened

    asyncio.run(main())


# --- per-loop state ends with its loop -----------------------------------------------------


@pytest.mark.parametrize("adapter", ["langchain", "llama_index"])
def test_an_adapter_keeps_no_finished_event_loop(emulator_env: Emulator, adapter: str) -> None:
    embedder: typing.Any = (
        DashScopeEmbeddings(model="text-embedding-v4")
        if adapter == "langchain"
        else DashScopeEmbedding(model_name="text-embedding-v4")
    )
    embed = embedder.aembed_query if adapter == "langchain" else embedder.aget_query_embedding
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def once() -> None:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        await embed("a b c")

    for _ in range(50):
        asyncio.run(once())
    gc.collect()
    alive = sum(ref() is not None for ref in loops)
    assert alive == 0, f"{alive} of 50 finished event loops are still alive"
