from __future__ import annotations

import threading

import pytest

from dashscope_embeddings import Usage, get_model_spec
from dashscope_embeddings._usage import UsageTracker, usage_for

V4 = get_model_spec("text-embedding-v4")


@pytest.mark.parametrize(
    ("region", "batch", "cost", "currency"),
    [
        ("cn-beijing", False, 2000 * 0.0005 / 1000, "CNY"),
        ("cn-beijing", True, 2000 * 0.00025 / 1000, "CNY"),
        ("ap-southeast-1", False, 2000 * 0.07 / 1_000_000, "USD"),
        ("cn-hongkong", False, 2000 * 0.07 / 1_000_000, "USD"),
        ("ap-southeast-1", True, None, None),  # no international batch price listed
    ],
)
def test_price_by_region(
    region: str, batch: bool, cost: float | None, currency: str | None
) -> None:
    usage = usage_for(V4, 2000, 1, region, batch=batch)
    assert usage.total_tokens == 2000 and usage.currency == currency
    assert usage.cost == (pytest.approx(cost) if cost is not None else None)


def test_unknown_model_has_no_price() -> None:
    usage = usage_for(get_model_spec("mystery"), 100, 1, "cn-beijing")
    assert usage.cost is None and usage.total_tokens == 100


def test_usage_addition() -> None:
    a = Usage(total_tokens=10, requests=1, cost=0.5, currency="CNY")
    b = Usage(total_tokens=5, requests=2, cost=0.25, currency="CNY")
    assert a + b == Usage(total_tokens=15, requests=3, cost=0.75, currency="CNY")
    assert Usage() + a == a and a + Usage() == a
    mixed = a + Usage(total_tokens=1, requests=1, cost=1.0, currency="USD")
    assert mixed.cost is None and mixed.total_tokens == 11
    assert (a + Usage(total_tokens=1, requests=1)).cost is None  # one side unpriced


def test_tracker_is_thread_safe() -> None:
    tracker = UsageTracker()
    one = Usage(total_tokens=1, requests=1, cost=0.001, currency="CNY")

    def add() -> None:
        for _ in range(1000):
            tracker.add(one)

    threads = [threading.Thread(target=add) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tracker.total.total_tokens == 8000 and tracker.total.requests == 8000
    tracker.reset()
    assert tracker.total == Usage()


def test_repr_and_str_round_the_cost() -> None:
    usage = Usage(total_tokens=316, requests=2, cost=0.0000158 * 3 / 3, currency="CNY")
    noisy = Usage(total_tokens=316, requests=2, cost=1.5799999999999998e-05, currency="CNY")
    assert "e-05" in repr(1.5799999999999998e-05) and repr(noisy.cost) != "1.58e-05"
    for text in (repr(noisy), str(noisy)):
        assert text == "Usage(total_tokens=316, requests=2, cost=1.58e-05, currency='CNY')"
    assert repr(usage) == repr(noisy)
    assert noisy.cost == 1.5799999999999998e-05  # the value itself is untouched
    assert repr(Usage()) == "Usage(total_tokens=0, requests=0, cost=None, currency=None)"
