from __future__ import annotations

import email.utils

import pytest

from dashscope_embeddings._errors import make_status_error
from dashscope_embeddings._retry import parse_retry_after, retry_delay, should_retry


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": "3"}, 3.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "junk", "retry-after": "2"}, 2.0),
        ({"retry-after": ""}, None),
        ({"retry-after": "-1"}, None),
        ({"retry-after": "soon"}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers) == expected


def test_parse_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    header = email.utils.formatdate(now + 10, usegmt=True)
    assert parse_retry_after({"retry-after": header}, now=now) == pytest.approx(10, abs=1)


@pytest.mark.parametrize(
    ("status", "code", "message", "retry"),
    [
        (429, "Throttling.RateQuota", "Requests rate limit exceeded", True),
        (429, "Throttling.AllocationQuota", "Free allocated quota exceeded.", False),
        (500, "InternalError", "oops", True),
        (502, None, "", True),
        (503, "ServiceUnavailable", "", True),
        (504, "GatewayTimeout", "", True),
        (408, None, "", True),
        (400, "InvalidParameter", "bad", False),
        (401, "InvalidApiKey", "bad key", False),
        (403, "AccessDenied", "", False),
        (404, "ModelNotFound", "", False),
        (200, "Throttling.RateQuota", "reported under 200", True),
        (200, "InternalError", "reported under 200", True),
        (200, "InvalidParameter", "reported under 200", False),
    ],
)
def test_should_retry(status: int, code: str | None, message: str, retry: bool) -> None:
    error = make_status_error(status, code=code, message=message, request_id=None)
    assert should_retry(error, {}) is retry


def test_x_should_retry_overrides() -> None:
    error = make_status_error(400, code="InvalidParameter", message="", request_id=None)
    assert should_retry(error, {"x-should-retry": "true"})
    error = make_status_error(500, code="InternalError", message="", request_id=None)
    assert not should_retry(error, {"X-Should-Retry": "false"})


def test_backoff_grows_is_capped_and_jittered() -> None:
    assert retry_delay(0, rng=lambda: 0.0) == 0.5
    assert retry_delay(1, rng=lambda: 0.0) == 1.0
    assert retry_delay(10, rng=lambda: 0.0) == 8.0
    assert retry_delay(0, rng=lambda: 1.0) == pytest.approx(0.375)


def test_server_retry_after_wins_until_the_cap() -> None:
    assert retry_delay(3, 2.0) == 2.0
    assert retry_delay(0, 0.0) == 0.0
    assert retry_delay(0, 61.0, max_retry_after=60.0) is None
