"""The emulator's Starlette application: routing, validation, faults, quotas and error bodies.

Written from the protocol reference ([ref 0]-[ref 2], [ref 4]-[ref 6]), not from the client:
it rejects what the service rejects, with the service's status codes and JSON bodies. Every
per-model fact (limits, dimensions, sparse / instruct / compatible-mode support, endpoint)
comes from :mod:`dashscope_embeddings._registry`.

Order of processing for the two text endpoints (native and OpenAI-compatible):

1. gateway (:func:`admit`): queued fault (FIFO; an ``inject`` status fault, or a scripted
   ``reset`` / ``html`` fault, answers here) -> random reset (``reset_rate``) ->
   authentication -> in-flight limit (429 ``Throttling.RateQuota``) -> requests-per-minute
   quota (429 ``Throttling.RateQuota``) -> latency -> random ``InternalError``;
2. service: body validation -> content inspection (400 ``DataInspectionFailed``) ->
   tokens-per-minute quota (429 ``Throttling.AllocationQuota``) -> vectors (billed);
3. answer (:meth:`Admission.respond`): the queued answer-level fault, if any, is applied
   (``truncated``, ``slow_body``, ``duplicate_index``, ``missing_index``,
   ``wrong_dimension``, ``nan``), then the whole-emulator ``slow_body_ms`` trickle.

Reusing the gateway from another endpoint module (e.g. the multimodal one)::

    admission = await admit(state, request, "native", authorized=my_key_check)
    async with admission:                    # holds an in-flight slot until exit (the text
                                             # endpoints keep it until the body is sent)
        if admission.response is not None:  # fault, auth failure, throttling, random error
            return admission.response
        try:
            ...validate, inspect_texts(state, texts)...
            admission.charge(tokens)         # TPM quota (may raise ApiError) and billing
            return admission.respond(200, payload)
        except ApiError as error:
            return admission.error(error)

:func:`admit` never raises. The answer-level data faults find the embeddings in
``output.embeddings`` (native, multimodal; index key ``text_index`` or ``index``) or ``data``
(compatible). :class:`EmulatorResponse` carries the delivery tricks (reset, trickle, cut), so a
module's ``handle`` can return it like any Starlette response; the endpoint applies the
``slow_body_ms`` trickle to every other response (:func:`wrap_response`) and records a dropped
connection with status 0. :func:`render_json` serialises bodies holding cached vectors.

Finished dense vectors are kept in a bounded LRU cache shared by every emulator of the
process, keyed on everything a vector depends on (model, dimension, text, text type and the
instruction when it applies), together with their JSON text, so repeated texts cost neither
hashing nor float formatting.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import math
import random
import re
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from dashscope_embeddings._registry import MODELS, ModelSpec
from dashscope_embeddings.emulator import _lexical

if TYPE_CHECKING:
    from dashscope_embeddings.emulator import _ServerState

__all__ = [
    "COMPATIBLE_PATH",
    "FAULT_KINDS",
    "NATIVE_TEXT_PATH",
    "Admission",
    "EmulatorResponse",
    "FaultKind",
    "admit",
    "inspect_texts",
    "render_json",
    "wrap_response",
]

NATIVE_TEXT_PATH = "/api/v1/services/embeddings/text-embedding/text-embedding"
COMPATIBLE_PATH = "/compatible-mode/v1/embeddings"

Protocol = Literal["native", "compatible"]
Json = dict[str, Any]
FaultKind = Literal[
    "reset",
    "truncated",
    "html",
    "duplicate_index",
    "missing_index",
    "wrong_dimension",
    "nan",
    "slow_body",
]
FAULT_KINDS: tuple[FaultKind, ...] = (
    "reset",
    "truncated",
    "html",
    "duplicate_index",
    "missing_index",
    "wrong_dimension",
    "nan",
    "slow_body",
)
"""Kinds of :meth:`Emulator.inject_fault <dashscope_embeddings.emulator.Emulator.inject_fault>`."""

# The registry leaves dimensions unknown for some models ("not checked"); the emulator then
# returns this size by default and accepts any size up to the maximum below.
_FALLBACK_DIMENSION = 1024
_MAX_UNCHECKED_DIMENSION = 8192
_TEXT_TYPES = ("query", "document")
_OUTPUT_TYPES = ("dense", "sparse", "dense&sparse")
_ENCODINGS = ("float", "base64")
_TEXT_TYPE_WEIGHT = 0.1  # query and document vectors of one text differ, but stay close
_INSTRUCT_WEIGHT = 0.2

_DEFAULT_TRICKLE_PIECES = 20
_DISCONNECT_WAIT = 5.0  # seconds to wait for the server to notice an aborted connection
# Floats kept in the vector cache: 2,048 vectors of 1,024 (about 12 bytes per value with the
# JSON text, so some 25 MB when full).
_VECTOR_CACHE_VALUES = 1 << 21
_ANALYSIS_CACHE_SIZE = 16_384
_ANALYSIS_CACHE_MAX_CHARS = 4_096  # longer texts are analysed every time (bounded memory)
_DATA_FAULTS = frozenset({"duplicate_index", "missing_index", "wrong_dimension", "nan"})
_GATEWAY_FAULTS = frozenset({"reset", "html"})


class ApiError(Exception):
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


def _bad_request(message: str) -> ApiError:
    """A malformed request (not an algorithm-side parameter check)."""
    return ApiError(400, "InvalidParameter", message)


def _algo_invalid(message: str, param: str = "input.contents") -> ApiError:
    """A parameter rejected by the model service; compatible wording per [ref 5.2]."""
    compat = f"<400> InternalError.Algo.InvalidParameter: Value error, {message}: {param}"
    return ApiError(400, "InvalidParameter", message, compat_message=compat)


def _model_not_found(model: str) -> ApiError:
    # [ref 5.3]: native ModelNotFound; compatible model_not_found is [UNCONFIRMED], taken as is.
    return ApiError(
        404,
        "ModelNotFound",
        "Model not exist.",
        compat_code="model_not_found",
        compat_message=f"The model `{model}` does not exist or you do not have access to it.",
    )


def _invalid_api_key() -> ApiError:
    return ApiError(
        401,
        "InvalidApiKey",
        "Invalid API-key provided.",
        compat_code="invalid_api_key",
        compat_message="Incorrect API key provided.",
    )


def _throttled() -> ApiError:
    # [ref 5.3]: the compatible code of Throttling.RateQuota is [UNCONFIRMED]; "limit_requests".
    return ApiError(
        429,
        "Throttling.RateQuota",
        "Requests rate limit exceeded, please try again later.",
        compat_code="limit_requests",
    )


def _internal_error() -> ApiError:
    # [ref 5.3]: the compatible code "internal_error" is [UNCONFIRMED].
    return ApiError(
        500,
        "InternalError",
        "An internal error has occured, please try again later or contact service support.",
        compat_code="internal_error",
    )


def _allocation_quota() -> ApiError:
    # [ref 5.3]: TPM / quota exceeded; compatible code "insufficient_quota". The message is not the
    # non-retryable "Free allocated quota exceeded." variant.
    return ApiError(
        429,
        "Throttling.AllocationQuota",
        "Allocated quota exceeded, please increase your quota limit.",
        compat_code="insufficient_quota",
    )


def _data_inspection_failed() -> ApiError:
    # [ref 5.3]: native DataInspectionFailed; compatible data_inspection_failed is [UNCONFIRMED].
    return ApiError(
        400,
        "DataInspectionFailed",
        "Input data may contain inappropriate content.",
        compat_code="data_inspection_failed",
    )


def inspect_texts(state: _ServerState, texts: list[str]) -> None:
    """Content inspection: reject the whole request when one text holds the marker word.

    The service rejects a whole request for one inappropriate input ([ref 5.3]
    ``DataInspectionFailed``); the emulator's stand-in for inappropriate content is the
    ``reject_marker`` substring (case-sensitive; ``None`` or empty disables the check).

    Args:
        state: The emulator's shared state.
        texts: Every text of the request.

    Raises:
        ApiError: HTTP 400 ``DataInspectionFailed`` (compatible ``data_inspection_failed``).
    """
    marker = state.reject_marker
    if marker and any(marker in text for text in texts):
        raise _data_inspection_failed()


def _quota_error(state: _ServerState, error: ApiError, wait: float) -> ApiError:
    # [ref 6]: the service documents no Retry-After; only sent when asked for.
    if state.quota_retry_after:
        error.headers = {
            "retry-after": str(max(1, math.ceil(wait))),
            "retry-after-ms": str(max(1, math.ceil(wait * 1000))),
        }
    return error


# --- scripted faults and delivery ------------------------------------------------------------


@dataclass(frozen=True)
class _ScriptedFault:
    """A fault of :meth:`Emulator.inject_fault`, beyond a status code (see :data:`FaultKind`)."""

    kind: FaultKind
    status: int = 502  # html
    ms: float = 2000.0  # slow_body
    pieces: int = _DEFAULT_TRICKLE_PIECES  # slow_body
    at: float = 0.5  # truncated: fraction of the body kept
    full_length: bool = False  # truncated: declare the whole length, then reset
    value: float = math.nan  # nan: the number put into a vector


def _html_page(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    title = f"{status} {phrase}"
    return (
        "<html>\r\n"
        f"<head><title>{title}</title></head>\r\n"
        "<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n"
        "<hr><center>gateway</center>\r\n"
        "</body>\r\n"
        "</html>\r\n"
    ).encode("ascii")


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class EmulatorResponse(Response):
    """A response that can also misbehave on the wire.

    Args:
        content: The body.
        status_code: HTTP status.
        headers: Extra headers; ``content-length`` is always the length of ``content``.
        media_type: Content type.
        abort: Resets the connection of an ASGI ``client`` address, returning ``False`` when
            it cannot (set by :class:`~dashscope_embeddings.emulator.Emulator`).
        reset: Send nothing at all and reset the connection (the client sees a transport
            error such as ``httpx.ReadError`` / ``RemoteProtocolError``).
        cut_after: Send the headers and only this many body bytes, then reset the connection.
        trickle: ``(milliseconds, pieces)``: send the headers at once, then the body in
            ``pieces`` parts, each after a pause of ``milliseconds / pieces``.
    """

    def __init__(
        self,
        content: bytes,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = "application/json",
        *,
        abort: Callable[[tuple[str, int]], bool] | None = None,
        reset: bool = False,
        cut_after: int | None = None,
        trickle: tuple[float, int] | None = None,
    ) -> None:
        super().__init__(content, status_code, headers, media_type)
        self.abort = abort
        self.reset = reset
        self.cut_after = cut_after
        self.trickle = trickle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Deliver the response as configured (ASGI)."""
        if self.reset:
            await self._reset(scope, receive, send, started=False)
            return
        if self.cut_after is None and self.trickle is None:
            await super().__call__(scope, receive, send)
            return
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        body = bytes(self.body)
        if self.cut_after is not None:
            await send(
                {"type": "http.response.body", "body": body[: self.cut_after], "more_body": True}
            )
            await self._reset(scope, receive, send, started=True)
            return
        assert self.trickle is not None
        await self._trickle(body, *self.trickle, receive, send)

    async def _reset(self, scope: Scope, receive: Receive, send: Send, *, started: bool) -> None:
        client = scope.get("client")
        if self.abort is not None and client is not None and self.abort((client[0], client[1])):
            # Wait until the server has noticed, so it does not try to answer 500 itself.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(_until_disconnect(receive), _DISCONNECT_WAIT)
            return
        # No way to reach the socket: leave the response incomplete; ASGI servers then close
        # the connection (after the headers, so the client sees a cut body, not a reset).
        if not started:
            headers = [(b"content-length", b"1")]
            await send({"type": "http.response.start", "status": 502, "headers": headers})

    @staticmethod
    async def _trickle(body: bytes, ms: float, pieces: int, receive: Receive, send: Send) -> None:
        pieces = max(1, min(pieces, len(body)))
        size = -(-len(body) // pieces) if body else 0
        pause = ms / 1000.0 / pieces
        gone = asyncio.Event()

        async def watch() -> None:
            await _until_disconnect(receive)
            gone.set()

        watcher = asyncio.ensure_future(watch())
        try:
            for i in range(pieces):
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(gone.wait(), pause)
                if gone.is_set():  # the client gave up: stop sending
                    return
                chunk = body[i * size : (i + 1) * size]
                await send(
                    {"type": "http.response.body", "body": chunk, "more_body": i < pieces - 1}
                )
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


class _Dense:
    """A finished dense vector: little-endian float32 bytes and, once needed, its JSON text.

    The values are float32-representable (see :func:`._lexical.dense_vector`), so 4 bytes
    each hold them exactly; base64 answers are these bytes encoded.
    """

    __slots__ = ("_json", "packed", "size")

    def __init__(self, values: Sequence[float], *, as_json: bool = False) -> None:
        self.size = len(values)
        self.packed = struct.pack(f"<{self.size}f", *values)
        self._json = _vector_json(values) if as_json else None

    @property
    def values(self) -> tuple[float, ...]:
        """The values as Python floats (equal to the emulator's float32 values)."""
        return struct.unpack(f"<{self.size}f", self.packed)

    def base64(self) -> str:
        """The vector as OpenAI's ``encoding_format=base64`` (little-endian float32)."""
        return base64.b64encode(self.packed).decode("ascii")

    def json(self) -> str:
        """The vector as compact JSON, exactly as ``json.dumps`` writes it.

        Most values of a lexical vector are zero: writing ``0.0`` without formatting them
        halves the cost. The zeros are all positive (bucket sums of non-zero terms are never
        -0.0), and ``repr`` is what ``json`` uses for a finite float. Computed when first
        needed (or at once, for a vector first asked for as floats).
        """
        text = self._json
        if text is None:  # computed at most a few times (a benign race between threads)
            text = self._json = _vector_json(self.values)
        return text


def _vector_json(values: Sequence[float]) -> str:
    """Compact JSON of finite floats, as ``json.dumps``; zeros are written without formatting."""
    return "[" + ",".join([repr(value) if value else "0.0" for value in values]) + "]"


_PLACEHOLDER = re.compile(r'"\\u0000(\d+)\\u0000"')


def render_json(payload: Any, *, allow_nan: bool = False) -> bytes:
    """Serialise a body compactly (as Starlette's ``JSONResponse``), cached vectors included.

    Dense vectors in the payload may be cached vector objects; their JSON text is spliced in
    without formatting the floats again.

    Args:
        payload: The JSON-able body.
        allow_nan: Write ``NaN`` / ``Infinity`` literals (only the ``nan`` fault does).

    Returns:
        UTF-8 JSON.
    """
    fragments: list[str] = []

    def splice(obj: Any) -> str:
        if isinstance(obj, _Dense):
            fragments.append(obj.json())
            # A control character is always escaped by json, and no text of a body can carry
            # this marker (sparse tokens hold single punctuation characters only).
            return f"\x00{len(fragments) - 1}\x00"
        raise TypeError(f"{type(obj).__name__} is not JSON serializable")

    text = json.dumps(
        payload, ensure_ascii=False, allow_nan=allow_nan, separators=(",", ":"), default=splice
    )
    if fragments:
        text = _PLACEHOLDER.sub(lambda match: fragments[int(match.group(1))], text)
    return text.encode("utf-8")


def _finish(
    state: _ServerState,
    status: int,
    body: bytes,
    headers: Mapping[str, str] | None,
    fault: _ScriptedFault | None,
    media_type: str = "application/json",
) -> EmulatorResponse:
    """The response for a rendered body, with the answer-level fault and trickle applied."""
    cut_after: int | None = None
    trickle: tuple[float, int] | None = None
    if state.slow_body_ms > 0:
        trickle = (state.slow_body_ms, _DEFAULT_TRICKLE_PIECES)
    if fault is not None and fault.kind == "truncated":
        keep = min(max(1, int(len(body) * fault.at)), max(0, len(body) - 1))
        if fault.full_length:
            cut_after = keep
        else:
            body = body[:keep]
    elif fault is not None and fault.kind == "slow_body":
        trickle = (fault.ms, fault.pieces)
    return EmulatorResponse(
        body,
        status,
        headers,
        media_type,
        abort=state.abort_connection,
        cut_after=cut_after,
        trickle=trickle,
    )


def _reset_response(state: _ServerState) -> EmulatorResponse:
    state.count_reset()
    return EmulatorResponse(b"", 0, abort=state.abort_connection, reset=True)


def wrap_response(state: _ServerState, response: Response) -> Response:
    """Apply the whole-emulator ``slow_body_ms`` trickle to another module's plain response."""
    body = getattr(response, "body", None)
    if state.slow_body_ms <= 0 or isinstance(response, EmulatorResponse) or body is None:
        return response
    wrapped = EmulatorResponse(
        bytes(body),
        response.status_code,
        None,
        None,
        trickle=(state.slow_body_ms, _DEFAULT_TRICKLE_PIECES),
    )
    wrapped.raw_headers = list(response.raw_headers)
    return wrapped


# --- answer-level data faults ------------------------------------------------------------------


def _vector_values(value: Any) -> tuple[list[float], bool] | None:
    """The floats of one ``embedding`` value (cached vector, list, base64) and whether base64."""
    if isinstance(value, _Dense):
        return list(value.values), False
    if isinstance(value, list):
        return [float(v) for v in value], False
    if isinstance(value, str):
        raw = _lexical.decode_base64(value)
        return (raw, True) if raw is not None else None
    return None


def _mutate(payload: Json, fault: _ScriptedFault) -> bool:
    """Apply a data fault to a success body in place; ``True`` when it uses NaN / Infinity."""
    output = payload.get("output")
    items: Any = None
    if isinstance(output, dict):
        items = output.get("embeddings")
    if items is None:
        items = payload.get("data")
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        return False
    key = "text_index" if "text_index" in items[0] else "index"
    if fault.kind == "duplicate_index":
        if len(items) >= 2:  # same count, one index twice and one missing
            items[-1][key] = items[0][key]
        else:
            items.append(dict(items[0]))
        return False
    if fault.kind == "missing_index":
        items.pop()
        return False
    for item in items:
        found = _vector_values(item.get("embedding"))
        if found is None:
            continue
        values, as_base64 = found
        if fault.kind == "wrong_dimension":
            values.pop()
        else:
            values[len(values) // 2] = fault.value
        item["embedding"] = _lexical.encode_base64(values) if as_base64 else values
        return fault.kind == "nan" and not as_base64
    if fault.kind == "nan":  # sparse only: spoil a sparse weight
        for item in items:
            sparse = item.get("sparse_embedding")
            if isinstance(sparse, list) and sparse and isinstance(sparse[0], dict):
                sparse[0]["value"] = fault.value
                return True
    return False


# --- gateway -----------------------------------------------------------------------------------


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

    def __init__(self, state: _ServerState, protocol: Protocol, request_id: str) -> None:
        self._state = state
        self.protocol: Protocol = protocol
        self.request_id = request_id
        self.response: Response | None = None
        self.fault: _ScriptedFault | None = None
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
            and fault.kind in _DATA_FAULTS
            and status == 200
            and isinstance(payload, dict)
        ):
            allow_nan = _mutate(payload, fault)
        return _finish(
            self._state, status, render_json(payload, allow_nan=allow_nan), headers, fault
        )

    def error(self, error: ApiError) -> EmulatorResponse:
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
            ApiError: HTTP 429 ``Throttling.AllocationQuota`` when the quota is exhausted.
        """
        wait = self._state.take_tokens(tokens)
        if wait is not None:
            self._state.count_throttle("tpm")
            raise _quota_error(self._state, _allocation_quota(), wait)
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
    state: _ServerState,
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
        authorized: Key check; default :func:`_authorized` (``Authorization: Bearer`` only).

    Returns:
        The verdict: ``response`` set when the gateway answers by itself.
    """
    admission = Admission(state, protocol, request.state.request_id)
    fault = state.pop_any_fault()
    if fault is not None and not isinstance(fault, _ScriptedFault):
        if fault.body is not None:
            admission.response = _finish(
                state, fault.status, render_json(fault.body), fault.headers, None
            )
        else:
            error = ApiError(fault.status, fault.code, fault.message, headers=dict(fault.headers))
            admission.response = admission.error(error)
        return admission
    if fault is not None and fault.kind in _GATEWAY_FAULTS:
        if fault.kind == "reset":
            admission.response = _reset_response(state)
        else:
            page = _html_page(fault.status)
            admission.response = _finish(state, fault.status, page, None, None, "text/html")
        return admission
    admission.fault = fault
    if state.draw_reset():
        admission.response = _reset_response(state)
        return admission
    if not (authorized or _authorized)(request, state.api_key):
        admission.response = admission.error(_invalid_api_key())
        return admission
    state.in_flight += 1
    admission._slot = True
    if state.max_in_flight is not None and state.in_flight > state.max_in_flight:
        admission.release()
        state.count_throttle("max_in_flight")
        admission.response = admission.error(_throttled())
        return admission
    wait = state.take_request()
    if wait is not None:
        admission.release()
        state.count_throttle("rpm")
        admission.response = admission.error(_quota_error(state, _throttled(), wait))
        return admission
    try:
        if state.latency > 0:
            await asyncio.sleep(state.latency)
    except BaseException:
        admission.release()
        raise
    if state.draw_error():
        admission.response = admission.error(_internal_error())
    return admission


# --- vectors -----------------------------------------------------------------------------------


class _VectorCache:
    """A bounded LRU of finished vectors, shared by every emulator thread of the process."""

    def __init__(self, max_values: int) -> None:
        self._max_values = max_values
        self._values = 0
        self._entries: OrderedDict[tuple[Any, ...], _Dense] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> _Dense | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: tuple[Any, ...], vector: _Dense) -> None:
        if vector.size > self._max_values:
            return
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._values -= previous.size
            self._entries[key] = vector
            self._values += vector.size
            while self._values > self._max_values:
                _, evicted = self._entries.popitem(last=False)
                self._values -= evicted.size

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._values = 0


_VECTORS = _VectorCache(_VECTOR_CACHE_VALUES)


@functools.lru_cache(maxsize=_ANALYSIS_CACHE_SIZE)
def _analyze_cached(text: str) -> _lexical.Analysis:
    return _lexical.analyze(text)


def _analyze(text: str) -> _lexical.Analysis:
    if len(text) <= _ANALYSIS_CACHE_MAX_CHARS:
        return _analyze_cached(text)
    return _lexical.analyze(text)


@dataclass(frozen=True)
class _Job:
    spec: ModelSpec
    texts: tuple[str, ...]
    analyses: list[_lexical.Analysis]
    dimension: int
    text_type: str = "document"
    output_type: str = "dense"
    instruct: str | None = None
    encoding: str = "float"


def _resolve_model(body: Json, protocol: Protocol, async_header: bool) -> ModelSpec:
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise _bad_request("Model not specified.")
    spec = MODELS.get(name)
    if protocol == "compatible":
        if spec is None or not spec.supports_compatible_mode:
            raise _model_not_found(name)
        return spec
    if spec is None:
        raise _model_not_found(name)
    if spec.endpoint == "multimodal":  # [ref 3]: a multimodal model on the text path
        raise _bad_request("url error")
    if spec.endpoint == "async_task" and not async_header:  # [ref 5.3]
        raise ApiError(403, "AccessDenied", "current user api does not support synchronous calls")
    if spec.endpoint == "text" and async_header:  # [ref 5.3] "sync/async mode not allowed"
        raise ApiError(403, "AccessDenied", "current user api does not support asynchronous calls")
    if spec.endpoint == "async_task":
        raise ApiError(501, "NotImplemented", "The emulator does not run asynchronous tasks.")
    return spec


def _analyze_texts(
    value: Any, spec: ModelSpec, name: str
) -> tuple[list[str], list[_lexical.Analysis]]:
    # The SDK always sends a list; a bare string is accepted as one text, as the service is
    # lenient there (and compatible mode documents it).
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise _bad_request(f"Required parameter '{name}' missing or invalid: a list of strings.")
    if not texts:
        raise _algo_invalid("batch size is invalid, it should not be smaller than 1.")
    limit = spec.max_batch_size
    if len(texts) > limit:
        raise _algo_invalid(f"batch size is invalid, it should not be larger than {limit}.")
    analyses = [_analyze(text) for text in texts]
    max_tokens = spec.max_tokens_per_input
    for analysis in analyses:
        if not 1 <= analysis.token_count <= max_tokens:
            # [ref 5.2]: this wording is [UNCONFIRMED] for embeddings (it is the LLM endpoints').
            raise _algo_invalid(f"Range of input length should be [1, {max_tokens}]")
    return texts, analyses


def _dimension(spec: ModelSpec, value: Any) -> int:
    if value is None:
        return spec.default_dimension or _FALLBACK_DIMENSION
    # Strict: a JSON int only, not "1024" or true.
    valid = isinstance(value, int) and not isinstance(value, bool)
    if spec.dimensions:
        if valid and value in spec.dimensions:
            return int(value)
        allowed = ", ".join(str(d) for d in sorted(spec.dimensions))
        message = f"dimension is invalid, it should be one of [{allowed}]."
    elif valid and 1 <= value <= _MAX_UNCHECKED_DIMENSION:
        return int(value)
    else:
        message = f"dimension is invalid, it should be in [1, {_MAX_UNCHECKED_DIMENSION}]."
    raise _algo_invalid(message, "parameters.dimension")


def _choice(value: Any, allowed: tuple[str, ...], default: str, name: str) -> str:
    if value is None:
        return default
    if value not in allowed:
        raise _algo_invalid(f"{name} should be one of {', '.join(allowed)}.", f"parameters.{name}")
    return str(value)


def _native_job(body: Json, async_header: bool) -> _Job:
    spec = _resolve_model(body, "native", async_header)
    inp = body.get("input")
    if not isinstance(inp, dict):
        raise _bad_request("Required parameter 'input' missing or invalid.")
    texts, analyses = _analyze_texts(inp.get("texts"), spec, "input.texts")
    params = body.get("parameters")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise _bad_request("Parameter 'parameters' should be an object.")
    # Unknown keys in `parameters` are ignored, as the service does ([ref 1.1], [ref 8.4]).
    output_type = _choice(params.get("output_type"), _OUTPUT_TYPES, "dense", "output_type")
    if output_type != "dense" and not spec.supports_sparse:
        raise _algo_invalid(
            f"output_type {output_type} is not supported by model {spec.name}.",
            "parameters.output_type",
        )
    instruct = params.get("instruct")
    if instruct is not None and not isinstance(instruct, str):
        raise _bad_request("Parameter 'instruct' should be a string.")
    return _Job(
        spec=spec,
        texts=tuple(texts),
        analyses=analyses,
        dimension=_dimension(spec, params.get("dimension")),
        text_type=_choice(params.get("text_type"), _TEXT_TYPES, "document", "text_type"),
        output_type=output_type,
        instruct=instruct,
    )


def _compatible_job(body: Json) -> _Job:
    spec = _resolve_model(body, "compatible", async_header=False)
    texts, analyses = _analyze_texts(body.get("input"), spec, "input")
    # [ref 2.1]: S4 says "only float"; whether base64 is honoured is [UNCONFIRMED]. The emulator
    # honours it (the openai SDK sends base64 by default), so clients must decode both forms.
    encoding = _choice(body.get("encoding_format"), _ENCODINGS, "float", "encoding_format")
    # [ref 2.3]: text_type / output_type / instruct are not documented here ([UNCONFIRMED]); like
    # every other unknown key they are ignored, so vectors are always document vectors.
    return _Job(
        spec=spec,
        texts=tuple(texts),
        analyses=analyses,
        dimension=_dimension(spec, body.get("dimensions")),
        encoding=encoding,
    )


def _order(n: int, seed: int, shuffle: bool) -> list[int]:
    """Deterministic non-identity permutation (for n >= 2): clients must sort by index."""
    indices = list(range(n))
    if shuffle and n > 1:
        random.Random(f"{seed}:{n}").shuffle(indices)
        if indices == sorted(indices):
            indices.reverse()
    return indices


def _extra_features(job: _Job) -> list[tuple[str, float]]:
    extra = [_lexical.marker_feature("text_type", job.text_type, _TEXT_TYPE_WEIGHT)]
    # [ref 1.1]: instruct only takes effect for models that support it, with text_type=query; the
    # service silently ignores it otherwise.
    if job.instruct and job.spec.supports_instruct and job.text_type == "query":
        extra.append(_lexical.marker_feature("instruct", job.instruct, _INSTRUCT_WEIGHT))
    return extra


def _dense(job: _Job, analysis: _lexical.Analysis) -> list[float]:
    return _lexical.dense_vector(
        analysis, model=job.spec.name, dimension=job.dimension, extra=_extra_features(job)
    )


def _cached_dense(job: _Job, i: int, state: _ServerState) -> _Dense:
    """The dense vector of text ``i``, from the cache when it was computed before."""
    effective_instruct = (
        job.instruct
        if job.instruct and job.spec.supports_instruct and job.text_type == "query"
        else None
    )
    key = (job.spec.name, job.dimension, job.texts[i], job.text_type, effective_instruct)
    found = _VECTORS.get(key)
    if found is not None:
        state.count_vector(hit=True)
        return found
    state.count_vector(hit=False)
    vector = _Dense(_dense(job, job.analyses[i]), as_json=job.encoding == "float")
    _VECTORS.put(key, vector)
    return vector


def _native_success(job: _Job, state: _ServerState, request_id: str) -> Json:
    embeddings: list[Json] = []
    for i in _order(len(job.analyses), state.seed, state.shuffle):
        item: Json = {}
        if job.output_type != "dense":
            item["sparse_embedding"] = _lexical.sparse_vector(job.analyses[i])
        # [ref 1.2]: with output_type "sparse" it is [UNCONFIRMED] whether "embedding" is omitted or
        # empty; the emulator omits it, the stricter choice for clients.
        if job.output_type != "sparse":
            item["embedding"] = _cached_dense(job, i, state)
        item["text_index"] = i
        embeddings.append(item)
    return {
        "output": {"embeddings": embeddings},
        "usage": {"total_tokens": _total_tokens(job)},
        "request_id": request_id,
    }


def _compatible_success(job: _Job, state: _ServerState, request_id: str) -> Json:
    data: list[Json] = []
    for i in _order(len(job.analyses), state.seed, state.shuffle):
        vector = _cached_dense(job, i, state)
        embedding = vector.base64() if job.encoding == "base64" else vector
        data.append({"embedding": embedding, "index": i, "object": "embedding"})
    total = _total_tokens(job)
    # [ref 2.2]: the success body carries the request id as "id" only (errors carry both keys).
    return {
        "data": data,
        "model": job.spec.name,
        "object": "list",
        "usage": {"prompt_tokens": total, "total_tokens": total},
        "id": request_id,
    }


def _total_tokens(job: _Job) -> int:
    return sum(a.token_count for a in job.analyses)


def _authorized(request: Request, api_key: str | None) -> bool:
    # Only `Authorization: Bearer <key>` ([ref 0.2]); X-DashScope-ApiKey is documented for the
    # multimodal endpoint only, so it is not accepted here.
    scheme, _, key = request.headers.get("authorization", "").strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        return False
    return api_key is None or key == api_key


def _parse_json(raw: bytes) -> tuple[bool, Any]:
    if not raw:
        return False, None
    try:
        return True, json.loads(raw)
    except ValueError:  # includes JSONDecodeError and UnicodeDecodeError
        return False, None


def _text_answer(
    state: _ServerState, request: Request, admission: Admission, parsed: tuple[bool, Any]
) -> Response:
    """The service side of a text request that passed the gateway."""
    try:
        ok, body = parsed
        if not ok:
            raise _bad_request("The request body is not valid JSON.")
        if not isinstance(body, dict):
            raise _bad_request("The request body should be a JSON object.")
        if admission.protocol == "native":
            async_header = request.headers.get("x-dashscope-async", "").lower() == "enable"
            job = _native_job(body, async_header)
        else:
            job = _compatible_job(body)
        inspect_texts(state, list(job.texts))
        admission.charge(_total_tokens(job))
        if admission.protocol == "native":
            payload = _native_success(job, state, admission.request_id)
        else:
            payload = _compatible_success(job, state, admission.request_id)
        return admission.respond(200, payload)
    except ApiError as error:
        return admission.error(error)
