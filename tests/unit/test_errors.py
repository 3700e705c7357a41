from __future__ import annotations

import dataclasses

import pytest

from dashscope_embeddings import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ContentRejectedError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExhaustedError,
    RateLimitError,
    ServerError,
)
from dashscope_embeddings._errors import make_status_error, parse_error


@pytest.mark.parametrize(
    ("status", "code", "message", "cls"),
    [
        (400, "InvalidParameter", "batch size is invalid", BadRequestError),
        (400, "DataInspectionFailed", "inappropriate content", ContentRejectedError),
        (400, "data_inspection_failed", "", ContentRejectedError),
        (
            400,
            "Arrearage",
            "Access denied, please make sure your account is in good standing.",
            PermissionDeniedError,
        ),
        (401, "InvalidApiKey", "Invalid API-key provided.", AuthenticationError),
        (401, "invalid_api_key", "", AuthenticationError),
        (403, "AccessDenied.Unpurchased", "", PermissionDeniedError),
        (404, "ModelNotFound", "", NotFoundError),
        (404, "Model.NotExist", "", NotFoundError),
        (429, "Throttling.RateQuota", "", RateLimitError),
        (429, "insufficient_quota", "", RateLimitError),
        (429, "Throttling.AllocationQuota", "Free allocated quota exceeded.", QuotaExhaustedError),
        (500, "InternalError.Algo", "", ServerError),
        (503, "ServiceUnavailable", "", ServerError),
        (200, "InvalidParameter", "failure reported under 200", BadRequestError),
        (200, "Throttling", "", RateLimitError),
        (418, None, "teapot", APIStatusError),
    ],
)
def test_status_and_code_map_to_class(
    status: int, code: str | None, message: str, cls: type
) -> None:
    error = make_status_error(status, code=code, message=message, request_id="rid-1")
    assert type(error) is cls
    assert error.status_code == status and error.code == code and error.request_id == "rid-1"


def test_status_wins_over_a_misleading_code_family() -> None:
    # A real 400 whose code text starts with "InternalError" (dashscope-api.md §5.2).
    error = make_status_error(
        400, code="InternalError.Algo.InvalidParameter", message="", request_id=None
    )
    assert type(error) is BadRequestError


def test_parse_native_and_compatible_error_bodies() -> None:
    native = parse_error(
        400,
        {"request_id": "r1", "code": "InvalidParameter", "message": "too long"},
        text="",
        header_request_id=None,
        retry_after=None,
    )
    assert isinstance(native, BadRequestError) and native.request_id == "r1"
    assert "too long" in str(native) and "r1" in str(native) and "HTTP 400" in str(native)
    compat = parse_error(
        400,
        {
            "error": {
                "message": "<400> InternalError.Algo.InvalidParameter: batch",
                "type": "InvalidParameter",
                "param": None,
                "code": "InvalidParameter",
            },
            "id": "e1",
            "request_id": "e1",
        },
        text="",
        header_request_id=None,
        retry_after=None,
    )
    assert isinstance(compat, BadRequestError) and compat.code == "InvalidParameter"
    raw = parse_error(
        502, None, text="<html>bad gateway</html>", header_request_id="h1", retry_after=2.0
    )
    assert isinstance(raw, ServerError) and raw.request_id == "h1" and raw.retry_after == 2.0
    assert "bad gateway" in raw.message


def test_every_error_the_batch_job_raises_is_in_the_one_tree() -> None:
    from dashscope_embeddings import DashScopeError
    from dashscope_embeddings.batch import (
        BatchStateError,
        IncompleteBatchError,
        JobStatus,
        WaitTimeoutError,
    )

    for cls in (BatchStateError, IncompleteBatchError, WaitTimeoutError):
        assert issubclass(cls, DashScopeError), cls
    timed_out = WaitTimeoutError("not finished after 5 s", JobStatus(()))
    assert isinstance(timed_out, TimeoutError)  # what it always was
    assert timed_out.status == JobStatus(())


def test_a_batch_failure_is_a_failed_input_with_its_id() -> None:
    from dashscope_embeddings import FailedInput
    from dashscope_embeddings.batch import BatchFailure

    failure = BatchFailure(
        index=3, id="doc-3", code="InternalError", message="boom", custom_id="t0-3-3"
    )
    assert isinstance(failure, FailedInput)
    assert str(failure) == "input 3 (id 'doc-3'): InternalError: boom"
    assert [f.name for f in dataclasses.fields(FailedInput)] == [
        f.name for f in dataclasses.fields(BatchFailure)
    ][: len(dataclasses.fields(FailedInput))]
