"""Errors raised by the client.

The tree::

    DashScopeError
    ├── ConfigurationError (also a ValueError)  the client cannot be set up: key, region, URL,
    │                                            an option out of range
    ├── ClientClosedError (also a RuntimeError) a call on a client after close() / aclose()
    ├── InvalidInputError (also a ValueError)   input judged bad before any request is sent
    ├── PartialEmbeddingError                    some inputs were rejected; the others' vectors
    │                                            are on the error (.embeddings, .failed, .usage)
    ├── APIError                                 anything that went wrong talking to the service
    │   ├── APIStatusError                       the service answered with an error
    │   │   ├── BadRequestError (400)
    │   │   │   └── ContentRejectedError         DataInspectionFailed: content moderation
    │   │   ├── AuthenticationError (401)
    │   │   ├── PermissionDeniedError (403)      also Arrearage (account overdue)
    │   │   ├── NotFoundError (404)
    │   │   ├── RateLimitError (429)
    │   │   │   └── QuotaExhaustedError          free quota used up: waiting will not help
    │   │   └── ServerError (5xx)
    │   ├── APIConnectionError                   no answer: connection refused, reset, ...
    │   │   └── APITimeoutError                  no answer in time
    │   └── ResponseValidationError              an answer that is not a whole, valid result
    │                                            (retried: a cut or garbled body is transient)
    └── (batch jobs, ``dashscope_embeddings.batch``)
        ├── BatchStateError (also a ValueError)  a job's state file is missing or damaged
        ├── IncompleteBatchError                 inputs without a vector: failed or pending
        └── WaitTimeoutError (also a TimeoutError) ``wait(timeout=)`` ran out; the job goes on

Every :class:`APIStatusError` carries ``status_code``, the DashScope ``code`` (branch on it, not
on ``message``), ``message`` and ``request_id`` (quote it in support tickets). None of them ever
holds the API key. An :class:`APIError` that stopped a call after some requests had succeeded
carries what they returned in ``partial`` (a ``PartialResult``): work already paid for is
never thrown away.
"""

from __future__ import annotations

import typing

if typing.TYPE_CHECKING:
    from dashscope_embeddings._types import FailedInput, PartialResult

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "ConfigurationError",
    "ContentRejectedError",
    "DashScopeError",
    "InvalidInputError",
    "NotFoundError",
    "PartialEmbeddingError",
    "PermissionDeniedError",
    "QuotaExhaustedError",
    "RateLimitError",
    "ResponseValidationError",
    "ServerError",
    "make_status_error",
    "parse_error",
    "snippet",
]


class DashScopeError(Exception):
    """Base class of every error this package raises."""


class ConfigurationError(DashScopeError, ValueError):
    """The client cannot be set up: no key, an unknown region or option, a value out of range.

    Raised at construction, before anything is sent; the message names the option.
    """


class ClientClosedError(DashScopeError, RuntimeError):
    """A call on a client that was closed with ``close()`` / ``aclose()``.

    A closed client stays closed; create a new one. (The framework adapters do this for you:
    their ``close()`` only releases connections, which reopen on the next call.)
    """


class InvalidInputError(DashScopeError, ValueError):
    """An input the client can judge bad by itself; raised before any request is sent.

    ``index`` is the position of the offending input in what the caller passed, or ``None``
    when the problem is an option rather than one input.
    """

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class PartialEmbeddingError(DashScopeError):
    """Some inputs of a call were rejected by the service; every other input was embedded.

    ``failed`` maps each failed input's caller index to its :class:`FailedInput` (code,
    message, request id); ``embeddings`` holds the good vectors in input order with ``None``
    only where an input failed; ``usage`` is what the call was billed. Pass
    ``on_error="skip"`` to get the same :class:`PartialResult` returned instead of raised.
    """

    def __init__(self, result: PartialResult) -> None:
        self.result = result
        failed = sorted(result.failed.values(), key=lambda f: f.index)
        shown = "; ".join(str(f) for f in failed[:5])
        more = f"; and {len(failed) - 5} more" if len(failed) > 5 else ""
        total = len(result)
        super().__init__(
            f"{len(failed):,} of {total:,} inputs failed, the other {total - len(failed):,} "
            f"were embedded (see .embeddings / .failed): {shown}{more}"
        )

    @property
    def failed(self) -> dict[int, FailedInput]:
        """Caller index -> why that input has no vector."""
        return self.result.failed

    @property
    def embeddings(self) -> list[list[float] | None]:
        """Dense vectors per input, ``None`` where that input failed."""
        return self.result.embeddings

    @property
    def usage(self) -> typing.Any:
        """Tokens and estimated cost of everything the call was billed for."""
        return self.result.usage


class APIError(DashScopeError):
    """Something went wrong talking to the service."""

    message: str
    request_id: str | None

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id
        self.partial: PartialResult | None = None
        """What the call's finished requests returned, when the call stopped on this error."""


class APIStatusError(APIError):
    """The service answered with an error (HTTP >= 400, or HTTP 200 with an error ``code``)."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str | None,
        request_id: str | None = None,
        body: typing.Any = None,
        retry_after: float | None = None,
        headers: typing.Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, request_id=request_id)
        self.status_code = status_code
        self.code = code
        self.body = body
        self.retry_after = retry_after
        self.headers: typing.Mapping[str, str] = headers if headers is not None else {}
        """The answer's headers (never the request's, which hold the key)."""

    def __str__(self) -> str:
        parts = [f"HTTP {self.status_code}"]
        if self.code:
            parts.append(self.code)
        text = f"{' '.join(parts)}: {self.message}"
        if self.request_id:
            text += f" (request_id={self.request_id})"
        return text


class BadRequestError(APIStatusError):
    """400: a bad or missing parameter, too many inputs, text too long, bad dimension."""


class ContentRejectedError(BadRequestError):
    """400 ``DataInspectionFailed``: the input was rejected by content moderation."""


class AuthenticationError(APIStatusError):
    """401: wrong API key, or a key used against another region's host."""


class PermissionDeniedError(APIStatusError):
    """403 (or ``Arrearage``): the model is not activated for this account, or it is overdue."""


class NotFoundError(APIStatusError):
    """404: no such model, or not in this region."""


class RateLimitError(APIStatusError):
    """429: too many requests or tokens; retried with backoff until retries run out."""


class QuotaExhaustedError(RateLimitError):
    """429 "Free allocated quota exceeded.": paid access is off; retrying will not help."""


class ServerError(APIStatusError):
    """5xx: a server-side failure; retried with backoff until retries run out."""


class APIConnectionError(APIError):
    """No answer: the connection failed or was cut."""


class APITimeoutError(APIConnectionError, TimeoutError):
    """No answer in time: the attempt's deadline (``timeout``) passed, reading included."""


class ResponseValidationError(APIError):
    """The service answered 200 but the body is not a whole, valid result for the request.

    A cut, garbled or non-JSON body, a missing or repeated index, a vector of the wrong size or
    with NaN / Infinity: each is treated as transient and retried like a 5xx; this error is
    raised once retries are spent. ``status_code`` and ``content_type`` describe the answer.
    """

    def __init__(
        self,
        message: str,
        *,
        request_id: str | None = None,
        status_code: int | None = None,
        content_type: str | None = None,
    ) -> None:
        super().__init__(message, request_id=request_id)
        self.status_code = status_code
        self.content_type = content_type


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
}

# Codes in either spelling: native (``InvalidApiKey``) and OpenAI-compatible (``invalid_api_key``).
_BY_CODE: dict[str, type[APIStatusError]] = {
    "invalidparameter": BadRequestError,
    "datainspectionfailed": ContentRejectedError,
    "data_inspection_failed": ContentRejectedError,
    "invalidapikey": AuthenticationError,
    "invalid_api_key": AuthenticationError,
    "accessdenied": PermissionDeniedError,
    "access_denied": PermissionDeniedError,
    "arrearage": PermissionDeniedError,
    "modelnotfound": NotFoundError,
    "model.notexist": NotFoundError,
    "model_not_found": NotFoundError,
    "throttling": RateLimitError,
    "insufficient_quota": RateLimitError,
    "limit_requests": RateLimitError,
    "rate_limit_exceeded": RateLimitError,
    "internalerror": ServerError,
    "internal_error": ServerError,
    "serviceunavailable": ServerError,
    "gatewaytimeout": ServerError,
    "requesttimeout": ServerError,
}

FREE_QUOTA_MESSAGE = "free allocated quota exceeded"

# Codes that name their class whatever the status: Arrearage's status is unconfirmed (believed
# 400; no page gives it) and the official SDK treats it as permission denied.
_CODE_WINS = frozenset({"arrearage", "datainspectionfailed", "data_inspection_failed"})


def _class_for(status_code: int, code: str | None, message: str) -> type[APIStatusError]:
    if FREE_QUOTA_MESSAGE in message.lower():
        return QuotaExhaustedError
    lowered = (code or "").lower()
    if lowered in _CODE_WINS:
        return _BY_CODE[lowered]
    if lowered:
        # Exact code first, then its family: ``Throttling.RateQuota``, ``AccessDenied.Unpurchased``.
        by_code = _BY_CODE.get(lowered) or _BY_CODE.get(lowered.split(".", 1)[0])
        # A 200 carrying a code, or a status we do not know, is classified by the code. For a
        # 4xx/5xx the status wins over a code in an unexpected family (the message of a real
        # 400 begins "InternalError.Algo.InvalidParameter"), except the subclasses of that
        # status class (ContentRejectedError under 400).
        if by_code is not None:
            by_status = _BY_STATUS.get(status_code)
            if by_status is None and status_code < 500:
                return by_code
            if by_status is not None and issubclass(by_code, by_status):
                return by_code
    if status_code in _BY_STATUS:
        return _BY_STATUS[status_code]
    if status_code >= 500:
        return ServerError
    return APIStatusError


def make_status_error(
    status_code: int,
    *,
    code: str | None,
    message: str,
    request_id: str | None,
    body: typing.Any = None,
    retry_after: float | None = None,
    headers: typing.Mapping[str, str] | None = None,
) -> APIStatusError:
    """Build the right :class:`APIStatusError` subclass for a status and DashScope ``code``."""
    cls = _class_for(status_code, code, message)
    return cls(
        message or "(no message)",
        status_code=status_code,
        code=code,
        request_id=request_id,
        body=body,
        retry_after=retry_after,
        headers=headers,
    )


_SNIPPET_BYTES = 200


def parse_error(
    status_code: int,
    payload: object,
    *,
    text: str,
    header_request_id: str | None,
    retry_after: float | None,
    headers: typing.Mapping[str, str] | None = None,
) -> APIStatusError:
    """The typed error of an error answer, in either protocol's body shape.

    Native: ``{"request_id", "code", "message"}``; OpenAI-compatible:
    ``{"error": {"message", "type", "param", "code"}, "id", "request_id"}``.
    """
    code: str | None = None
    message = ""
    request_id = header_request_id
    if isinstance(payload, dict):
        request_id = payload.get("request_id") or payload.get("id") or request_id
        error = payload.get("error")
        if isinstance(error, dict):  # OpenAI-compatible shape
            code = error.get("code") or error.get("type")
            message = str(error.get("message") or "")
        else:
            code = payload.get("code")
            message = str(payload.get("message") or payload.get("msg") or "")
    else:
        kind = (headers or {}).get("content-type") or "no content type"
        raw = text.encode()
        message = f"answer is not JSON ({kind}, {len(raw)} bytes): {snippet(raw)!r}"
    return make_status_error(
        status_code,
        code=str(code) if code else None,
        message=message,
        request_id=str(request_id) if request_id else None,
        body=payload if payload is not None else text[:2000],
        retry_after=retry_after,
        headers=headers,
    )


def snippet(content: bytes) -> str:
    """The start of a body, whitespace folded, for an error message."""
    text = content[:_SNIPPET_BYTES].decode("utf-8", "replace")
    return " ".join(text.split()) + ("..." if len(content) > _SNIPPET_BYTES else "")
