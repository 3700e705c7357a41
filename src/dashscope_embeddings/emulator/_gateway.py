"""The gateway every embedding request passes: body bound, faults, keys, admission, quotas.

Order for the text endpoints (and any family that calls :func:`admit`):

0. the router reads the body through :func:`read_body`: a body over ``max_body_bytes`` gets
   413 before it is read (``content-length`` is checked first; a chunked body stops being read
   past the bound), so before any authentication;
1. :func:`admit`: queued fault (FIFO; an ``inject`` status fault, or a scripted ``reset`` /
   ``html`` fault, answers here) -> random reset (``reset_rate``) -> authentication ->
   in-flight limit (429 ``Throttling.RateQuota``) -> requests-per-minute quota (429
   ``Throttling.RateQuota``) -> latency -> random ``InternalError``;
2. the family: body validation -> content inspection (:func:`inspect_texts`, 400
   ``DataInspectionFailed``) -> :meth:`Admission.charge` (tokens-per-minute quota, 429
   ``Throttling.AllocationQuota``; billing);
3. :meth:`Admission.respond`: the queued answer-level fault, if any, is applied
   (``truncated``, ``slow_body``, ``duplicate_index``, ``missing_index``,
   ``wrong_dimension``, ``nan``), then the whole-emulator ``slow_body_ms`` trickle.

Reusing the gateway from an endpoint family::

    admission = await admit(state, request, "native", authorized=my_key_check)
    async with admission:                    # holds an in-flight slot until exit
        if admission.response is not None:  # fault, auth failure, throttling, random error
            return admission.response
        try:
            ...validate, inspect_texts(state, texts)...
            admission.charge(tokens)         # TPM quota (may raise ServiceError) and billing
            return admission.respond(200, payload)
        except ServiceError as error:
            return admission.error(error)

:func:`admit` never raises. The answer-level data faults find the embeddings in
``output.embeddings`` (native, multimodal; index key ``text_index`` or ``index``) or ``data``
(compatible).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from dashscope_embeddings.emulator._errors import (
    Protocol,
    ServiceError,
    allocation_quota,
    data_inspection_failed,
    internal_error,
    invalid_api_key,
    throttled,
)
from dashscope_embeddings.emulator._faults import (
    DATA_FAULTS,
    GATEWAY_FAULTS,
    ScriptedFault,
    apply_data_fault,
    html_page,
)
from dashscope_embeddings.emulator._responses import (
    EmulatorResponse,
    finish_response,
    render_json,
    reset_response,
)
from dashscope_embeddings.emulator._state import ServerState

__all__ = [
    "Admission",
    "BodyTooLarge",
    "admit",
    "bearer_key_accepted",
    "inspect_texts",
    "quota_error",
    "read_body",
]


class BodyTooLarge(Exception):
    """A request body over the bound; nothing more of it is read."""


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, read only while it stays within ``limit`` bytes.

    A ``content-length`` over the bound is refused before a byte is read; a body without one
    (chunked) is read piece by piece and refused as soon as it passes the bound.

    Raises:
        BodyTooLarge: If the body is, or announces to be, over ``limit`` bytes.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise BodyTooLarge
    pieces: list[bytes] = []
    size = 0
    async for piece in request.stream():
        size += len(piece)
        if size > limit:
            raise BodyTooLarge
        pieces.append(piece)
    return b"".join(pieces)


def bearer_key_accepted(request: Request, api_key: str | None) -> bool:
    """Whether ``Authorization: Bearer <key>`` carries an accepted key (any, when ``None``).

    Only that header ([ref 0.2]); X-DashScope-ApiKey is documented for the multimodal endpoint
    only, which checks it itself.
    """
    scheme, _, key = request.headers.get("authorization", "").strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        return False
    return api_key is None or key == api_key


def inspect_texts(state: ServerState, texts: list[str]) -> None:
    """Content inspection: reject the whole request when one text holds the marker word.

    The service rejects a whole request for one inappropriate input ([ref 5.3]
    ``DataInspectionFailed``); the emulator's stand-in for inappropriate content is the
    ``reject_marker`` substring (case-sensitive; ``None`` or empty disables the check).

    Args:
        state: The emulator's shared state.
        texts: Every text of the request.

    Raises:
        ServiceError: HTTP 400 ``DataInspectionFailed`` (compatible ``data_inspection_failed``).
    """
    marker = state.reject_marker
    if marker and any(marker in text for text in texts):
        raise data_inspection_failed()


def quota_error(state: ServerState, error: ServiceError, wait: float) -> ServiceError:
    """``error`` with retry-after headers when the emulator is set to send them."""
    # [ref 6]: the service documents no Retry-After; only sent when asked for.
    if state.quota_retry_after:
        error.headers = {
            "retry-after": str(max(1, math.ceil(wait))),
            "retry-after-ms": str(max(1, math.ceil(wait * 1000))),
        }
    return error


class Admission:
    """The gateway's verdict on one embedding request (from :func:`admit`).

    Attributes:
        response: The answer decided at the gateway (a queued fault, authentication failure,
            throttling, random ``InternalError``); ``None`` when the request goes on.
        fault: The queued answer-level fault this request consumed, applied by
            :meth:`respond` and :meth:`error`.
        protocol: Shape of error bodies.
        request_id: The request's id.
    """

    def __init__(self, state: ServerState, protocol: Protocol, request_id: str) -> None:
        self._state = state
        self.protocol: Protocol = protocol
        self.request_id = request_id
        self.response: Response | None = None
        self.fault: ScriptedFault | None = None
        self._slot = False

    def respond(
        self, status: int, payload: Any, headers: Mapping[str, str] | None = None
    ) -> EmulatorResponse:
        """Render ``payload`` as the answer, with the answer-level fault and trickle applied.

        Args:
            status: HTTP status.
            payload: JSON body (a data fault alters it when ``status`` is 200).
            headers: Extra response headers.

        Returns:
            The response to send.
        """
        fault = self.fault
        allow_nan = False
        if (
            fault is not None
            and fault.kind in DATA_FAULTS
            and status == 200
            and isinstance(payload, dict)
        ):
            allow_nan = apply_data_fault(payload, fault)
        return finish_response(
            self._state, status, render_json(payload, allow_nan=allow_nan), headers, fault
        )

    def error(self, error: ServiceError) -> EmulatorResponse:
        """Render ``error`` in the request's protocol (answer-level faults applied).

        Args:
            error: The error to answer.

        Returns:
            The response to send.
        """
        return self.respond(error.status, error.body(self.protocol, self.request_id), error.headers)

    def charge(self, tokens: int) -> None:
        """Take ``tokens`` from the tokens-per-minute quota and bill them.

        Call it once the request is known to succeed (after validation and inspection).

        Args:
            tokens: The request's billed tokens (``usage``).

        Raises:
            ServiceError: HTTP 429 ``Throttling.AllocationQuota`` when the quota is exhausted.
        """
        wait = self._state.take_tokens(tokens)
        if wait is not None:
            self._state.count_throttle("tpm")
            raise quota_error(self._state, allocation_quota(), wait)
        self._state.bill(tokens)

    def release(self) -> None:
        """Give back the in-flight slot (idempotent)."""
        if self._slot:
            self._slot = False
            self._state.in_flight -= 1

    async def __aenter__(self) -> Admission:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


async def admit(
    state: ServerState,
    request: Request,
    protocol: Protocol,
    *,
    authorized: Callable[[Request, str | None], bool] | None = None,
) -> Admission:
    """Run the gateway steps shared by the embedding endpoints; never raises.

    Steps: queued fault (FIFO) -> random reset -> authentication -> in-flight limit ->
    requests-per-minute quota -> latency -> random ``InternalError``. A request that passes
    holds an in-flight slot until :meth:`Admission.release` (or the end of ``async with``).

    Args:
        state: The emulator's shared state.
        request: The request; ``request.state.request_id`` must be set.
        protocol: Shape of error bodies.
        authorized: Key check; default :func:`bearer_key_accepted` (``Authorization: Bearer`` only).

    Returns:
        The verdict: ``response`` set when the gateway answers by itself.
    """
    admission = Admission(state, protocol, request.state.request_id)
    fault = state.pop_any_fault()
    if fault is not None and not isinstance(fault, ScriptedFault):
        if fault.body is not None:
            admission.response = finish_response(
                state, fault.status, render_json(fault.body), fault.headers, None
            )
        else:
            error = ServiceError(
                fault.status, fault.code, fault.message, headers=dict(fault.headers)
            )
            admission.response = admission.error(error)
        return admission
    if fault is not None and fault.kind in GATEWAY_FAULTS:
        if fault.kind == "reset":
            admission.response = reset_response(state)
        else:
            page = html_page(fault.status)
            admission.response = finish_response(state, fault.status, page, None, None, "text/html")
        return admission
    admission.fault = fault
    if state.draw_reset():
        admission.response = reset_response(state)
        return admission
    if not (authorized or bearer_key_accepted)(request, state.api_key):
        admission.response = admission.error(invalid_api_key())
        return admission
    state.in_flight += 1
    admission._slot = True
    if state.max_in_flight is not None and state.in_flight > state.max_in_flight:
        admission.release()
        state.count_throttle("max_in_flight")
        admission.response = admission.error(throttled())
        return admission
    wait = state.take_request()
    if wait is not None:
        admission.release()
        state.count_throttle("rpm")
        admission.response = admission.error(quota_error(state, throttled(), wait))
        return admission
    try:
        if state.latency > 0:
            await asyncio.sleep(state.latency)
    except BaseException:
        admission.release()
        raise
    if state.draw_error():
        admission.response = admission.error(internal_error())
    return admission
