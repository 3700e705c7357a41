"""The API key never shows: repr, str, logs at every level, errors and their cause chains,
traceback locals, model dumps, LangChain dumpd, LlamaIndex instrumentation events."""

from __future__ import annotations

import logging
import pickle
import traceback
import typing

import pytest
from langchain_core.load import dumpd, dumps

from dashscope_embeddings import (
    APIConnectionError,
    AuthenticationError,
    ConfigurationError,
    DashScopeClient,
)
from dashscope_embeddings.emulator import Emulator
from dashscope_embeddings.langchain import DashScopeEmbeddings
from dashscope_embeddings.llama_index import DashScopeEmbedding
from tests.conftest import TEST_KEY

SECRET = "sk-very-secret-4242"


def _everything_about(exc: BaseException) -> str:
    """Every string a user or a tool could get from an error: message, repr, attributes, the
    whole cause/context chain, and the traceback with each frame's locals."""
    seen: list[str] = []
    current: BaseException | None = exc
    while current is not None:
        seen += [str(current), repr(current), repr(vars(current))]
        request = getattr(current, "_request", None) or vars(current).get("request")
        if request is not None:  # an httpx error: the request it holds has the headers
            seen.append(repr(dict(request.headers)))
        current = current.__cause__ or current.__context__
    rendered = traceback.TracebackException.from_exception(exc, capture_locals=True)
    seen.append("".join(rendered.format()))
    return "\n".join(seen)


def test_client_repr_and_dump_hide_the_key() -> None:
    client = DashScopeClient(SECRET, base_url="http://127.0.0.1:1")
    assert SECRET not in repr(client) and SECRET not in str(client)
    assert SECRET not in repr(vars(client)) and SECRET not in repr(client.settings)
    client.close()


def test_authentication_error_carries_no_key(emulator: Emulator) -> None:
    with DashScopeClient(SECRET, base_url=emulator.url) as client:
        with pytest.raises(AuthenticationError) as info:
            client.embed_texts(["x"])
    assert SECRET not in _everything_about(info.value)


def test_connection_error_chain_and_locals_carry_no_key() -> None:
    with DashScopeClient(SECRET, base_url="http://127.0.0.1:1", max_retries=0) as client:
        with pytest.raises(APIConnectionError) as info:
            client.embed_texts(["x"])
    assert info.value.__cause__ is None  # the httpx error (whose request holds headers) is cut
    assert SECRET not in _everything_about(info.value)


def test_configuration_error_locals_carry_no_key() -> None:
    with pytest.raises(ConfigurationError) as info:
        DashScopeClient(SECRET, base_url="http://127.0.0.1:1", timeout=-5)
    assert SECRET not in _everything_about(info.value)


def test_logs_at_every_level_carry_no_key(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.inject(500, "InternalError", "boom", headers={"retry-after": "0"})
    with caplog.at_level(logging.DEBUG, logger="dashscope_embeddings"):
        with DashScopeClient(TEST_KEY, base_url=emulator.url) as client:
            client.embed_texts(["x"])
        with DashScopeClient(SECRET, base_url=emulator.url) as client:
            with pytest.raises(AuthenticationError):
                client.embed_texts(["x"])
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "retrying" in text and "->" in text  # there was something to see
    assert SECRET not in text and TEST_KEY not in text


def test_langchain_dumps_and_dumpd_reference_the_key_as_a_secret() -> None:
    emb = DashScopeEmbeddings(model="text-embedding-v4", api_key=SECRET, base_url="http://127.0.0.1:1")
    for shown in (repr(emb), str(emb), str(emb.model_dump()), emb.model_dump_json(), dumps(emb)):
        assert SECRET not in shown
    serialised = dumpd(emb)
    assert serialised["kwargs"]["dashscope_api_key"] == {
        "lc": 1,
        "type": "secret",
        "id": ["DASHSCOPE_API_KEY"],
    }


def test_llama_index_dicts_and_instrumentation_events_carry_no_key(emulator: Emulator) -> None:
    from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler
    from llama_index.core.instrumentation.events import BaseEvent

    events: list[BaseEvent] = []

    class Collect(BaseEventHandler):
        @classmethod
        def class_name(cls) -> str:
            return "Collect"

        def handle(self, event: BaseEvent, **kwargs: typing.Any) -> None:
            events.append(event)

    handler = Collect()
    dispatcher = get_dispatcher()
    dispatcher.add_event_handler(handler)
    try:
        emb = DashScopeEmbedding(
            model_name="text-embedding-v4", api_key=TEST_KEY, base_url=emulator.url
        )
        emb.get_text_embedding_batch(["one", "two"])
        emb.get_query_embedding("three")
    finally:
        dispatcher.event_handlers.remove(handler)
    assert events
    for shown in [repr(emb), emb.to_json(), str(emb.to_dict()), *map(repr, events)]:
        assert TEST_KEY not in shown
    assert all(TEST_KEY not in str(e.model_dump()) for e in events)


def test_pickles_carry_the_key_so_workers_can_use_it() -> None:
    # Documented in README: a pickle is as secret as the key (Ray, multiprocessing need it).
    emb = DashScopeEmbeddings(model="text-embedding-v4", api_key=SECRET, base_url="http://127.0.0.1:1")
    restored = pickle.loads(pickle.dumps(emb))
    assert restored.dashscope_api_key is not None
    assert restored.dashscope_api_key.get_secret_value() == SECRET
