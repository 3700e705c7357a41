"""The service's error answers, in the shapes of both protocols ([ref 5]).

:class:`ServiceError` is what the emulator *answers* (an HTTP status and a JSON error body),
not an exception of the client package (those are :mod:`dashscope_embeddings._errors`). The
functions below build the errors several endpoint families share, with the codes and
messages of [ref 5.3].
"""

from __future__ import annotations

from typing import Any, Literal

__all__ = [
    "Json",
    "Protocol",
    "ServiceError",
    "algo_invalid",
    "allocation_quota",
    "bad_request",
    "data_inspection_failed",
    "internal_error",
    "invalid_api_key",
    "model_not_found",
    "request_too_large",
    "throttled",
]

Protocol = Literal["native", "compatible"]
"""The shape of a body: native DashScope, or OpenAI-compatible."""
Json = dict[str, Any]


class ServiceError(Exception):
    """An error answer, renderable in either protocol's shape."""

    def __init__(
        self,
        status: int,
        code: str | None,
        message: str,
        *,
        compat_code: str | None = None,
        compat_message: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.compat_code = compat_code if compat_code is not None else code
        self.compat_message = compat_message if compat_message is not None else message
        self.headers = headers or {}

    def body(self, protocol: Protocol, request_id: str) -> Json:
        """The JSON error body of ``protocol`` ([ref 5.1] native, [ref 5.2] compatible)."""
        if protocol == "native":
            body: Json = {"request_id": request_id}
            if self.code is not None:
                body["code"] = self.code
            body["message"] = self.message
            return body
        error = {
            "message": self.compat_message,
            "type": self.compat_code,  # [ref 5.2]: the observed body repeats the code as the type
            "param": None,
            "code": self.compat_code,
        }
        return {"error": error, "id": request_id, "request_id": request_id}


def bad_request(message: str) -> ServiceError:
    """A malformed request (not an algorithm-side parameter check)."""
    return ServiceError(400, "InvalidParameter", message)


def algo_invalid(message: str, param: str = "input.contents") -> ServiceError:
    """A parameter rejected by the model service; compatible wording per [ref 5.2]."""
    compat = f"<400> InternalError.Algo.InvalidParameter: Value error, {message}: {param}"
    return ServiceError(400, "InvalidParameter", message, compat_message=compat)


def model_not_found(model: str) -> ServiceError:
    # [ref 5.3]: native ModelNotFound; compatible model_not_found is [UNCONFIRMED], taken as is.
    return ServiceError(
        404,
        "ModelNotFound",
        "Model not exist.",
        compat_code="model_not_found",
        compat_message=f"The model `{model}` does not exist or you do not have access to it.",
    )


def invalid_api_key() -> ServiceError:
    return ServiceError(
        401,
        "InvalidApiKey",
        "Invalid API-key provided.",
        compat_code="invalid_api_key",
        compat_message="Incorrect API key provided.",
    )


def throttled() -> ServiceError:
    # [ref 5.3]: the compatible code of Throttling.RateQuota is [UNCONFIRMED]; "limit_requests".
    return ServiceError(
        429,
        "Throttling.RateQuota",
        "Requests rate limit exceeded, please try again later.",
        compat_code="limit_requests",
    )


def internal_error() -> ServiceError:
    # [ref 5.3]: the compatible code "internal_error" is [UNCONFIRMED].
    return ServiceError(
        500,
        "InternalError",
        "An internal error has occured, please try again later or contact service support.",
        compat_code="internal_error",
    )


def allocation_quota() -> ServiceError:
    # [ref 5.3]: TPM / quota exceeded; compatible code "insufficient_quota". The message is not the
    # non-retryable "Free allocated quota exceeded." variant.
    return ServiceError(
        429,
        "Throttling.AllocationQuota",
        "Allocated quota exceeded, please increase your quota limit.",
        compat_code="insufficient_quota",
    )


def data_inspection_failed() -> ServiceError:
    # [ref 5.3]: native DataInspectionFailed; compatible data_inspection_failed is [UNCONFIRMED].
    return ServiceError(
        400,
        "DataInspectionFailed",
        "Input data may contain inappropriate content.",
        compat_code="data_inspection_failed",
    )


def request_too_large(limit: int) -> ServiceError:
    """A body over the emulator's bound, answered before it is read.

    [ref 10]: the service documents no request size limit nor a 413 body; the emulator's code
    and message are its own choice, in each protocol's error shape.
    """
    return ServiceError(
        413,
        "RequestTooLarge",
        f"The request body is larger than the limit of {limit} bytes.",
        compat_code="request_too_large",
    )
