"""Reliability, row by row: faults survived, bad inputs named by the caller's index, finished
work kept, deadlines that hold, settings refused at construction, Ctrl-C that stops sending."""

from __future__ import annotations

import _thread
import asyncio
import logging
import threading
import time
import typing
from collections.abc import Iterator

import pytest

from dashscope_embeddings import (
    APITimeoutError,
    AsyncDashScopeClient,
    ConfigurationError,
    ContentRejectedError,
    DashScopeClient,
    InvalidInputError,
    PartialEmbeddingError,
    PartialResult,
    RateLimitError,
    ResponseValidationError,
)
from dashscope_embeddings.emulator import Emulator
from tests.conftest import TEST_KEY

MARKER = "__REJECT__"


def corpus(n: int, *, poison: typing.Iterable[int] = ()) -> list[str]:
    bad = set(poison)
    return [
        f"note {i} about {['tea', 'rain', 'maps', 'jazz', 'salt'][i % 5]} and more"
        + (f" {MARKER}" if i in bad else "")
        for i in range(n)
    ]


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Real backoff waits, a hundred times shorter; the waits asked for are recorded."""
    waits: list[float] = []

    def wait(cancel: threading.Event | None, delay: float) -> bool:
        waits.append(delay)
        if cancel is None:
            time.sleep(delay / 100)
            return False
        return cancel.wait(delay / 100)

    async def async_sleep(delay: float) -> None:
        waits.append(delay)
        await asyncio.sleep(delay / 100)

    monkeypatch.setattr("dashscope_embeddings._transport._wait", wait)
    monkeypatch.setattr("dashscope_embeddings._transport._async_sleep", async_sleep)
    return waits


@pytest.fixture
def real_backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Backoff waits as asked, recorded."""
    waits: list[float] = []

    def wait(cancel: threading.Event | None, delay: float) -> bool:
        waits.append(delay)
        if cancel is None:
            time.sleep(delay)
            return False
        return cancel.wait(delay)

    monkeypatch.setattr("dashscope_embeddings._transport._wait", wait)
    return waits


@pytest.fixture(scope="module")
def reference() -> Iterator[typing.Callable[[list[str]], list[list[float]]]]:
    """Exact vectors from a fault-free emulator, to compare against."""
    with Emulator(api_key=TEST_KEY, reject_marker=None) as emu:
        client = DashScopeClient(TEST_KEY, base_url=emu.url, max_concurrency=8)

        def vectors(texts: list[str]) -> list[list[float]]:
            return client.embed_texts(texts).embeddings

        yield vectors
        client.close()


# --- 30 % random 500s --------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_30_percent_500s_complete_exact_and_in_order(
    flavour: str, fast_backoff: list[float], reference: typing.Callable[[list[str]], typing.Any]
) -> None:
    texts = corpus(2000)
    with Emulator(api_key=TEST_KEY, error_rate=0.3, seed=7) as emu:
        if flavour == "sync":
            with DashScopeClient(TEST_KEY, base_url=emu.url) as client:
                result = client.embed_texts(texts)
        else:

            async def go() -> typing.Any:
                async with AsyncDashScopeClient(TEST_KEY, base_url=emu.url) as client:
                    return await client.embed_texts(texts)

            result = asyncio.run(go())
        statuses = emu.stats.responses_by_status
    assert statuses.get(500, 0) > 30 and statuses[200] == 200  # faults happened, none re-billed
    assert result.embeddings == reference(texts)
    assert result.usage.requests == 200


def test_a_dead_service_still_fails_fast(fast_backoff: list[float]) -> None:
    with Emulator(api_key=TEST_KEY, error_rate=1.0) as emu:
        with DashScopeClient(TEST_KEY, base_url=emu.url) as client:
            with pytest.raises(Exception, match="InternalError"):
                client.embed_texts(corpus(2000))
        # the call's budget (max_retries=5 + 8 in flight) is shared: 200 requests do not get 5
        # retries each
        assert emu.stats.requests <= 8 + (5 + 8) + 8


# --- poison inputs -----------------------------------------------------------------------------


def test_one_rejected_text_the_rest_embedded_and_named_by_caller_index(
    reference: typing.Callable[[list[str]], list[list[float]]],
) -> None:
    texts = corpus(4400, poison=[4317])
    with Emulator(api_key=TEST_KEY, reject_marker=MARKER) as emu:
        with DashScopeClient(TEST_KEY, base_url=emu.url, max_concurrency=8) as client:
            with pytest.raises(PartialEmbeddingError, match="input 4317") as info:
                client.embed_texts(texts)
        billed = emu.stats.billed_requests
    error = info.value
    assert list(error.failed) == [4317] and error.failed[4317].code == "DataInspectionFailed"
    assert error.embeddings[4317] is None
    good = [i for i in range(len(texts)) if i != 4317]
    expected = reference([texts[i] for i in good])
    assert [error.embeddings[i] for i in good] == expected
    assert error.usage.requests == billed  # every billed request is accounted for


def test_on_error_skip_returns_the_partial_result(emulator: Emulator) -> None:
    texts = corpus(30, poison=[3, 17])
    with DashScopeClient(TEST_KEY, base_url=emulator.url) as client:
        result = client.embed_texts(texts, on_error="skip")
    assert isinstance(result, PartialResult) and not result.complete
    assert sorted(result.failed) == [3, 17]
    assert [i for i, v in enumerate(result.embeddings) if v is None] == [3, 17]


def test_everything_rejected_raises_the_services_error(emulator: Emulator) -> None:
    with DashScopeClient(TEST_KEY, base_url=emulator.url) as client:
        with pytest.raises(ContentRejectedError, match="input 0") as info:
            client.embed_texts(corpus(2, poison=[0, 1]))
    assert info.value.partial is not None and sorted(info.value.partial.failed) == [0, 1]


# --- quotas ------------------------------------------------------------------------------------


def test_rpm_quota_is_waited_out_per_retry_after(real_backoff: list[float]) -> None:
    with Emulator(api_key=TEST_KEY, rpm=8, quota_window_s=0.5, quota_retry_after=True) as emu:
        with DashScopeClient(TEST_KEY, base_url=emu.url, max_concurrency=2) as client:
            result = client.embed_texts(corpus(200))
        throttled = emu.stats.throttled
    assert len(result.embeddings) == 200 and throttled > 0
    assert real_backoff and max(real_backoff) <= 0.5  # the server's Retry-After, not a guess


def test_quota_that_does_not_free_up_keeps_finished_vectors_on_the_error(
    fast_backoff: list[float],
) -> None:
    with Emulator(api_key=TEST_KEY, rpm=5, quota_window_s=600, quota_retry_after=True) as emu:
        with DashScopeClient(TEST_KEY, base_url=emu.url, max_concurrency=1) as client:
            with pytest.raises(RateLimitError) as info:
                client.embed_texts(corpus(100))
    partial = info.value.partial
    assert info.value.retry_after is not None and info.value.retry_after > 60
    assert partial is not None
    kept = [v for v in partial.embeddings if v is not None]
    assert len(kept) == 50  # the 5 requests that got through, 10 texts each


# --- deadlines ---------------------------------------------------------------------------------


def test_a_trickled_body_is_cut_at_the_deadline_and_retried(fast_backoff: list[float]) -> None:
    with Emulator(api_key=TEST_KEY, slow_body_ms=5000) as emu:
        with DashScopeClient(TEST_KEY, base_url=emu.url, timeout=1, max_retries=1) as client:
            started = time.monotonic()
            with pytest.raises(APITimeoutError) as info:
                client.embed_texts(["a slow answer"])
            elapsed = time.monotonic() - started
        attempts = emu.stats.requests
    assert isinstance(info.value, TimeoutError)
    assert attempts == 2 and elapsed < 4.5  # two attempts of ~1 s, not 10 s of trickle


# --- malformed answers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind", ["truncated", "html", "duplicate_index", "missing_index", "wrong_dimension", "nan"]
)
def test_a_malformed_answer_is_retried(
    kind: str, emulator: Emulator, fast_backoff: list[float]
) -> None:
    emulator.inject_fault(kind)  # type: ignore[arg-type]
    texts = corpus(10)
    with DashScopeClient(TEST_KEY, base_url=emulator.url) as client:
        first = client.embed_texts(texts).embeddings
        again = client.embed_texts(texts).embeddings
    assert first == again and len(fast_backoff) == 1


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("truncated", ["HTTP 200", "application/json"]),
        ("html", ["HTTP 502", "text/html", "<"]),
        ("nan", ["NaN or Infinity"]),
        ("duplicate_index", ["appears twice"]),
        ("wrong_dimension", ["different sizes"]),
    ],
)
def test_a_persistently_malformed_answer_is_a_typed_error_never_a_vector(
    kind: str, words: list[str], emulator: Emulator, fast_backoff: list[float]
) -> None:
    emulator.inject_fault(kind, times=3)  # type: ignore[arg-type]
    with DashScopeClient(TEST_KEY, base_url=emulator.url, max_retries=2) as client:
        with pytest.raises(Exception) as info:
            client.embed_texts(corpus(4))
    assert isinstance(info.value, (ResponseValidationError,)) or "HTTP 502" in str(info.value)
    for word in words:
        assert word in str(info.value)


# --- inputs and settings -----------------------------------------------------------------------


def test_a_lone_surrogate_is_refused_before_sending(emulator: Emulator) -> None:
    with DashScopeClient(TEST_KEY, base_url=emulator.url) as client:
        with pytest.raises(InvalidInputError, match="input 2 cannot be sent as UTF-8") as info:
            client.embed_texts(["fine", "also fine", "bad \ud800 text"])
    assert info.value.index == 2 and emulator.requests == []


def test_a_generator_is_read_once(emulator: Emulator) -> None:
    with DashScopeClient(TEST_KEY, base_url=emulator.url) as client:
        result = client.embed_texts(f"text {i}" for i in range(25))
    assert len(result.embeddings) == 25


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout": -1}, "timeout must be a number of seconds > 0"),
        ({"timeout": 0}, "timeout must be a number of seconds > 0"),
        ({"max_retries": 1.5}, "max_retries"),
        ({"max_retries": -1}, "greater than or equal to 0"),
        ({"max_concurrency": 0}, "greater than or equal to 1"),
        ({"retries": 3}, "unknown option 'retries'"),
    ],
)
def test_bad_settings_are_refused_at_construction(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        DashScopeClient(TEST_KEY, base_url="http://127.0.0.1:1", **kwargs)  # type: ignore[arg-type]


def test_plain_http_to_another_machine_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="unencrypted"):
        DashScopeClient(TEST_KEY, base_url="http://10.0.0.5:8080")
    # opting in works; nothing is sent here
    DashScopeClient(TEST_KEY, base_url="http://10.0.0.5:8080", allow_insecure_http=True).close()


# --- Ctrl-C ------------------------------------------------------------------------------------


def test_ctrl_c_stops_sending_and_the_next_call_starts_at_once() -> None:
    with Emulator(api_key=TEST_KEY, latency=0.1) as emu:
        with DashScopeClient(TEST_KEY, base_url=emu.url, max_concurrency=4) as client:
            interrupted = threading.Event()

            def press_ctrl_c() -> None:
                # As a user would: again if the first one was swallowed (a KeyboardInterrupt
                # raised inside a finalizer during garbage collection is lost).
                time.sleep(0.35)
                while not interrupted.is_set():
                    _thread.interrupt_main()
                    interrupted.wait(0.5)

            presser = threading.Thread(target=press_ctrl_c, daemon=True)
            presser.start()
            try:
                with pytest.raises(KeyboardInterrupt):
                    client.embed_texts(corpus(2000))  # 200 requests, ~5 s at 4 in flight
            finally:
                interrupted.set()
                presser.join()
            at_interrupt = emu.stats.requests
            time.sleep(0.4)  # the in-flight ones finish; nothing queued may start
            assert emu.stats.requests - at_interrupt <= 4
            assert at_interrupt < 40
            started = time.monotonic()
            assert len(client.embed_texts(["after the interrupt"]).embeddings) == 1
            assert time.monotonic() - started < 1.0


def test_on_error_skip_always_returns_the_report_type(emulator: Emulator) -> None:
    with DashScopeClient(TEST_KEY, base_url=emulator.url) as client:
        result = client.embed_texts(corpus(12), on_error="skip")
    assert isinstance(result, PartialResult) and result.complete and not result.failed
    assert all(v is not None for v in result.embeddings)


def test_refused_loopback_port_fails_fast_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import socket

    from dashscope_embeddings import APIConnectionError, _transport

    with socket.socket() as probe:  # a port nobody listens on once this closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    waits: list[float] = []

    def record(cancel: object, delay: float) -> bool:
        waits.append(delay)
        return False

    monkeypatch.setattr(_transport, "_wait", record)
    caplog.set_level(logging.INFO, logger="dashscope_embeddings")
    with DashScopeClient(
        TEST_KEY, base_url=f"http://127.0.0.1:{port}/api/v1", max_retries=5
    ) as client:
        with pytest.raises(APIConnectionError, match=rf"127\.0\.0\.1:{port}"):
            client.embed_texts(["hello"], model="text-embedding-v4")
    assert len(waits) <= 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"127.0.0.1:{port}" in warnings[0].getMessage()
    assert "retrying in" in warnings[0].getMessage()
    assert all(TEST_KEY not in r.getMessage() for r in caplog.records)
