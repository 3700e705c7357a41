"""Retry policy as pure functions and one budget per call.

What is retried (README's table says the same):

==============================================================  ==========================
answer                                                          retried?
==============================================================  ==========================
408, 409, 429 (not an exhausted free quota), 5xx, or a 200      yes, with backoff
carrying a throttling / server code                             (``x-should-retry`` wins)
connection refused or reset, no whole answer within ``timeout``  yes
200 with a cut or non-JSON body, a bad index, size or NaN        yes (transient)
400 for several inputs                                          no: split (``_fanout``)
400 for one input, 401, 403, 404, a redirect                    never
==============================================================  ==========================

Waits grow as ``min(0.5 * 2**attempt, 8)`` seconds less up to 25 % jitter (from 0.2 s for a
429 without ``Retry-After``: the concurrency limit has already stepped back); a
``retry-after-ms`` / ``retry-after`` header is honoured up to :data:`MAX_RETRY_AFTER_S`, beyond
which the error is raised at once (an indexing job should not stall silently). Retries of one
call draw on a :class:`RetryBudget`.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
import typing

from dashscope_embeddings._config import is_loopback
from dashscope_embeddings._constants import (
    INITIAL_RETRY_DELAY_S,
    MAX_RETRY_AFTER_S,
    MAX_RETRY_DELAY_S,
)
from dashscope_embeddings._errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    QuotaExhaustedError,
    RateLimitError,
    ResponseValidationError,
    ServerError,
)

__all__ = [
    "LOOPBACK_REFUSED_RETRIES",
    "MAX_ATTEMPTS_PER_REQUEST",
    "RETRY_STATUSES",
    "RetryBudget",
    "is_loopback",
    "maybe_acted",
    "parse_retry_after",
    "retry_delay",
    "should_retry",
]

# One request is never tried more than this many times, whatever the call's budget.
MAX_ATTEMPTS_PER_REQUEST = 10

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})

# Connection refused by this machine is no network blip: give up after this many retries.
LOOPBACK_REFUSED_RETRIES = 2


def maybe_acted(error: APIError) -> bool:
    """Whether the service may have acted on a request that failed with ``error``.

    ``False`` for an error answer that is final or throttling, and for a connection that
    failed before anything was sent; ``True`` for a lost, late, cut or 5xx answer, after which
    a non-idempotent request (an upload, creating a batch) must be looked for before it is
    sent again.
    """
    if isinstance(error, APIConnectionError):
        return not getattr(error, "_nothing_sent", False)
    if isinstance(error, APIStatusError):
        return isinstance(error, ServerError) or error.status_code >= 500
    return isinstance(error, ResponseValidationError)


def parse_retry_after(
    headers: typing.Mapping[str, str], *, now: float | None = None
) -> float | None:
    """Seconds the server asks us to wait, from ``retry-after-ms`` or ``retry-after``.

    ``retry-after`` may be seconds or an HTTP date. Returns ``None`` when absent, unparsable or
    negative. Header names are matched case-insensitively.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms is not None:
        try:
            ms = float(raw_ms)
        except ValueError:
            ms = -1.0
        if ms >= 0:
            return ms / 1000.0
    raw = lowered.get("retry-after")
    if raw is None or not raw.strip():
        return None
    try:
        seconds = float(raw)
    except ValueError:
        parsed = email.utils.parsedate_tz(raw)
        if parsed is None:
            return None
        seconds = float(email.utils.mktime_tz(parsed)) - (time.time() if now is None else now)
    return seconds if seconds >= 0 else None


def should_retry(error: APIStatusError, headers: typing.Mapping[str, str]) -> bool:
    """Whether an error answer is worth sending again."""
    if isinstance(error, QuotaExhaustedError):
        return False
    override = {k.lower(): v for k, v in headers.items()}.get("x-should-retry")
    if override is not None and override.strip().lower() in ("true", "false"):
        return override.strip().lower() == "true"
    # By class too, for an error reported under HTTP 200 with a throttling or server code.
    return (
        error.status_code in RETRY_STATUSES
        or error.status_code >= 500
        or isinstance(error, (RateLimitError, ServerError))
    )


def retry_delay(
    attempt: int,
    retry_after: float | None = None,
    *,
    rng: typing.Callable[[], float] = random.random,
    max_retry_after: float = MAX_RETRY_AFTER_S,
    initial: float = INITIAL_RETRY_DELAY_S,
) -> float | None:
    """Seconds to wait before retry number ``attempt`` (0-based), or ``None`` to give up.

    A server-given ``retry_after`` wins when it is within ``max_retry_after``; a longer one
    means "do not retry". Otherwise exponential backoff from ``initial`` with up to 25 %
    jitter.
    """
    if retry_after is not None:
        return retry_after if retry_after <= max_retry_after else None
    delay = min(initial * 2.0**attempt, MAX_RETRY_DELAY_S)
    return delay * (1.0 - 0.25 * rng())


class RetryBudget:
    """Retries a call may still spend: ``initial``, plus one per successful request."""

    def __init__(self, initial: int) -> None:
        self._tokens = initial
        self.disabled = initial <= 0
        """No retries at all (``max_retries=0``), not even on throttling."""
        self._lock = threading.Lock()
        self.spent = 0
        """Retries taken so far."""
        self.warned = False
        """A transport failure of this call was already logged as a WARNING."""

    def take(self) -> bool:
        """Spend one retry if any is left."""
        with self._lock:
            if self._tokens <= 0:
                return False
            self._tokens -= 1
            self.spent += 1
            return True

    def earn(self) -> None:
        """A request succeeded: one more retry for the rest of the call."""
        if self.disabled:
            return
        with self._lock:
            self._tokens += 1
