"""The emulator's fault switches, quotas, content inspection, counters and vector cache.

Spoken to with raw HTTP (httpx) on 127.0.0.1, as a client would see it; no client code of the
package is used.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dashscope_embeddings._registry import MODELS
from dashscope_embeddings.emulator import Emulator, EmulatorStats, _lexical
from dashscope_embeddings.emulator.__main__ import _parser, _settings_line
from dashscope_embeddings.emulator._responses import render_json
from tests.emulator.test_emulator import assert_compatible_error, assert_native_error, embed

KEY = "fault-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
NATIVE = "/services/embeddings/text-embedding/text-embedding"
V4 = MODELS["text-embedding-v4"]
DIMENSION = 64
TEXTS = ["refund policy details", "shipping takes five days", "the weather is fine"]
TRANSPORT_ERRORS = (httpx.RemoteProtocolError, httpx.ReadError)


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(api_key=KEY) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def client(emu: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.url, headers=AUTH, timeout=10) as c:
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


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def server_errors(emu: Emulator) -> Iterator[list[logging.LogRecord]]:
    """Errors uvicorn logs (e.g. "Exception in ASGI application"); a clean fault logs none.

    Attached once ``emu`` runs: starting a server reconfigures uvicorn's loggers.
    """
    handler = _Collect()
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)


def native_body(texts: list[str] = TEXTS, **parameters: Any) -> dict[str, Any]:
    return embed(texts, dimension=DIMENSION, **parameters)


def compat_body(texts: list[str] = TEXTS, **extra: Any) -> dict[str, Any]:
    return {"model": V4.name, "input": texts, "dimensions": DIMENSION, **extra}


def post_native(client: httpx.Client, emu: Emulator, body: Any = None) -> httpx.Response:
    return client.post(emu.base_url + NATIVE, json=native_body() if body is None else body)


def post_compat(client: httpx.Client, emu: Emulator, body: Any = None) -> httpx.Response:
    return client.post(
        emu.compatible_base_url + "/embeddings", json=compat_body() if body is None else body
    )


def native_items(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["output"]["embeddings"]
    return items


def compat_items(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["data"]
    return items


def reject_constant(name: str) -> float:
    raise ValueError(f"non-standard JSON number {name}")


# --- wire faults --------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["native", "compatible"])
def test_reset_drops_the_connection_without_any_response(
    emu: Emulator, client: httpx.Client, server_errors: list[logging.LogRecord], protocol: str
) -> None:
    post = post_native if protocol == "native" else post_compat
    assert post(client, emu).status_code == 200  # a pooled keep-alive connection exists
    emu.inject_fault("reset")
    with pytest.raises(TRANSPORT_ERRORS):
        post(client, emu)
    assert post(client, emu).status_code == 200  # the next request is served normally
    assert [r.status for r in emu.requests] == [200, 0, 200]
    stats = emu.stats
    assert stats.resets == 1 and stats.faults == 1
    assert dict(stats.responses_by_status) == {200: 2}
    assert not server_errors


def test_reset_happens_before_authentication(emu: Emulator) -> None:
    emu.inject_fault("reset", times=2)
    for _ in range(2):
        with pytest.raises(TRANSPORT_ERRORS):
            httpx.post(emu.base_url + NATIVE, json={}, timeout=5)  # no key at all
    response = httpx.post(emu.base_url + NATIVE, json={}, timeout=5)
    assert_native_error(response, 401, "InvalidApiKey")


def test_reset_rate() -> None:
    def outcomes(seed: int) -> list[str]:
        with Emulator(reset_rate=0.5, seed=seed) as emulator:
            result = []
            for _ in range(12):
                try:
                    response = httpx.post(
                        emulator.base_url + NATIVE, json=native_body(), headers=AUTH, timeout=5
                    )
                    result.append(str(response.status_code))
                except TRANSPORT_ERRORS:
                    result.append("reset")
            assert emulator.stats.resets == result.count("reset")
            return result

    first = outcomes(3)
    assert set(first) == {"200", "reset"}
    assert outcomes(3) == first
    with Emulator(reset_rate=1.0) as always, pytest.raises(TRANSPORT_ERRORS):
        httpx.post(always.base_url + NATIVE, json=native_body(), headers=AUTH, timeout=5)


@pytest.mark.parametrize("protocol", ["native", "compatible"])
def test_truncated_json(emu: Emulator, client: httpx.Client, protocol: str) -> None:
    post = post_native if protocol == "native" else post_compat
    whole = post(client, emu).content
    emu.inject_fault("truncated")
    response = post(client, emu)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content)
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    # the first half of what the answer would have been (request ids differ)
    assert 0.3 * len(whole) < len(response.content) < 0.7 * len(whole)
    assert response.content[:40] == whole[:40]
    assert post(client, emu).status_code == 200


def test_truncated_full_length_resets_mid_body(
    emu: Emulator, client: httpx.Client, server_errors: list[logging.LogRecord]
) -> None:
    emu.inject_fault("truncated", at=0.25, full_length=True)
    with client.stream("POST", emu.base_url + NATIVE, json=native_body()) as response:
        assert response.status_code == 200  # the headers arrived
        assert int(response.headers["content-length"]) > 100
        with pytest.raises(TRANSPORT_ERRORS):
            response.read()
    assert post_native(client, emu).status_code == 200
    assert not server_errors


def test_html_gateway_page(emu: Emulator, client: httpx.Client) -> None:
    emu.inject_fault("html")
    emu.inject_fault("html", status=200)
    response = httpx.post(emu.base_url + NATIVE, json={}, timeout=5)  # before authentication
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert "<html>" in response.text and "502 Bad Gateway" in response.text
    response = post_compat(client, emu)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert [r.status for r in emu.requests] == [502, 200]


def test_faults_share_the_fifo_of_inject(emu: Emulator, client: httpx.Client) -> None:
    emu.inject(500, "InternalError", "boom")
    emu.inject_fault("html", status=503)
    emu.inject(429, "Throttling.RateQuota", "slow down")
    emu.inject_fault("missing_index")
    statuses = [post_native(client, emu).status_code for _ in range(3)]
    assert statuses == [500, 503, 429]
    assert len(native_items(post_native(client, emu))) == len(TEXTS) - 1
    assert len(native_items(post_native(client, emu))) == len(TEXTS)
    assert emu.stats.faults == 4


# --- payload faults -----------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["native", "compatible"])
def test_duplicate_index(emu: Emulator, client: httpx.Client, protocol: str) -> None:
    emu.inject_fault("duplicate_index", times=2)
    if protocol == "native":
        indices = [i["text_index"] for i in native_items(post_native(client, emu))]
        single = native_items(post_native(client, emu, native_body(["one"])))
        assert [i["text_index"] for i in single] == [0, 0]
    else:
        indices = [i["index"] for i in compat_items(post_compat(client, emu))]
        single = compat_items(post_compat(client, emu, compat_body(["one"])))
        assert [i["index"] for i in single] == [0, 0]
    assert len(indices) == len(TEXTS)
    assert len(set(indices)) == len(TEXTS) - 1  # one index twice, one missing


@pytest.mark.parametrize("protocol", ["native", "compatible"])
def test_missing_index(emu: Emulator, client: httpx.Client, protocol: str) -> None:
    emu.inject_fault("missing_index")
    if protocol == "native":
        response = post_native(client, emu)
        indices = {i["text_index"] for i in native_items(response)}
        assert response.json()["usage"]["total_tokens"] > 0
    else:
        indices = {i["index"] for i in compat_items(post_compat(client, emu))}
    assert len(indices) == len(TEXTS) - 1 and indices < set(range(len(TEXTS)))


def test_wrong_dimension(emu: Emulator, client: httpx.Client) -> None:
    emu.inject_fault("wrong_dimension", times=2)
    lengths = sorted(len(i["embedding"]) for i in native_items(post_native(client, emu)))
    assert lengths == [DIMENSION - 1] + [DIMENSION] * (len(TEXTS) - 1)
    items = compat_items(post_compat(client, emu, compat_body(encoding_format="base64")))
    sizes = sorted(len(base64.b64decode(i["embedding"])) for i in items)
    assert sizes == [4 * (DIMENSION - 1)] + [4 * DIMENSION] * (len(TEXTS) - 1)


@pytest.mark.parametrize(
    ("value", "literal", "check"),
    [("nan", "NaN", math.isnan), ("inf", "Infinity", lambda x: x == math.inf)],
)
def test_nan(emu: Emulator, client: httpx.Client, value: Any, literal: str, check: Any) -> None:
    emu.inject_fault("nan", value=value)
    response = post_native(client, emu)
    assert response.status_code == 200
    assert literal in response.text
    with pytest.raises(ValueError, match="non-standard"):
        json.loads(response.text, parse_constant=reject_constant)  # a strict parser refuses
    values = [x for item in native_items(response) for x in item["embedding"]]
    assert sum(1 for x in values if not math.isfinite(x)) == 1
    assert any(check(x) for x in values)


def test_nan_in_base64_and_sparse(emu: Emulator, client: httpx.Client) -> None:
    emu.inject_fault("nan", times=2)
    items = compat_items(post_compat(client, emu, compat_body(encoding_format="base64")))
    floats = [
        x
        for item in items
        for x in struct.unpack(f"<{DIMENSION}f", base64.b64decode(item["embedding"]))
    ]
    assert sum(1 for x in floats if math.isnan(x)) == 1
    response = post_native(client, emu, native_body(output_type="sparse", model="x"))
    assert response.status_code == 404  # consumed by an error answer: no effect
    response = post_native(
        client, emu, embed(TEXTS, model=MODELS["text-embedding-v3"].name, output_type="sparse")
    )
    assert "NaN" not in response.text  # the second fault went to the 404 above
    emu.inject_fault("nan")
    response = post_native(
        client, emu, embed(TEXTS, model=MODELS["text-embedding-v3"].name, output_type="sparse")
    )
    weights = [e["value"] for i in native_items(response) for e in i["sparse_embedding"]]
    assert sum(1 for w in weights if math.isnan(w)) == 1


def test_payload_faults_leave_errors_alone(emu: Emulator) -> None:
    emu.inject_fault("missing_index")
    response = httpx.post(
        emu.base_url + NATIVE,
        json=native_body(),
        headers={"Authorization": "Bearer wrong"},
        timeout=5,
    )
    assert_native_error(response, 401, "InvalidApiKey")
    ok = httpx.post(emu.base_url + NATIVE, json=native_body(), headers=AUTH, timeout=5)
    assert len(native_items(ok)) == len(TEXTS)  # the fault was consumed by the 401


# --- slow bodies --------------------------------------------------------------------------------


def test_slow_body_headers_first_then_trickle(emu: Emulator, client: httpx.Client) -> None:
    emu.inject_fault("slow_body", ms=600, pieces=12)
    start = time.perf_counter()
    chunks = 0
    with client.stream("POST", emu.base_url + NATIVE, json=native_body()) as response:
        headers_after = time.perf_counter() - start
        assert response.status_code == 200
        body = b""
        for chunk in response.iter_raw():
            body += chunk
            chunks += 1
    total = time.perf_counter() - start
    assert headers_after < 0.4
    assert total >= 0.55
    assert chunks >= 4  # it really came in pieces
    assert len(json.loads(body)["output"]["embeddings"]) == len(TEXTS)


def test_slow_body_makes_a_deadline_expire_mid_body(emu: Emulator) -> None:
    emu.inject_fault("slow_body", ms=800, pieces=2)  # a 0.4 s pause before each half
    timeout = httpx.Timeout(5.0, read=0.2)
    with httpx.Client(headers=AUTH, timeout=timeout) as c:
        with c.stream("POST", emu.base_url + NATIVE, json=native_body()) as response:
            assert response.status_code == 200
            with pytest.raises(httpx.ReadTimeout):
                response.read()
        # consumed: the next answer comes without a 0.4 s pause (or it would time out too)
        assert c.post(emu.base_url + NATIVE, json=native_body()).status_code == 200


def test_slow_body_ms_trickles_every_response() -> None:
    with Emulator(api_key=KEY, slow_body_ms=500) as emulator, httpx.Client(timeout=5) as c:
        for url, headers, status in [
            (emulator.base_url + NATIVE, AUTH, 200),
            (emulator.url + "/nowhere", {}, 404),
        ]:
            start = time.perf_counter()
            with c.stream("POST", url, json=native_body(), headers=headers) as response:
                headers_after = time.perf_counter() - start
                response.read()
            assert response.status_code == status
            assert headers_after < 0.3
            assert time.perf_counter() - start >= 0.45


# --- content inspection -------------------------------------------------------------------------


def test_marker_rejects_the_whole_native_request(emu: Emulator, client: httpx.Client) -> None:
    response = post_native(client, emu, native_body(["fine", "not __REJECT__ this", "fine too"]))
    message = assert_native_error(response, 400, "DataInspectionFailed")
    assert message == "Input data may contain inappropriate content."
    assert set(response.json()) == {"request_id", "code", "message"}
    stats = emu.stats
    assert stats.billed_requests == 0 and stats.billed_tokens == 0


def test_marker_rejects_the_whole_compatible_request(emu: Emulator, client: httpx.Client) -> None:
    response = post_compat(client, emu, compat_body(["ok", "__REJECT__"]))
    message = assert_compatible_error(response, 400, "data_inspection_failed")
    assert message == "Input data may contain inappropriate content."
    response = post_compat(client, emu, {"model": V4.name, "input": "x __REJECT__ y"})
    assert_compatible_error(response, 400, "data_inspection_failed")


def test_marker_is_configurable() -> None:
    with Emulator(reject_marker="BADWORD") as custom, Emulator(reject_marker=None) as off:
        url = custom.base_url + NATIVE
        bad = httpx.post(url, json=native_body(["a BADWORD"]), headers=AUTH, timeout=5)
        assert_native_error(bad, 400, "DataInspectionFailed")
        default = httpx.post(url, json=native_body(["__REJECT__"]), headers=AUTH, timeout=5)
        assert default.status_code == 200
        url = off.base_url + NATIVE
        assert httpx.post(url, json=native_body(["__REJECT__"]), headers=AUTH).status_code == 200


# --- quotas -------------------------------------------------------------------------------------


def test_rpm_quota_both_protocols() -> None:
    with Emulator(rpm=2, quota_window_s=0.5) as emulator, httpx.Client(headers=AUTH) as c:
        native_url = emulator.base_url + NATIVE
        compat_url = emulator.compatible_base_url + "/embeddings"
        assert c.post(native_url, json=native_body()).status_code == 200
        assert c.post(compat_url, json=compat_body()).status_code == 200
        throttled = c.post(native_url, json=native_body())
        message = assert_native_error(throttled, 429, "Throttling.RateQuota")
        assert "rate limit" in message.lower()
        assert "retry-after" not in throttled.headers  # §6: the service documents none
        assert_compatible_error(c.post(compat_url, json=compat_body()), 429, "limit_requests")
        time.sleep(0.55)
        assert c.post(native_url, json=native_body()).status_code == 200
        stats = emulator.stats
    assert stats.throttled == 2 and dict(stats.throttled_by_reason) == {"rpm": 2}
    assert stats.billed_requests == 3


def test_rpm_retry_after_option() -> None:
    with Emulator(rpm=1, quota_window_s=0.4, quota_retry_after=True) as emulator:
        url = emulator.base_url + NATIVE
        assert httpx.post(url, json=native_body(), headers=AUTH).status_code == 200
        throttled = httpx.post(url, json=native_body(), headers=AUTH)
        assert throttled.status_code == 429
        assert throttled.headers["retry-after"] == "1"  # whole seconds, rounded up
        assert 0 < int(throttled.headers["retry-after-ms"]) <= 400


def test_tpm_quota() -> None:
    with Emulator(tpm=10, quota_window_s=1.0, quota_retry_after=True) as emulator:
        url = emulator.base_url + NATIVE
        compat_url = emulator.compatible_base_url + "/embeddings"
        with httpx.Client(headers=AUTH) as c:
            six = native_body(["one two three", "four five six"])
            first = c.post(url, json=six)
            assert first.json()["usage"]["total_tokens"] == 6
            throttled = c.post(url, json=six)
            assert_native_error(throttled, 429, "Throttling.AllocationQuota")
            assert 0 < int(throttled.headers["retry-after-ms"]) <= 1000
            response = c.post(compat_url, json=compat_body(["a b c d e"]))
            assert_compatible_error(response, 429, "insufficient_quota")
            # the rejected requests took nothing: four tokens still fit
            assert c.post(url, json=native_body(["a b c d"])).status_code == 200
            assert c.post(url, json=native_body(["a"])).status_code == 429
            time.sleep(1.05)
            assert c.post(url, json=six).status_code == 200
            stats = emulator.stats
    assert stats.billed_tokens == 6 + 4 + 6
    assert dict(stats.throttled_by_reason) == {"tpm": 3}


def test_reset_quotas() -> None:
    with Emulator(rpm=1) as emulator:
        url = emulator.base_url + NATIVE
        assert httpx.post(url, json=native_body(), headers=AUTH).status_code == 200
        assert httpx.post(url, json=native_body(), headers=AUTH).status_code == 429
        emulator.reset_quotas()
        assert httpx.post(url, json=native_body(), headers=AUTH).status_code == 200


# --- counters -----------------------------------------------------------------------------------


def test_stats_counts(emu: Emulator, client: httpx.Client) -> None:
    assert emu.stats == EmulatorStats(
        requests=0,
        requests_by_path={},
        responses_by_status={},
        in_flight=0,
        peak_in_flight=0,
        billed_requests=0,
        billed_tokens=0,
        throttled=0,
        throttled_by_reason={},
        resets=0,
        faults=0,
        vector_cache_hits=0,
        vector_cache_misses=0,
    )
    usage = post_native(client, emu).json()["usage"]["total_tokens"]
    usage += post_compat(client, emu).json()["usage"]["total_tokens"]
    post_native(client, emu, native_body(["x"] * (V4.max_batch_size + 1)))  # 400
    client.get(emu.url + "/elsewhere")  # 404
    emu.inject(429, "Throttling", "injected")
    post_native(client, emu)
    stats = emu.stats
    assert stats.requests == 5
    assert dict(stats.requests_by_path) == {
        "/api/v1" + NATIVE: 3,
        "/compatible-mode/v1/embeddings": 1,
        "/elsewhere": 1,
    }
    assert dict(stats.responses_by_status) == {200: 2, 400: 1, 404: 1, 429: 1}
    assert stats.billed_requests == 2 and stats.billed_tokens == usage
    assert stats.throttled == 0  # an injected 429 is not the emulator's own throttling
    assert stats.faults == 1
    with pytest.raises(TypeError):
        stats.requests_by_path["/x"] = 1  # type: ignore[index]
    emu.reset_stats()
    assert emu.stats.requests == 0 and emu.stats.billed_tokens == 0
    post_native(client, emu)
    emu.clear_requests()  # also zeroes the counters
    assert emu.stats.requests == 0 and emu.requests == []


def concurrent_posts(url: str, n: int, body: Any) -> list[httpx.Response]:
    responses: list[httpx.Response] = []
    barrier = threading.Barrier(n)
    lock = threading.Lock()

    def call() -> None:
        barrier.wait(timeout=5)
        response = httpx.post(url, json=body, headers=AUTH, timeout=10)
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=call) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return responses


def test_peak_in_flight() -> None:
    with Emulator(latency=0.5) as emulator:
        url = emulator.base_url + NATIVE
        responses = concurrent_posts(url, 5, native_body())
        assert [r.status_code for r in responses] == [200] * 5
        stats = emulator.stats
        assert stats.peak_in_flight == 5 and stats.in_flight == 0
        emulator.reset_stats()
        assert emulator.stats.peak_in_flight == 0  # the peak restarts from the current load


def test_max_in_flight_is_counted_as_throttling() -> None:
    with Emulator(max_in_flight=2, latency=0.5) as emulator:
        responses = concurrent_posts(emulator.base_url + NATIVE, 4, native_body())
        stats = emulator.stats
    assert sorted(r.status_code for r in responses) == [200, 200, 429, 429]
    assert dict(stats.throttled_by_reason) == {"max_in_flight": 2}
    assert 2 <= stats.peak_in_flight <= 4 and stats.billed_requests == 2


# --- vectors: cache and sparse weights ----------------------------------------------------------


def reference_vector(text: str, dimension: int, text_type: str = "document") -> list[float]:
    extra = [_lexical.marker_feature("text_type", text_type, 0.1)]
    return _lexical.dense_vector(
        _lexical.analyze(text), model=V4.name, dimension=dimension, extra=extra
    )


def test_cache_does_not_change_vectors(emu: Emulator, client: httpx.Client) -> None:
    text = f"cache probe {time.time_ns()}"  # never seen by this process
    for dimension in (DIMENSION, V4.default_dimension):
        assert dimension is not None
        expected = reference_vector(text, dimension)
        for _ in range(2):  # computed, then from the cache
            body = embed([text], dimension=dimension)
            (item,) = native_items(post_native(client, emu, body))
            assert item["embedding"] == expected
        (item,) = compat_items(
            post_compat(client, emu, compat_body([text]) | {"dimensions": dimension})
        )
        assert item["embedding"] == expected
    stats = emu.stats
    assert stats.vector_cache_misses == 2 and stats.vector_cache_hits == 4
    # text_type is part of the key: a query vector is not the cached document vector
    (item,) = native_items(post_native(client, emu, native_body([text], text_type="query")))
    assert item["embedding"] == reference_vector(text, DIMENSION, "query")
    assert item["embedding"] != reference_vector(text, DIMENSION)


def test_render_json_matches_json_dumps(emu: Emulator, client: httpx.Client) -> None:
    response = post_native(client, emu, native_body(output_type="dense&sparse"))
    payload = response.json()
    assert render_json(payload) == json.dumps(
        payload, ensure_ascii=False, separators=(",", ":")
    ).encode("utf-8")
    assert response.content == render_json(payload)  # the cached JSON text is byte-identical


def test_sparse_weights_reflect_term_importance(emu: Emulator, client: httpx.Client) -> None:
    text = "people love hippopotamus, people love hippopotamus"
    body = native_body([text, "hippopotamus"], output_type="dense&sparse")
    items = {
        i["text_index"]: i["sparse_embedding"] for i in native_items(post_native(client, emu, body))
    }
    weights = {e["token"]: e["value"] for e in items[0]}
    assert set(weights) == {"people", "love", "hippopotamus"}  # tf 2 each
    assert weights["hippopotamus"] > weights["love"] and weights["hippopotamus"] > weights["people"]
    assert weights["hippopotamus"] == round(1 + math.log(2), 4)  # an unlisted word weighs 1
    # indices stay a stable hash of the token
    (entry,) = items[1]
    assert entry["token"] == "hippopotamus"
    assert entry["index"] == next(e["index"] for e in items[0] if e["token"] == "hippopotamus")
    assert entry["value"] == 1.0
    assert _lexical.term_importance("the") < _lexical.term_importance("people") < 1.0
    assert _lexical.term_importance("的") < _lexical.term_importance("鲸")


# --- settings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "explode"},
        {"kind": "reset", "ms": 10},
        {"kind": "html", "at": 0.5},
        {"kind": "html", "status": 99},
        {"kind": "slow_body", "ms": 0},
        {"kind": "slow_body", "pieces": 0},
        {"kind": "truncated", "at": 1.0},
        {"kind": "nan", "value": "zero"},
        {"kind": "reset", "times": 0},
    ],
)
def test_inject_fault_rejects_bad_options(emu: Emulator, kwargs: dict[str, Any]) -> None:
    kind = kwargs.pop("kind")
    with pytest.raises(ValueError):
        emu.inject_fault(kind, **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"slow_body_ms": -1},
        {"reset_rate": 2},
        {"rpm": 0},
        {"tpm": 0},
        {"quota_window_s": 0},
    ],
)
def test_invalid_new_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Emulator(**kwargs)


def test_cli_flags() -> None:
    args = _parser().parse_args(
        [
            *("--slow-body-ms", "250", "--reset-rate", "0.1", "--reject-marker", "BAD"),
            *("--rpm", "100", "--tpm", "5000", "--quota-window-s", "2", "--quota-retry-after"),
        ]
    )
    assert (args.slow_body_ms, args.reset_rate, args.reject_marker) == (250.0, 0.1, "BAD")
    assert (args.rpm, args.tpm, args.quota_window_s, args.quota_retry_after) == (
        100,
        5000,
        2.0,
        True,
    )
    line = _settings_line(args)
    assert "100 requests per 2 s" in line and "5000 tokens per 2 s" in line
    assert "reset rate 0.1" in line and "250 ms" in line and "'BAD'" in line
    defaults = _parser().parse_args([])
    assert defaults.reject_marker == "__REJECT__" and not defaults.quota_retry_after
    for bad in (["--rpm", "0"], ["--reset-rate", "1.5"], ["--quota-window-s", "0"]):
        with pytest.raises(SystemExit):
            _parser().parse_args(bad)
