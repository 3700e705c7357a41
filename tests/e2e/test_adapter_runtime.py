"""Both framework adapters against the emulator: clients, usage, keys, errors, options alike.

Each test runs on the LangChain and the LlamaIndex adapter, through one small facade
(``embed`` / ``aembed`` / construction), so the two cannot drift apart.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import threading
import time
import typing

import httpx
import pytest

from dashscope_embeddings import (
    AsyncDashScopeClient,
    ConfigurationError,
    DashScopeClient,
    DashScopeError,
    InvalidInputError,
    PartialEmbeddingError,
)
from dashscope_embeddings.emulator import Emulator
from dashscope_embeddings.langchain import DashScopeEmbeddings
from dashscope_embeddings.llama_index import DashScopeEmbedding
from tests.conftest import TEST_KEY, sent_bodies

Adapter = typing.Union[DashScopeEmbeddings, DashScopeEmbedding]  # noqa: UP007


def make(kind: str, **options: typing.Any) -> Adapter:
    if kind == "langchain":
        return DashScopeEmbeddings(**options)
    return DashScopeEmbedding(**options)


def embed(emb: Adapter, texts: list[str]) -> list[list[float]]:
    if isinstance(emb, DashScopeEmbeddings):
        return emb.embed_documents(texts)
    return emb.get_text_embedding_batch(texts)


async def aembed(emb: Adapter, texts: list[str]) -> list[list[float]]:
    if isinstance(emb, DashScopeEmbeddings):
        return await emb.aembed_documents(texts)
    return await emb.aget_text_embedding_batch(texts)


def query(emb: Adapter, text: str) -> list[float]:
    if isinstance(emb, DashScopeEmbeddings):
        return emb.embed_query(text)
    return emb.get_query_embedding(text)


KINDS = pytest.mark.parametrize("kind", ["langchain", "llama_index"])


class _Made(typing.NamedTuple):
    sync: list[DashScopeClient]
    aio: list[AsyncDashScopeClient]


@pytest.fixture
def made_clients(monkeypatch: pytest.MonkeyPatch) -> _Made:
    """Every core client built while the test runs, in order."""
    made = _Made([], [])
    sync_init = DashScopeClient.__init__
    async_init = AsyncDashScopeClient.__init__

    def record_sync(self: DashScopeClient, *args: typing.Any, **kwargs: typing.Any) -> None:
        sync_init(self, *args, **kwargs)
        made.sync.append(self)

    def record_async(self: AsyncDashScopeClient, *args: typing.Any, **kwargs: typing.Any) -> None:
        async_init(self, *args, **kwargs)
        made.aio.append(self)

    monkeypatch.setattr(DashScopeClient, "__init__", record_sync)
    monkeypatch.setattr(AsyncDashScopeClient, "__init__", record_async)
    return made


# --- a client rebuilt while calls are in flight -------------------------------------------


@KINDS
def test_rebuilding_the_client_while_threads_embed_fails_no_call(
    kind: str, emulator_env: Emulator, made_clients: _Made
) -> None:
    emb = make(kind, model="text-embedding-v4")
    errors: list[BaseException] = []
    done = threading.Event()

    def worker(n: int) -> None:
        for i in range(20):
            try:
                vectors = embed(emb, [f"text {n} {i}", "second"])
                assert len(vectors) == 2
            except BaseException as exc:  # every failure is the finding
                errors.append(exc)

    def flipper() -> None:
        flip = 0
        while not done.is_set():
            flip += 1
            emb.timeout = 30.0 + flip % 2
            time.sleep(0.002)

    flipping = threading.Thread(target=flipper)
    flipping.start()
    workers = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    done.set()
    flipping.join()
    assert errors == []
    assert len(made_clients.sync) > 1, "the flips never rebuilt the client"
    # every replaced client was closed once its last call ended; the current one is open
    assert all(c.closed for c in made_clients.sync[:-1])
    assert not made_clients.sync[-1].closed
    assert emb.usage.requests == 160


@KINDS
def test_a_replaced_async_client_is_closed_once_its_calls_end(
    kind: str, emulator_env: Emulator, made_clients: _Made
) -> None:
    emb = make(kind, model="text-embedding-v4")

    async def go() -> None:
        await aembed(emb, ["one"])
        emb.timeout = 12.0
        await aembed(emb, ["two"])

    asyncio.run(go())
    assert len(made_clients.aio) == 2
    assert made_clients.aio[0].closed and not made_clients.aio[1].closed


@KINDS
def test_a_replaced_async_client_finishes_its_call_first(
    kind: str, emulator_env: Emulator, made_clients: _Made
) -> None:
    emb = make(kind, model="text-embedding-v4")
    emulator_env.inject_fault("slow_body", ms=300, pieces=3)

    async def go() -> list[list[float]]:
        slow = asyncio.create_task(aembed(emb, ["slow"]))
        while not made_clients.aio:
            await asyncio.sleep(0.01)
        emb.timeout = 12.0
        await aembed(emb, ["fast"])
        return await slow

    assert len(asyncio.run(go())) == 1
    assert made_clients.aio[0].closed


# --- usage: grows as answers arrive, survives pickling ---------------------------------------


@KINDS
def test_usage_counts_the_answers_of_a_call_that_failed_in_part(
    kind: str, emulator_env: Emulator
) -> None:
    emb = make(kind, model="text-embedding-v4", max_concurrency=1)
    texts = [f"text {i}" for i in range(10)] + ["__REJECT__ this one"]
    with pytest.raises(PartialEmbeddingError) as caught:
        embed(emb, texts)
    assert caught.value.usage.requests >= 1
    assert emb.usage.requests == caught.value.usage.requests
    assert emb.usage.total_tokens == caught.value.usage.total_tokens > 0


@KINDS
def test_usage_grows_while_a_call_runs_and_stays_after_cancellation(
    kind: str, emulator_env: Emulator
) -> None:
    emb = make(kind, model="text-embedding-v4", max_concurrency=2, adaptive_concurrency=False)
    emulator_env.inject_fault("slow_body", ms=20_000, pieces=2)
    texts = [f"text {i}" for i in range(20)]  # two requests of 10, one of them stalls

    async def go() -> int:
        task = asyncio.create_task(aembed(emb, texts))
        for _ in range(300):  # a bound, not a speed check: the fast answer comes at once
            if emb.usage.requests:
                break
            await asyncio.sleep(0.05)
        seen = emb.usage.requests
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return seen

    assert asyncio.run(go()) == 1, "usage did not count the answer while the call ran"
    assert emb.usage.requests == 1


@KINDS
def test_usage_survives_pickling(kind: str, emulator_env: Emulator) -> None:
    emb = make(kind, model="text-embedding-v4")
    embed(emb, ["a", "b"])
    before = emb.usage
    assert before.requests == 1
    restored = pickle.loads(pickle.dumps(emb))
    assert restored.usage == before
    embed(restored, ["c"])
    assert restored.usage.requests == 2 and emb.usage.requests == 1


@KINDS
def test_a_copy_starts_its_own_usage(kind: str, emulator_env: Emulator) -> None:
    emb = make(kind, model="text-embedding-v4")
    embed(emb, ["a"])
    copy = emb.model_copy(update={"dimension": 512})
    embed(copy, ["b"])
    assert emb.usage.requests == 1 and copy.usage.requests == 1


@KINDS
def test_an_injected_http_client_is_refused_by_pickle_with_a_clear_error(
    kind: str, emulator_env: Emulator
) -> None:
    with httpx.Client() as http:
        emb = make(kind, model="text-embedding-v4", http_client=http)
        with pytest.raises(TypeError, match="with http_client= cannot be pickled"):
            pickle.dumps(emb)


# --- the key: from the environment never pickled, an argument pickled ------------------------


@KINDS
def test_a_key_from_the_environment_is_not_pickled_and_is_read_at_use(
    kind: str, emulator_env: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    emb = make(kind, model="text-embedding-v4")
    blob = pickle.dumps(emb)
    assert TEST_KEY.encode() not in blob
    monkeypatch.delenv("DASHSCOPE_API_KEY")
    restored = pickle.loads(blob)
    with pytest.raises(ConfigurationError, match="no DashScope API key"):
        embed(restored, ["a"])
    monkeypatch.setenv("DASHSCOPE_API_KEY", TEST_KEY)
    assert len(embed(restored, ["a"])) == 1


@KINDS
def test_a_key_given_as_an_argument_is_pickled(
    kind: str, emulator_env: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DASHSCOPE_API_KEY")
    emb = make(kind, model="text-embedding-v4", api_key=TEST_KEY)
    restored = pickle.loads(pickle.dumps(emb))
    assert len(embed(restored, ["a"])) == 1
    assert TEST_KEY not in repr(restored)


@KINDS
@pytest.mark.parametrize("model_key", ["model", "model_name"])
@pytest.mark.parametrize("key_key", ["api_key", "dashscope_api_key"])
@pytest.mark.parametrize("dimension_key", ["dimension", "dimensions"])
def test_both_adapters_take_both_spellings(
    kind: str,
    model_key: str,
    key_key: str,
    dimension_key: str,
    emulator_env: Emulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DASHSCOPE_API_KEY")
    options = {model_key: "text-embedding-v3", key_key: TEST_KEY, dimension_key: 512}
    emb = make(kind, **options)
    assert len(query(emb, "hello")) == 512
    assert emb.dimension == 512


# --- construction errors: one kind, ours ---------------------------------------------------


@KINDS
def test_no_key_raises_configuration_error_saying_how_to_run_offline(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    with pytest.raises(ConfigurationError) as caught:
        make(kind, model="text-embedding-v4")
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, DashScopeError)
    message = str(caught.value)
    assert "DASHSCOPE_API_KEY" in message
    assert "python -m dashscope_embeddings.emulator" in message
    assert "DASHSCOPE_BASE_URL" in message


@KINDS
@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"dimenson": 512}, "did you mean 'dimension'"),
        ({"max_retries": -1}, "max_retries"),
        ({"region": "mars"}, "unknown region 'mars'"),
        ({"long_text": "shorten"}, "long_text"),
        ({"dimension": 512, "dimensions": 256}, "pass one"),
    ],
)
def test_bad_settings_raise_configuration_error_on_both(
    kind: str, emulator_env: Emulator, options: dict[str, typing.Any], match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match) as caught:
        make(kind, model="text-embedding-v4", **options)
    assert type(caught.value) is ConfigurationError


@KINDS
@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"dimension": 100}, "dimension 100"),
        ({"model": "text-embedding-v3", "instruct": "Find"}, "ignores instruct"),
    ],
)
def test_an_option_the_model_lacks_raises_invalid_input_error_on_both(
    kind: str, emulator_env: Emulator, options: dict[str, typing.Any], match: str
) -> None:
    options = {"model": "text-embedding-v4", **options}
    with pytest.raises(InvalidInputError, match=match) as caught:
        make(kind, **options)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, DashScopeError)


# --- long_text: passed through to the core --------------------------------------------------


@KINDS
@pytest.mark.parametrize("mode", ["truncate", "chunk"])
def test_long_text_is_an_option_of_both_adapters(
    kind: str, mode: str, emulator_env: Emulator
) -> None:
    long = "word " * 9000  # over text-embedding-v4's 8,192 tokens
    refused = make(kind, model="text-embedding-v4")
    with pytest.raises(DashScopeError, match="long_text"):
        embed(refused, [long])
    emb = make(kind, model="text-embedding-v4", long_text=mode)
    assert emb.long_text == mode
    emulator_env.clear_requests()
    assert len(embed(emb, [long])) == 1
    sent = [t for body in sent_bodies(emulator_env) for t in body["input"]["texts"]]
    assert sent and all(len(t) < len(long) for t in sent)
    if mode == "chunk":
        assert len(sent) > 1


# --- a sync call on a running event loop -----------------------------------------------------


@KINDS
def test_a_sync_call_inside_a_running_loop_warns_once_pointing_at_async(
    kind: str, emulator_env: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    emb = make(kind, model="text-embedding-v4")
    caplog.set_level(logging.WARNING, logger="dashscope_embeddings")

    async def go() -> None:
        query(emb, "one")
        query(emb, "two")

    query(emb, "outside a loop")
    assert not caplog.records
    asyncio.run(go())
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    expected = "aembed_query" if kind == "langchain" else "aget_query_embedding"
    assert expected in warnings[0].getMessage()
    assert "blocks" in warnings[0].getMessage()
