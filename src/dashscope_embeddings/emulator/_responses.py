"""How answers go on the wire: JSON rendering, and responses that can misbehave on purpose.

:class:`EmulatorResponse` carries the delivery tricks (reset, trickle, cut), so an endpoint
family can return it like any Starlette response; :func:`finish_response` applies a request's
answer-level fault and the whole-emulator ``slow_body_ms`` trickle to a rendered body, and
:func:`wrap_response` the trickle to another family's plain response. :func:`render_json`
serialises bodies holding cached vectors.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from dashscope_embeddings.emulator._faults import DEFAULT_TRICKLE_PIECES, ScriptedFault
from dashscope_embeddings.emulator._state import ServerState
from dashscope_embeddings.emulator._vectors import DenseVector

__all__ = [
    "DISCONNECT_WAIT",
    "EmulatorResponse",
    "finish_response",
    "render_json",
    "reset_response",
    "until_disconnect",
    "wrap_response",
]

DISCONNECT_WAIT = 5.0
"""Seconds to wait for the server to notice an aborted connection."""


async def until_disconnect(receive: Receive) -> None:
    """Return once the client has gone (ASGI ``http.disconnect``)."""
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

    Attributes:
        on_sent: Called once the response has been sent, dropped or abandoned (the text
            endpoints give back their in-flight slot there).
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
        self.on_sent: Callable[[], None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Deliver the response as configured (ASGI), then call :attr:`on_sent`."""
        try:
            await self._deliver(scope, receive, send)
        finally:
            if self.on_sent is not None:
                self.on_sent()

    async def _deliver(self, scope: Scope, receive: Receive, send: Send) -> None:
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
                await asyncio.wait_for(until_disconnect(receive), DISCONNECT_WAIT)
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
            await until_disconnect(receive)
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
        if isinstance(obj, DenseVector):
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


def finish_response(
    state: ServerState,
    status: int,
    body: bytes,
    headers: Mapping[str, str] | None,
    fault: ScriptedFault | None,
    media_type: str = "application/json",
) -> EmulatorResponse:
    """The response for a rendered body, with the answer-level fault and trickle applied."""
    cut_after: int | None = None
    trickle: tuple[float, int] | None = None
    if state.slow_body_ms > 0:
        trickle = (state.slow_body_ms, DEFAULT_TRICKLE_PIECES)
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


def reset_response(state: ServerState) -> EmulatorResponse:
    """A connection dropped without any answer (counted as a reset)."""
    state.count_reset()
    return EmulatorResponse(b"", 0, abort=state.abort_connection, reset=True)


def wrap_response(state: ServerState, response: Response) -> Response:
    """Apply the whole-emulator ``slow_body_ms`` trickle to another module's plain response."""
    body = getattr(response, "body", None)
    if state.slow_body_ms <= 0 or isinstance(response, EmulatorResponse) or body is None:
        return response
    wrapped = EmulatorResponse(
        bytes(body),
        response.status_code,
        None,
        None,
        trickle=(state.slow_body_ms, DEFAULT_TRICKLE_PIECES),
    )
    wrapped.raw_headers = list(response.raw_headers)
    return wrapped
