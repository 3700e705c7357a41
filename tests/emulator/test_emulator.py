"""The bundled emulator alone, spoken to with raw HTTP (httpx) on 127.0.0.1.

No client code of the package is used here except the registry, which holds the limits the
emulator must enforce.
"""

from __future__ import annotations

import base64
import math
import os
import re
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dashscope_embeddings import _tokenizer
from dashscope_embeddings._registry import MODELS
from dashscope_embeddings.emulator import Emulator, RecordedRequest

KEY = "test-key"
NATIVE = "/services/embeddings/text-embedding/text-embedding"
V4 = MODELS["text-embedding-v4"]
V3 = MODELS["text-embedding-v3"]
V2 = MODELS["text-embedding-v2"]
ASYNC_MODEL = next(s for s in MODELS.values() if s.endpoint == "async_task")
MULTIMODAL_MODEL = next(s for s in MODELS.values() if s.endpoint == "multimodal")
NOT_COMPATIBLE = next(s for s in MODELS.values() if not s.supports_compatible_mode)
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(api_key=KEY) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def client(emu: Emulator) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=emu.url, headers=headers, timeout=10) as c:
        yield c


@pytest.fixture(autouse=True)
def _clean(request: pytest.FixtureRequest) -> Iterator[None]:
    if "emu" in request.fixturenames:
        emulator: Emulator = request.getfixturevalue("emu")
        emulator.clear_faults()
        emulator.clear_requests()
        yield
        emulator.clear_faults()
    else:
        yield


def native(
    client: httpx.Client, emu: Emulator, body: Any, headers: dict[str, str] | None = None
) -> httpx.Response:
    return client.post(emu.base_url + NATIVE, json=body, headers=headers)


def compatible(client: httpx.Client, emu: Emulator, body: Any) -> httpx.Response:
    return client.post(emu.compatible_base_url + "/embeddings", json=body)


def embed(texts: Any, model: str = "text-embedding-v4", **parameters: Any) -> dict[str, Any]:
    return {"model": model, "input": {"texts": texts}, "parameters": parameters}


def by_index(body: dict[str, Any]) -> dict[int, list[float]]:
    return {e["text_index"]: e["embedding"] for e in body["output"]["embeddings"]}


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def assert_request_id(response: httpx.Response, key: str = "request_id") -> str:
    rid = response.json()[key]
    assert UUID_RE.match(rid)
    assert response.headers["x-request-id"] == rid
    return str(rid)


def assert_native_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"request_id", "code", "message"}
    assert body["code"] == code
    assert_request_id(response)
    return str(body["message"])


def assert_compatible_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "id", "request_id"}
    assert body["id"] == body["request_id"] == response.headers["x-request-id"]
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == error["type"] == code
    assert error["param"] is None
    return str(error["message"])


# --- native success -------------------------------------------------------------------------


def test_native_success_shape(emu: Emulator, client: httpx.Client) -> None:
    texts = ["first text", "second text", "third one"]
    response = native(client, emu, embed(texts))
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"output", "usage", "request_id"}
    assert_request_id(response)
    items = body["output"]["embeddings"]
    assert len(items) == 3
    assert {item["text_index"] for item in items} == {0, 1, 2}
    for item in items:
        assert set(item) == {"embedding", "text_index"}
        assert len(item["embedding"]) == V4.default_dimension
        assert math.isclose(math.fsum(x * x for x in item["embedding"]), 1.0, abs_tol=1e-5)
    assert body["usage"]["total_tokens"] == 6


def test_native_chosen_dimension(emu: Emulator, client: httpx.Client) -> None:
    for dimension in (min(V4.dimensions), max(V4.dimensions)):
        response = native(client, emu, embed(["hello"], dimension=dimension))
        assert response.status_code == 200
        assert len(response.json()["output"]["embeddings"][0]["embedding"]) == dimension


def test_fixed_dimension_model_accepts_its_only_size(emu: Emulator, client: httpx.Client) -> None:
    response = native(client, emu, embed(["hi"], model=V2.name, dimension=V2.dimensions[0]))
    assert response.status_code == 200
    assert len(response.json()["output"]["embeddings"][0]["embedding"]) == V2.dimensions[0]


def test_order_is_not_input_order_but_indices_are_complete(
    emu: Emulator, client: httpx.Client
) -> None:
    for n in (2, 3, 5, V4.max_batch_size):
        body = native(client, emu, embed([f"text {i}" for i in range(n)])).json()
        order = [item["text_index"] for item in body["output"]["embeddings"]]
        assert order != list(range(n))
        assert sorted(order) == list(range(n))


def test_in_order_option() -> None:
    with Emulator(shuffle=False) as emulator:
        response = httpx.post(
            emulator.base_url + NATIVE,
            json=embed(["a b", "c d", "e f"]),
            headers={"Authorization": "Bearer anything"},
        )
    assert [e["text_index"] for e in response.json()["output"]["embeddings"]] == [0, 1, 2]


def test_dense_and_sparse(emu: Emulator, client: httpx.Client) -> None:
    response = native(
        client, emu, embed(["Refund policy: refunds, refunds!"], output_type="dense&sparse")
    )
    assert response.status_code == 200
    (item,) = response.json()["output"]["embeddings"]
    assert len(item["embedding"]) == V4.default_dimension
    sparse = item["sparse_embedding"]
    assert {e["token"] for e in sparse} == {"refund", "policy", "refunds"}
    assert [e["index"] for e in sparse] == sorted(e["index"] for e in sparse)
    for entry in sparse:
        assert set(entry) == {"index", "value", "token"}
        assert isinstance(entry["index"], int) and entry["value"] > 0
    weights = {e["token"]: e["value"] for e in sparse}
    assert weights["refunds"] > weights["refund"]  # tf 2 vs 1


def test_sparse_only_omits_dense_embedding(emu: Emulator, client: httpx.Client) -> None:
    response = native(client, emu, embed(["one", "two"], model=V3.name, output_type="sparse"))
    assert response.status_code == 200
    for item in response.json()["output"]["embeddings"]:
        assert "embedding" not in item
        assert item["sparse_embedding"]


def test_lexical_similarity(emu: Emulator, client: httpx.Client) -> None:
    texts = [
        "how do I get a refund",
        "refund policy: refunds within 30 days",
        "shipping takes five days",
    ]
    vectors = by_index(native(client, emu, embed(texts)).json())
    assert dot(vectors[0], vectors[1]) > dot(vectors[0], vectors[2]) + 0.2


def test_vectors_are_deterministic_and_model_specific(emu: Emulator, client: httpx.Client) -> None:
    first = by_index(native(client, emu, embed(["same text", "other"])).json())
    second = by_index(native(client, emu, embed(["same text"])).json())
    assert first[0] == second[0]
    other_model = by_index(native(client, emu, embed(["same text"], model=V3.name)).json())
    assert other_model[0] != first[0]


def test_text_type_and_instruct(emu: Emulator, client: httpx.Client) -> None:
    def vector(model: str = V4.name, **parameters: Any) -> list[float]:
        body = native(client, emu, embed(["refund policy"], model, **parameters)).json()
        return by_index(body)[0]

    document, query = vector(), vector(text_type="query")
    assert document == vector(text_type="document")
    assert query != document and dot(query, document) > 0.9
    instruct = "Given a question, retrieve passages that answer it"
    assert vector(text_type="query", instruct=instruct) != query  # v4 + query: applied
    assert vector(text_type="document", instruct=instruct) == document  # ignored
    assert not V3.supports_instruct
    v3_query = vector(V3.name, text_type="query")
    assert vector(V3.name, text_type="query", instruct=instruct) == v3_query


def test_usage_counts_words_punctuation_and_cjk(emu: Emulator, client: httpx.Client) -> None:
    body = native(client, emu, embed(["Hello, world!", "日本語"])).json()
    # The Qwen BPE (the [tokenizer] extra): 4 + 2; without it, words, marks and CJK characters.
    qwen = _tokenizer.service_counter() is not None
    assert body["usage"]["total_tokens"] == (4 + 2 if qwen else 4 + 3)


def test_lenient_inputs(emu: Emulator, client: httpx.Client) -> None:
    # a bare string is one text; unknown parameter keys are ignored (llama-index's "kwargs")
    response = native(client, emu, embed("just one", kwargs={"text_type": "query"}))
    assert response.status_code == 200
    assert [e["text_index"] for e in response.json()["output"]["embeddings"]] == [0]
    assert native(client, emu, {"model": V4.name, "input": {"texts": ["x"]}}).status_code == 200


def test_limits_are_inclusive(emu: Emulator, client: httpx.Client) -> None:
    response = native(client, emu, embed(["w"] * V4.max_batch_size))
    assert response.status_code == 200
    long_text = " ".join(["w"] * V2.max_tokens_per_input)  # one token a word in either count
    response = native(client, emu, embed([long_text], model=V2.name))
    assert response.status_code == 200
    assert response.json()["usage"]["total_tokens"] == V2.max_tokens_per_input


# --- native rejections ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": "Bearer wrong-key"}, {"Authorization": ""}, {"Authorization": "Basic x"}],
)
def test_native_bad_key(emu: Emulator, client: httpx.Client, headers: dict[str, str]) -> None:
    message = assert_native_error(native(client, emu, embed(["x"]), headers), 401, "InvalidApiKey")
    assert message == "Invalid API-key provided."


def test_native_missing_auth_header(emu: Emulator) -> None:
    response = httpx.post(emu.base_url + NATIVE, json=embed(["x"]))
    assert_native_error(response, 401, "InvalidApiKey")


def test_any_key_accepted_without_configured_key() -> None:
    with Emulator() as emulator:
        ok = httpx.post(
            emulator.base_url + NATIVE, json=embed(["x"]), headers={"Authorization": "Bearer k"}
        )
        empty = httpx.post(
            emulator.base_url + NATIVE, json=embed(["x"]), headers={"Authorization": "Bearer"}
        )
    assert ok.status_code == 200
    assert empty.status_code == 401


def test_unknown_model(emu: Emulator, client: httpx.Client) -> None:
    response = native(client, emu, embed(["x"], model="text-embedding-v9"))
    assert assert_native_error(response, 404, "ModelNotFound") == "Model not exist."


@pytest.mark.parametrize("spec", [V4, V2], ids=lambda s: s.name)
def test_batch_too_large(emu: Emulator, client: httpx.Client, spec: Any) -> None:
    n = spec.max_batch_size + 1
    message = assert_native_error(
        native(client, emu, embed(["x"] * n, model=spec.name)), 400, "InvalidParameter"
    )
    assert message == f"batch size is invalid, it should not be larger than {spec.max_batch_size}."


@pytest.mark.parametrize(
    "texts",
    [["ok", "w " * (V4.max_tokens_per_input + 1)], [""], ["ok", "   "], []],
    ids=["too-long", "empty", "blank", "no-texts"],
)
def test_bad_text_lengths(emu: Emulator, client: httpx.Client, texts: list[str]) -> None:
    message = assert_native_error(native(client, emu, embed(texts)), 400, "InvalidParameter")
    if texts:
        assert message == f"Range of input length should be [1, {V4.max_tokens_per_input}]"


@pytest.mark.parametrize(
    ("model", "parameters"),
    [
        (V4.name, {"dimension": 100}),
        (V4.name, {"dimension": "1024"}),
        (V3.name, {"dimension": 256}),
        (V2.name, {"dimension": 1024}),
        (V2.name, {"output_type": "dense&sparse"}),
        (V2.name, {"output_type": "sparse"}),
        (V4.name, {"output_type": "both"}),
        (V4.name, {"text_type": "passage"}),
        (V4.name, {"instruct": 3}),
    ],
)
def test_bad_parameters(
    emu: Emulator, client: httpx.Client, model: str, parameters: dict[str, Any]
) -> None:
    response = native(client, emu, embed(["x"], model, **parameters))
    assert_native_error(response, 400, "InvalidParameter")


@pytest.mark.parametrize(
    "body",
    [
        {"input": {"texts": ["x"]}},
        {"model": V4.name},
        {"model": V4.name, "input": ["x"]},
        {"model": V4.name, "input": {"texts": ["x", 1]}},
        {"model": V4.name, "input": {"texts": ["x"]}, "parameters": []},
        ["not", "an", "object"],
    ],
)
def test_malformed_bodies(emu: Emulator, client: httpx.Client, body: Any) -> None:
    assert_native_error(native(client, emu, body), 400, "InvalidParameter")


def test_invalid_json(emu: Emulator, client: httpx.Client) -> None:
    response = client.post(
        emu.base_url + NATIVE, content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_native_error(response, 400, "InvalidParameter")
    assert emu.requests[-1].json is None


def test_async_model_needs_async_header(emu: Emulator, client: httpx.Client) -> None:
    response = native(client, emu, embed(["x"], model=ASYNC_MODEL.name))
    assert_native_error(response, 403, "AccessDenied")
    response = native(client, emu, embed(["x"]), headers={"X-DashScope-Async": "enable"})
    assert_native_error(response, 403, "AccessDenied")


def test_multimodal_model_on_text_path(emu: Emulator, client: httpx.Client) -> None:
    response = native(client, emu, embed(["x"], model=MULTIMODAL_MODEL.name))
    assert assert_native_error(response, 400, "InvalidParameter") == "url error"


def test_unknown_path_and_wrong_method(emu: Emulator, client: httpx.Client) -> None:
    response = client.post(emu.base_url + "/services/embeddings/text-embedding/nope", json={})
    assert_native_error(response, 404, "NotFound")
    response = client.get(emu.base_url + NATIVE)
    assert_native_error(response, 405, "MethodNotAllowed")
    assert response.headers["allow"] == "POST"
    response = client.post(emu.compatible_base_url + "/chat/completions", json={})
    assert_compatible_error(response, 404, "not_found")


# --- OpenAI-compatible mode -----------------------------------------------------------------


def test_compatible_success(emu: Emulator, client: httpx.Client) -> None:
    texts = ["alpha beta", "gamma", "delta epsilon"]
    response = compatible(client, emu, {"model": V4.name, "input": texts, "dimensions": 512})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"data", "model", "object", "usage", "id"}
    assert body["object"] == "list" and body["model"] == V4.name
    assert_request_id(response, key="id")
    assert body["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    order = [item["index"] for item in body["data"]]
    assert order != [0, 1, 2] and sorted(order) == [0, 1, 2]
    for item in body["data"]:
        assert item["object"] == "embedding" and len(item["embedding"]) == 512
    # the same text gets the same vector as a native "document" request
    native_body = native(client, emu, embed(texts, dimension=512)).json()
    assert {d["index"]: d["embedding"] for d in body["data"]} == by_index(native_body)


def test_compatible_string_input_and_base64(emu: Emulator, client: httpx.Client) -> None:
    floats = compatible(client, emu, {"model": V3.name, "input": "hello world"}).json()
    encoded = compatible(
        client, emu, {"model": V3.name, "input": "hello world", "encoding_format": "base64"}
    ).json()
    raw = base64.b64decode(encoded["data"][0]["embedding"])
    dimension = V3.default_dimension
    assert dimension is not None and len(raw) == 4 * dimension
    decoded = list(struct.unpack(f"<{dimension}f", raw))
    assert decoded == floats["data"][0]["embedding"]


def test_compatible_batch_too_large_matches_the_service(
    emu: Emulator, client: httpx.Client
) -> None:
    response = compatible(client, emu, {"model": V4.name, "input": ["x"] * 11})
    message = assert_compatible_error(response, 400, "InvalidParameter")
    assert message == (
        "<400> InternalError.Algo.InvalidParameter: Value error, batch size is invalid, "
        "it should not be larger than 10.: input.contents"
    )


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"model": V4.name, "input": [""]}, 400, "InvalidParameter"),
        (
            {"model": V4.name, "input": ["w " * (V4.max_tokens_per_input + 1)]},
            400,
            "InvalidParameter",
        ),
        ({"model": V4.name, "input": [[1, 2, 3]]}, 400, "InvalidParameter"),
        ({"model": V4.name, "input": "x", "dimensions": 100}, 400, "InvalidParameter"),
        ({"model": V3.name, "input": "x", "dimensions": 256}, 400, "InvalidParameter"),
        ({"model": V4.name, "input": "x", "encoding_format": "int8"}, 400, "InvalidParameter"),
        ({"model": "text-embedding-v9", "input": "x"}, 404, "model_not_found"),
        ({"model": ASYNC_MODEL.name, "input": "x"}, 404, "model_not_found"),
        ({"model": MULTIMODAL_MODEL.name, "input": "x"}, 404, "model_not_found"),
        ({"model": NOT_COMPATIBLE.name, "input": "x"}, 404, "model_not_found"),
    ],
)
def test_compatible_rejections(
    emu: Emulator, client: httpx.Client, body: dict[str, Any], status: int, code: str
) -> None:
    assert_compatible_error(compatible(client, emu, body), status, code)


def test_compatible_bad_key(emu: Emulator) -> None:
    response = httpx.post(
        emu.compatible_base_url + "/embeddings",
        json={"model": V4.name, "input": "x"},
        headers={"Authorization": "Bearer nope"},
    )
    assert_compatible_error(response, 401, "invalid_api_key")


# --- faults, throttling, errors -------------------------------------------------------------


def test_inject_429_then_normal(emu: Emulator, client: httpx.Client) -> None:
    emu.inject(429, "Throttling.RateQuota", "slow down", times=2, headers={"retry-after": "0"})
    first = native(client, emu, embed(["x"]))
    assert assert_native_error(first, 429, "Throttling.RateQuota") == "slow down"
    assert first.headers["retry-after"] == "0"
    second = compatible(client, emu, {"model": V4.name, "input": "x"})
    assert assert_compatible_error(second, 429, "Throttling.RateQuota") == "slow down"
    assert native(client, emu, embed(["x"])).status_code == 200
    assert [r.status for r in emu.requests] == [429, 429, 200]


def test_inject_fifo_and_before_auth(emu: Emulator) -> None:
    emu.inject(503, "ServiceUnavailable", "busy")
    emu.inject(500, "InternalError", "boom")
    url = emu.base_url + NATIVE
    assert httpx.post(url, json={}).status_code == 503  # no key at all: the fault wins
    assert httpx.post(url, json={}).status_code == 500
    assert httpx.post(url, json={}).status_code == 401


def test_inject_body_override(emu: Emulator, client: httpx.Client) -> None:
    body = {"request_id": "r-1", "code": "DataInspectionFailed", "message": "rejected"}
    emu.inject(200, None, "", body=body)
    response = native(client, emu, embed(["x"]))
    assert response.status_code == 200
    assert response.json() == body
    assert response.headers["x-request-id"]


def test_clear_faults(emu: Emulator, client: httpx.Client) -> None:
    emu.inject(500, "InternalError", "boom", times=3)
    emu.clear_faults()
    assert native(client, emu, embed(["x"])).status_code == 200


def test_max_in_flight() -> None:
    with Emulator(max_in_flight=1, latency=0.4) as emulator:
        responses: list[httpx.Response] = []
        barrier = threading.Barrier(2)

        def call() -> None:
            barrier.wait(timeout=5)
            responses.append(
                httpx.post(
                    emulator.base_url + NATIVE,
                    json=embed(["x"]),
                    headers={"Authorization": "Bearer k"},
                    timeout=10,
                )
            )

        threads = [threading.Thread(target=call) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(r.status_code for r in responses) == [200, 429]
    throttled = next(r for r in responses if r.status_code == 429)
    assert_native_error(throttled, 429, "Throttling.RateQuota")


def test_error_rate_one() -> None:
    with Emulator(error_rate=1.0) as emulator:
        response = httpx.post(
            emulator.base_url + NATIVE, json=embed(["x"]), headers={"Authorization": "Bearer k"}
        )
    assert_native_error(response, 500, "InternalError")


def test_error_rate_is_deterministic() -> None:
    def statuses() -> list[int]:
        with Emulator(error_rate=0.5, seed=7) as emulator, httpx.Client() as c:
            return [
                c.post(
                    emulator.base_url + NATIVE,
                    json=embed(["x"]),
                    headers={"Authorization": "Bearer k"},
                ).status_code
                for _ in range(12)
            ]

    first = statuses()
    assert set(first) == {200, 500}
    assert statuses() == first


# --- request log, lifecycle, CLI ------------------------------------------------------------


def test_recorded_requests_redact_the_key(emu: Emulator, client: httpx.Client) -> None:
    native(client, emu, embed(["x"]), headers={"X-DashScope-ApiKey": KEY})
    client.get(emu.url + "/elsewhere")
    requests = emu.requests
    assert [(r.method, r.path, r.status) for r in requests] == [
        ("POST", "/api/v1" + NATIVE, 200),
        ("GET", "/elsewhere", 404),
    ]
    assert isinstance(requests[0], RecordedRequest)
    assert requests[0].headers["authorization"] == "<redacted>"
    assert requests[0].headers["x-dashscope-apikey"] == "<redacted>"
    assert requests[0].json == embed(["x"])
    assert KEY not in repr(requests)
    emu.clear_requests()
    assert emu.requests == []


def test_urls_and_lifecycle() -> None:
    emulator = Emulator()
    with pytest.raises(RuntimeError):
        _ = emulator.url
    with emulator:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", emulator.url)
        assert emulator.base_url == emulator.url + "/api/v1"
        assert emulator.compatible_base_url == emulator.url + "/compatible-mode/v1"
        url = emulator.base_url + NATIVE
    with pytest.raises(httpx.TransportError):
        httpx.post(url, json={}, timeout=2)


@pytest.mark.parametrize(
    "kwargs",
    [{"latency": -1}, {"error_rate": 1.5}, {"max_in_flight": 0}, {"api_key": ""}, {"port": -1}],
)
def test_invalid_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Emulator(**kwargs)


def test_cli() -> None:
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dashscope_embeddings.emulator",
            *("--port", "0", "--api-key", "k1"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    watchdog = threading.Timer(30, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout is not None
        first, second = proc.stdout.readline(), proc.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+)/api/v1\b", first)
        assert match, first
        assert "/compatible-mode/v1" in first
        assert "deterministic lexical" in second and "not model quality" in second
        response = httpx.post(
            match.group(1) + "/api/v1" + NATIVE,
            json=embed(["hello"]),
            headers={"Authorization": "Bearer k1"},
        )
        assert response.status_code == 200
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        finally:
            watchdog.cancel()
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
    assert proc.returncode == 0
