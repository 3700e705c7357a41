"""Long-text policies, identical inputs sent once, redirects not followed, answers bounded,
and a property over inputs and fault schedules."""

from __future__ import annotations

import http.server
import math
import threading
import typing
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashscope_embeddings import (
    APIStatusError,
    DashScopeClient,
    InvalidInputError,
    PartialEmbeddingError,
    ResponseValidationError,
)
from dashscope_embeddings._options import RequestOptions
from dashscope_embeddings._transport import APIRequest
from dashscope_embeddings.emulator import Emulator
from tests.conftest import TEST_KEY, sent_bodies

LONG = " ".join(f"word{i % 97}" for i in range(3000))  # ~3,000 tokens: over v2's 2,048


def _norm(vector: list[float]) -> float:
    return math.sqrt(sum(v * v for v in vector))


def test_long_text_is_refused_by_default_naming_the_index(emulator: Emulator) -> None:
    with DashScopeClient(TEST_KEY, base_url=emulator.url) as client:
        with pytest.raises(InvalidInputError, match=r"input 1 has .* tokens .* 2048") as info:
            client.embed_texts(["short", LONG], model="text-embedding-v2")
    assert "long_text=" in str(info.value) and emulator.requests == []


def test_truncate_sends_a_text_within_the_limit(emulator: Emulator) -> None:
    with DashScopeClient(TEST_KEY, base_url=emulator.url) as client:
        result = client.embed_texts(["short", LONG], model="text-embedding-v2", long_text="truncate")
    sent = sent_bodies(emulator)[0]["input"]["texts"]
    assert sent[0] == "short" and LONG.startswith(sent[1]) and len(sent[1]) < len(LONG)
    assert len(result.embeddings) == 2


def test_chunk_embeds_pieces_and_returns_their_weighted_mean(emulator: Emulator) -> None:
    with DashScopeClient(TEST_KEY, base_url=emulator.url) as client:
        result = client.embed_texts([LONG, "short"], model="text-embedding-v2", long_text="chunk")
        pieces = [t for b in sent_bodies(emulator) for t in b["input"]["texts"] if t != "short"]
        assert len(pieces) >= 2 and "".join(pieces) == LONG  # nothing dropped or reordered
        emulator.clear_requests()
        parts = client.embed_texts(pieces, model="text-embedding-v2").embeddings
    vector = result.embeddings[0]
    assert abs(_norm(vector) - 1.0) < 1e-9
    # the mean points the same way as the pieces: closer to each piece than to an unrelated text
    for part in parts:
        assert sum(a * b for a, b in zip(vector, part, strict=True)) > 0.5


def test_identical_inputs_are_sent_once_and_fanned_out(emulator: Emulator) -> None:
    texts = ["alpha", "beta", "alpha", "gamma", "beta", "alpha"]
    with DashScopeClient(TEST_KEY, base_url=emulator.url) as client:
        result = client.embed_texts(texts)
    assert sent_bodies(emulator)[0]["input"]["texts"] == ["alpha", "beta", "gamma"]
    assert result.embeddings[0] == result.embeddings[2] == result.embeddings[5]
    assert result.embeddings[1] == result.embeddings[4] != result.embeddings[0]


class _Redirector(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.send_response(307)
        self.send_header("Location", "http://127.0.0.1:9/elsewhere")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def redirector() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_redirect_is_not_followed_with_the_key(redirector: str) -> None:
    with DashScopeClient(TEST_KEY, base_url=redirector) as client:
        with pytest.raises(APIStatusError, match=r"redirect to http://127\.0\.0\.1:9/elsewhere"):
            client.embed_texts(["x"])


def test_an_answer_over_the_size_bound_is_refused(emulator: Emulator) -> None:
    with DashScopeClient(TEST_KEY, base_url=emulator.url, max_retries=0) as client:
        body = b'{"model":"text-embedding-v4","input":{"texts":["hello"]}}'
        request = APIRequest(
            "POST",
            client.endpoints.native_base + "/services/embeddings/text-embedding/text-embedding",
            content=body,
            max_response_bytes=1000,
        )
        with pytest.raises(ResponseValidationError, match="over 1,000 bytes"):
            client._request(request, lambda answer: answer, RequestOptions())


# --- a property over inputs and fault schedules ------------------------------------------------

_WORDS = st.sampled_from(["tea", "rain", "maps", "jazz", "salt", "fern", "oak", "ink"])
_TEXT = st.lists(_WORDS, min_size=1, max_size=6).map(" ".join)


@pytest.fixture(scope="module")
def fault_emulator() -> Iterator[Emulator]:
    with Emulator(api_key=TEST_KEY, reject_marker="__REJECT__") as emu:
        yield emu


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    texts=st.lists(_TEXT, min_size=1, max_size=45),
    poison=st.sets(st.integers(0, 44), max_size=3),
    faults=st.lists(st.sampled_from([500, 503, 429, 0]), max_size=4),
)
def test_one_vector_per_input_in_order_or_exactly_the_injected_failures(
    fault_emulator: Emulator,
    texts: list[str],
    poison: set[int],
    faults: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("dashscope_embeddings._transport._wait", lambda cancel, delay: False)
    poison = {i for i in poison if i < len(texts)}
    inputs = [t + (" __REJECT__" if i in poison else "") for i, t in enumerate(texts)]
    fault_emulator.clear_faults()
    for status in faults:
        if status == 0:
            fault_emulator.inject_fault("truncated")
        else:
            fault_emulator.inject(status, "InternalError" if status >= 500 else "Throttling", "x")
    with DashScopeClient(TEST_KEY, base_url=fault_emulator.url, max_retries=8) as client:
        try:
            result: typing.Any = client.embed_texts(inputs)
            vectors: list[list[float] | None] = list(result.embeddings)
            failed: set[int] = set()
        except PartialEmbeddingError as error:
            vectors, failed = error.embeddings, set(error.failed)
        except APIStatusError as error:  # every input was poison
            assert error.partial is not None
            vectors, failed = error.partial.embeddings, set(error.partial.failed)
        fault_emulator.clear_faults()
        clean = {i for i in range(len(inputs)) if i not in poison}
        expected = client.embed_texts([inputs[i] for i in sorted(clean)]).embeddings if clean else []
    assert failed == poison
    assert len(vectors) == len(inputs)
    assert [vectors[i] for i in sorted(clean)] == expected
    assert all(vectors[i] is None for i in poison)
