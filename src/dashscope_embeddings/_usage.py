"""Token usage and estimated cost, per call and as a thread-safe running total."""

from __future__ import annotations

import threading

from dashscope_embeddings._registry import ModelSpec
from dashscope_embeddings._types import Usage

__all__ = ["UsageTracker", "usage_for"]

# The mainland host bills in CNY; the international and Hong Kong hosts list USD prices.
_USD_REGIONS = frozenset({"ap-southeast-1", "cn-hongkong"})


def usage_for(
    spec: ModelSpec, tokens: int, requests: int, region: str, *, batch: bool = False
) -> Usage:
    """Usage of ``tokens`` on ``spec`` with its estimated list price in ``region``.

    ``batch=True`` prices at the Batch API rate (half price where the registry lists it).
    """
    cost: float | None = None
    currency: str | None = None
    if region in _USD_REGIONS:
        if spec.price_usd_per_1m is not None and not batch:
            cost, currency = tokens * spec.price_usd_per_1m / 1_000_000, "USD"
    else:
        price = spec.batch_price_cny_per_1k if batch else spec.price_cny_per_1k
        if price is not None:
            cost, currency = tokens * price / 1000, "CNY"
    return Usage(total_tokens=tokens, requests=requests, cost=cost, currency=currency)


class UsageTracker:
    """A running total of :class:`Usage`, safe to add to from many threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = Usage()

    @property
    def total(self) -> Usage:
        """Everything added so far."""
        with self._lock:
            return self._total

    def add(self, usage: Usage) -> None:
        """Add one request's (or call's) usage."""
        with self._lock:
            self._total = self._total + usage

    def reset(self) -> None:
        """Start counting from zero again."""
        with self._lock:
            self._total = Usage()
