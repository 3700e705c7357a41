"""A newcomer's first hour: errors that say what to do, one default model, the other
framework's spellings, visible progress and logs, caches that never cross-serve, and
LlamaIndex batches handed over whole."""

from __future__ import annotations

import asyncio
import logging
import math
import warnings

import pytest
from langchain_classic.embeddings import CacheBackedEmbeddings
from langchain_core.stores import InMemoryByteStore
from llama_index.core.callbacks import CallbackManager, CBEventType
from llama_index.core.callbacks.base_handler import BaseCallbackHandler

from dashscope_embeddings import (
    AuthenticationError,
    DashScopeClient,
    InvalidInputError,
    NotFoundError,
    get_model_spec,
)
from dashscope_embeddings.emulator import Emulator
from dashscope_embeddings.langchain import DashScopeEmbeddings
from dashscope_embeddings.llama_index import DashScopeEmbedding
from tests.conftest import TEST_KEY, sent_bodies

# --- errors that say what to do ------------------------------------------------------------------


def test_a_misspelt_model_is_named_with_the_closest_names() -> None:
    with pytest.warns(UserWarning, match="did you mean 'text-embedding-v4'"):
        spec = get_model_spec("text-embeding-v4")
    assert not spec.known


def test_an_unknown_model_rejected_by_the_service_lists_the_families(emulator: Emulator) -> None:
    with DashScopeClient(TEST_KEY, base_url=emulator.url) as client:
        with pytest.raises(NotFoundError) as info:
            client.embed_texts(["x"], model="my-own-model")
    message = str(info.value)
    assert "'my-own-model' is not a model this package knows" in message
    assert "text: text-embedding-v4" in message and "multimodal:" in message


def test_a_401_says_keys_are_per_region_and_how_to_change_it(emulator: Emulator) -> None:
    with DashScopeClient("sk-another-region", base_url=emulator.url) as client:
        with pytest.raises(AuthenticationError) as info:
            client.embed_texts(["x"])
    message = str(info.value)
    assert "API keys are per region" in message and "127.0.0.1" in message
    assert "region=" in message and "DASHSCOPE_BASE_URL" in message


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"model": "text-embedding-v2", "output_type": "sparse"}, "text-embedding-v4, text-embedding-v3"),
        (
            {"model": "text-embedding-v1", "instruct": "find", "text_type": "query"},
            "text-embedding-v4",
        ),
        ({"model": "text-embedding-v3", "dimension": 2048}, "allowed: 1024, 768, 512"),
    ],
)
def test_a_missing_feature_is_refused_before_sending_naming_who_has_it(
    kwargs: dict[str, object], names: str, emulator: Emulator
) -> None:
    with DashScopeClient(TEST_KEY, base_url=emulator.url) as client:
        with pytest.raises(InvalidInputError, match=names):
            client.embed_texts(["x"], **kwargs)  # type: ignore[call-overload]
    assert emulator.requests == []


# --- one default, the other framework's spellings -------------------------------------------------


def test_one_default_model_for_the_whole_package(emulator_env: Emulator) -> None:
    assert DashScopeEmbeddings().model == "text-embedding-v4"
    assert DashScopeEmbedding().model_name == "text-embedding-v4"
    with DashScopeClient() as client:
        assert client.embed_texts(["x"]).model == "text-embedding-v4"


def test_each_adapter_takes_the_other_frameworks_spellings(emulator_env: Emulator) -> None:
    lc = DashScopeEmbeddings(model_name="text-embedding-v3", dimensions=512, api_key=TEST_KEY)
    assert (lc.model, lc.dimension) == ("text-embedding-v3", 512)
    li = DashScopeEmbedding(model="text-embedding-v3", dimensions=768, dashscope_api_key=TEST_KEY)
    assert (li.model_name, li.dimension) == ("text-embedding-v3", 768)
    assert li.api_key is not None and li.api_key.get_secret_value() == TEST_KEY
    with pytest.raises(ValueError, match="both dimensions= and dimension="):
        DashScopeEmbeddings(dimension=512, dimensions=256)
    with pytest.raises(ValueError, match="did you mean 'instruct'"):
        DashScopeEmbeddings(instruction="find")


# --- progress and logs --------------------------------------------------------------------------


def test_langchain_progress_bar_counts_texts(
    emulator_env: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tqdm")
    DashScopeEmbeddings(show_progress_bar=True).embed_documents([f"doc {i}" for i in range(42)])
    assert "42/42" in capsys.readouterr().err


def test_llama_index_show_progress_counts_texts(
    emulator_env: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tqdm")
    DashScopeEmbedding().get_text_embedding_batch([f"node {i}" for i in range(33)], show_progress=True)
    assert "33/33" in capsys.readouterr().err


def test_debug_log_has_each_request_never_key_nor_text(
    emulator_env: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="dashscope_embeddings"):
        DashScopeEmbeddings().embed_documents(["secret plan alpha", "secret plan beta"])
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("dashscope_embeddings")]
    assert any("POST /api/v1/services/embeddings" in line and "-> 200" in line for line in lines)
    assert not any("secret plan" in line or TEST_KEY in line for line in lines)


# --- caches -------------------------------------------------------------------------------------


def test_cache_namespace_changes_with_everything_a_vector_depends_on(emulator_env: Emulator) -> None:
    base = DashScopeEmbeddings(model="text-embedding-v4")
    variants = [
        base.model_copy(update={"dimension": 512}),
        base.model_copy(update={"model": "text-embedding-v3"}),
        base.model_copy(update={"instruct": "Find the policy"}),
        base.model_copy(update={"protocol": "compatible"}),
    ]
    names = {base.cache_namespace, *(v.cache_namespace for v in variants)}
    assert len(names) == 5


def test_the_readme_cache_recipe_never_serves_a_document_vector_to_a_query(
    emulator_env: Emulator,
) -> None:
    emb = DashScopeEmbeddings(model="text-embedding-v4", instruct="Find the matching policy")
    cached = CacheBackedEmbeddings.from_bytes_store(
        emb,
        InMemoryByteStore(),
        namespace=emb.cache_namespace,
        query_embedding_cache=InMemoryByteStore(),
        key_encoder="sha256",
    )
    text = "refunds take five days"
    as_document = cached.embed_documents([text])[0]
    as_query = cached.embed_query(text)
    assert as_query != as_document
    assert as_query == emb.embed_query(text) and as_document == emb.embed_documents([text])[0]
    # the pitfall the recipe avoids: one store for both serves the document vector to the query
    shared = CacheBackedEmbeddings.from_bytes_store(
        emb,
        InMemoryByteStore(),
        namespace=emb.cache_namespace,
        query_embedding_cache=True,
        key_encoder="sha256",
    )
    shared.embed_documents([text])
    assert shared.embed_query(text) == as_document


# --- LlamaIndex hands everything over ------------------------------------------------------------


class _Events(BaseCallbackHandler):
    def __init__(self) -> None:
        super().__init__([], [])
        self.ends: list[int] = []

    def on_event_start(self, event_type, payload=None, event_id="", parent_id="", **kwargs):  # type: ignore[no-untyped-def]
        return event_id

    def on_event_end(self, event_type, payload=None, event_id="", **kwargs):  # type: ignore[no-untyped-def]
        if event_type == CBEventType.EMBEDDING and payload:
            self.ends.append(len(payload["chunks"]))

    def start_trace(self, trace_id=None):  # type: ignore[no-untyped-def]
        pass

    def end_trace(self, trace_id=None, trace_map=None):  # type: ignore[no-untyped-def]
        pass


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_llama_index_batch_is_full_requests_with_its_events(
    flavour: str, emulator_env: Emulator
) -> None:
    events = _Events()
    emb = DashScopeEmbedding(callback_manager=CallbackManager([events]))  # embed_batch_size 25
    texts = [f"node {i} about {i % 9}" for i in range(1000)]
    if flavour == "sync":
        vectors = emb.get_text_embedding_batch(texts)
    else:
        vectors = asyncio.run(emb.aget_text_embedding_batch(texts))
    sizes = [len(b["input"]["texts"]) for b in sent_bodies(emulator_env)]
    assert len(sizes) == math.ceil(1000 / 10) and set(sizes) == {10}
    assert events.ends == [1000] and len(vectors) == 1000
    assert vectors[123] == emb.get_text_embedding(texts[123])


def test_no_warning_for_known_models() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        get_model_spec("text-embedding-v4")
        get_model_spec("tongyi-embedding-vision-plus")
