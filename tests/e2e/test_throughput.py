"""Throughput features, checked by behaviour (never by timing): the adaptive limit against a
capped service, rpm budgets, token-aware packing, streaming order and bounded buffers,
progress and the summary log."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import typing

import pytest

from dashscope_embeddings import AsyncDashScopeClient, DashScopeClient, PartialEmbeddingError
from dashscope_embeddings._limiter import ConcurrencyController, RateWindow
from dashscope_embeddings._registry import get_model_spec
from dashscope_embeddings.emulator import Emulator
from dashscope_embeddings.resources.text import pack_by_tokens
from tests.conftest import TEST_KEY, sent_bodies


def corpus(n: int) -> list[str]:
    return [f"passage {i} on {['tea', 'rain', 'maps', 'jazz'][i % 4]} and {i % 7}" for i in range(n)]


# --- the adaptive limit --------------------------------------------------------------------------


def test_controller_steps_back_once_per_throttle_burst_and_probes_rarely() -> None:
    controller = ConcurrencyController(64)
    assert controller.limit == 8
    for _ in range(8):
        controller.success()
    assert controller.limit == 9
    sent_before_change = time.monotonic() - 1
    controller.throttled(time.monotonic())
    assert controller.limit == 8  # at the bound: one step back
    controller.throttled(sent_before_change)  # the same burst: ignored
    assert controller.limit == 8
    for _ in range(8 * 7):
        controller.success()
    assert controller.limit == 8  # probing again takes eight windows
    for _ in range(8):
        controller.success()
    assert controller.limit == 9


def test_controller_cuts_hard_when_stepping_back_was_not_enough() -> None:
    controller = ConcurrencyController(64)
    controller.throttled(time.monotonic())
    assert controller.limit == 7
    controller.throttled(time.monotonic())
    assert controller.limit == 7  # the same burst: counted once
    for _ in range(5):  # a round at the new limit: 5 answered, 2 throttled (over a quarter)
        controller.success()
    controller.throttled(time.monotonic())
    assert controller.limit == 4  # 7 * 0.7: still throttled often, well over the bound
    for _ in range(20):
        controller.throttled(time.monotonic())
    assert controller.limit == 1
    fixed = ConcurrencyController(3, adaptive=False)
    fixed.throttled(time.monotonic())
    assert fixed.limit == 3
    small = ConcurrencyController(2)
    for _ in range(100):
        small.success()
    assert small.limit == 2


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_default_settings_against_a_cap_of_8_stay_near_it_with_few_429s(flavour: str) -> None:
    texts = corpus(2000)
    with Emulator(api_key=TEST_KEY, latency=0.02, max_in_flight=8) as emu:
        if flavour == "sync":
            with DashScopeClient(TEST_KEY, base_url=emu.url) as client:
                result = client.embed_texts(texts)
                limit = client.concurrency_limit
        else:

            async def go() -> typing.Any:
                async with AsyncDashScopeClient(TEST_KEY, base_url=emu.url) as client:
                    return await client.embed_texts(texts), client.concurrency_limit

            result, limit = asyncio.run(go())
        stats = emu.stats
    assert len(result.embeddings) == 2000
    throttled = stats.responses_by_status.get(429, 0)
    assert throttled < 0.1 * stats.requests
    assert limit >= 6 and stats.peak_in_flight >= 7  # near the cap, without flooding it


def test_a_ceiling_far_above_the_cap_adapts_down() -> None:
    with Emulator(api_key=TEST_KEY, latency=0.02, max_in_flight=4) as emu:
        with DashScopeClient(TEST_KEY, base_url=emu.url, max_concurrency=64) as client:
            client.embed_texts(corpus(1500))
            assert client.concurrency_limit <= 5
        stats = emu.stats
    assert stats.responses_by_status.get(429, 0) < 0.15 * stats.requests


def test_fixed_concurrency_is_a_bound_not_a_start() -> None:
    with Emulator(api_key=TEST_KEY, latency=0.03) as emu:
        with DashScopeClient(
            TEST_KEY, base_url=emu.url, max_concurrency=3, adaptive_concurrency=False
        ) as client:
            client.embed_texts(corpus(300))
        assert emu.stats.peak_in_flight == 3


# --- client-side budgets -----------------------------------------------------------------------


def test_rate_window_never_lets_more_than_the_budget_through() -> None:
    window = RateWindow(5, window_s=10)
    now = 1000.0
    assert [window.wait_time(1, now=now) for _ in range(1)] == [0.0]
    for _ in range(5):
        assert window.wait_time(1, now=now) == 0.0
        window.spend(1, now=now)
    assert window.wait_time(1, now=now + 3) == pytest.approx(7.2)  # 10 s and a 2 % margin
    assert window.wait_time(1, now=now + 10.5) == 0.0


def test_rpm_budget_holds_at_the_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    paced: list[float] = []

    def pace(cancel: threading.Event | None, delay: float) -> bool:
        paced.append(delay)
        time.sleep(min(delay, 0.05))
        return False

    monkeypatch.setattr("dashscope_embeddings._transport._wait", pace)
    monkeypatch.setattr(
        "dashscope_embeddings._client_base.RateWindow",
        lambda per_minute: RateWindow(per_minute, window_s=0.32),
    )
    with Emulator(api_key=TEST_KEY, rpm=6, quota_window_s=0.3) as emu:
        with DashScopeClient(TEST_KEY, base_url=emu.url, rpm=6) as client:
            result = client.embed_texts(corpus(200))
        stats = emu.stats
    assert len(result.embeddings) == 200 and paced
    assert stats.responses_by_status.get(429, 0) == 0  # the budget kept us under the quota


# --- packing ------------------------------------------------------------------------------------


def test_packing_respects_a_per_request_token_limit(emulator: Emulator) -> None:
    spec = get_model_spec("text-embedding-v4", max_tokens_per_request=40)
    names = ["alpha", "bravo", "cat", "delta", "echo", "fox", "golf", "hotel", "india", "joy", "kilo", "lima"]
    counts = (10, 10, 10, 30, 5, 5, 5, 5, 5, 5, 5, 5)  # tokens, counted one per word below
    texts = [" ".join([name] * n) for name, n in zip(names, counts, strict=True)]
    words = lambda text: len(text.split())  # noqa: E731
    with DashScopeClient(TEST_KEY, base_url=emulator.url, token_counter=words) as client:
        result = client.embed_texts(texts, model=spec)
    sent = sorted((b["input"]["texts"] for b in sent_bodies(emulator)), key=lambda t: texts.index(t[0]))
    assert [len(t) for t in sent] == [3, 3, 6] and len(result.embeddings) == 12
    assert [list(r) for r in pack_by_tokens([1] * 25, 10, 1000)] == [
        list(range(0, 10)),
        list(range(10, 20)),
        list(range(20, 25)),
    ]


def test_v4_with_default_settings_sends_ceil_n_over_10_requests(emulator: Emulator) -> None:
    with DashScopeClient(TEST_KEY, base_url=emulator.url) as client:
        client.embed_texts(corpus(1000))
    assert len(emulator.requests) == math.ceil(1000 / 10)


# --- streaming ----------------------------------------------------------------------------------


def test_stream_yields_parts_in_order_with_exact_vectors(emulator: Emulator) -> None:
    texts = corpus(730)
    with DashScopeClient(TEST_KEY, base_url=emulator.url) as client:
        whole = client.embed_texts(texts).embeddings
        parts = list(client.embed_stream(iter(texts), part_size=100, window=3))
    assert [p.start for p in parts] == list(range(0, 730, 100))
    assert [v for p in parts for v in p.embeddings] == whole


def test_stream_reads_lazily_and_holds_a_bounded_window(emulator: Emulator) -> None:
    pulled = 0

    def source() -> typing.Iterator[str]:
        nonlocal pulled
        for i in range(10_000):
            pulled += 1
            yield f"text {i}"

    with DashScopeClient(TEST_KEY, base_url=emulator.url) as client:
        stream = client.embed_stream(source(), part_size=50, window=2)
        first = next(stream)
        assert first.start == 0 and len(first) == 50
        assert pulled <= 50 * 3  # the window, not the corpus, was read
        stream.close()
    assert pulled < 10_000


def test_stream_numpy_parts(emulator: Emulator) -> None:
    np = pytest.importorskip("numpy")
    with DashScopeClient(TEST_KEY, base_url=emulator.url) as client:
        parts = list(client.embed_stream(corpus(120), part_size=50, numpy=True, dimension=64))
    assert [p.embeddings.shape for p in parts] == [(50, 64), (50, 64), (20, 64)]
    assert all(p.embeddings.dtype == np.float32 for p in parts)


def test_stream_names_the_global_index_of_a_rejected_input(emulator: Emulator) -> None:
    texts = corpus(300)
    texts[237] += " __REJECT__"
    with DashScopeClient(TEST_KEY, base_url=emulator.url) as client:
        seen: list[int] = []
        with pytest.raises(PartialEmbeddingError, match="input 237") as info:
            for part in client.embed_stream(texts, part_size=100):
                seen.append(part.start)
        assert list(info.value.failed) == [237] and seen == [0, 100]
        skipped = list(client.embed_stream(texts, part_size=100, on_error="skip"))
    assert list(skipped[2].failed) == [237] and skipped[2].embeddings[37] is None


def test_async_stream_from_an_async_iterable(emulator: Emulator) -> None:
    async def source() -> typing.AsyncIterator[str]:
        for text in corpus(250):
            yield text

    async def go() -> list[int]:
        async with AsyncDashScopeClient(TEST_KEY, base_url=emulator.url) as client:
            return [len(p) async for p in client.aembed_stream(source(), part_size=100)]

    assert asyncio.run(go()) == [100, 100, 50]


# --- progress and logs --------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_progress_callback_counts_texts_up_to_the_total(flavour: str, emulator: Emulator) -> None:
    seen: list[tuple[int, int]] = []
    texts = corpus(95) + corpus(5)  # 5 duplicates: sent once, still counted as texts
    if flavour == "sync":
        with DashScopeClient(TEST_KEY, base_url=emulator.url) as client:
            client.embed_texts(texts, progress=lambda done, total: seen.append((done, total)))
    else:

        async def go() -> None:
            async with AsyncDashScopeClient(TEST_KEY, base_url=emulator.url) as client:
                await client.embed_texts(
                    texts, progress=lambda done, total: seen.append((done, total))
                )

        asyncio.run(go())
    assert seen[-1] == (100, 100) and len(seen) >= 5
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_progress_bar_advances_per_request(
    emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tqdm")
    with DashScopeClient(TEST_KEY, base_url=emulator.url) as client:
        client.embed_texts(corpus(60), progress=True)
    err = capsys.readouterr().err
    assert "60/60" in err and "text" in err


def test_summary_line_at_info_without_input_text(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    texts = corpus(150)
    with caplog.at_level(logging.INFO, logger="dashscope_embeddings"):
        with DashScopeClient(TEST_KEY, base_url=emulator.url) as client:
            client.embed_texts(texts)
            client.embed_texts(texts[:3])  # a small call: no summary
    summaries = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(summaries) == 1 and "150 texts" in summaries[0] and "15 requests" in summaries[0]
    assert not any(t in summaries[0] for t in texts)


def test_a_shared_budget_object_replaces_the_local_window(emulator: Emulator) -> None:
    class Shared:
        """What a fleet-wide budget (e.g. a Ray actor) looks like to the client."""

        def __init__(self) -> None:
            self.spent = 0
            self.asked = 0

        def wait_time(self, units: int = 1) -> float:
            self.asked += 1
            return 0.0

        def spend(self, units: int = 1) -> None:
            self.spent += units

    requests, tokens = Shared(), Shared()
    with DashScopeClient(
        TEST_KEY, base_url=emulator.url, rpm_budget=requests, tpm_budget=tokens
    ) as client:
        result = client.embed_texts(corpus(95))
    assert requests.spent == 10 == len(emulator.requests)
    assert tokens.spent > 0 and tokens.spent >= result.usage.total_tokens // 2
