"""The emulator's router: one ASGI endpoint that hands each request to its endpoint family.

Every request first has its body read within the bound (:func:`._gateway.read_body`: 413
before anything else when it is larger), then goes to the first family whose ``matches(path)``
is true: the text endpoints (:mod:`._text`), multimodal (:mod:`._multimodal`), files, the
Batch API and asynchronous tasks (:mod:`._offline`). Other paths get 404. This module sits
above all of them, so no family imports the router.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from dashscope_embeddings.emulator import _file_tasks, _multimodal, _offline, _text
from dashscope_embeddings.emulator._errors import Protocol, ServiceError, request_too_large
from dashscope_embeddings.emulator._gateway import BodyTooLarge, read_body
from dashscope_embeddings.emulator._responses import (
    EmulatorResponse,
    finish_response,
    render_json,
    wrap_response,
)
from dashscope_embeddings.emulator._state import ServerState

__all__ = ["create_app"]

# Each endpoint family lives in a module exposing ``matches(path) -> bool`` and
# ``async handle(state, request, raw_body) -> Response``.
_FAMILIES = (_text, _multimodal, _offline)


class _Endpoint:
    """ASGI endpoint for every path and method (a class, so the route accepts any method).

    Every request counts in the emulator's statistics (in flight from arrival until its
    response has been sent) and is recorded just before its response is sent.
    """

    def __init__(self, state: ServerState) -> None:
        self._state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self._state
        request = Request(scope, receive)
        state.request_started(request.url.path)
        try:
            await self._serve(request, scope, receive, send)
        finally:
            state.request_finished()

    async def _serve(self, request: Request, scope: Scope, receive: Receive, send: Send) -> None:
        state = self._state
        request_id = str(uuid.uuid4())
        request.state.request_id = request_id
        path = request.url.path
        protocol: Protocol = "compatible" if path.startswith("/compatible-mode/") else "native"
        try:
            raw = await read_body(request, state.max_body_bytes)
        except BodyTooLarge:
            error = request_too_large(state.max_body_bytes)
            await self._send_error(request, error, protocol, (False, None), scope, receive, send)
            return
        parsed = _text.parse_json(raw)
        request.state.parsed_body = parsed
        if path == _text.NATIVE_TEXT_PATH and _file_tasks.wanted(request, parsed):
            task_created = await _file_tasks.handle(state, request, raw)
            await self._send(request, task_created, parsed, scope, receive, send)
            return
        for family in _FAMILIES:
            if family.matches(path):
                response: Response = await family.handle(state, request, raw)
                await self._send(request, response, parsed, scope, receive, send)
                return
        error = ServiceError(404, "NotFound", f"Not found: {path}", compat_code="not_found")
        await self._send_error(request, error, protocol, parsed, scope, receive, send)

    async def _send_error(
        self,
        request: Request,
        error: ServiceError,
        protocol: Protocol,
        parsed: tuple[bool, Any],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        body = render_json(error.body(protocol, request.state.request_id))
        response = finish_response(self._state, error.status, body, error.headers, None)
        await self._send(request, response, parsed, scope, receive, send)

    async def _send(
        self,
        request: Request,
        response: Response,
        parsed: tuple[bool, Any],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        state = self._state
        response = wrap_response(state, response)
        dropped = isinstance(response, EmulatorResponse) and response.reset
        if not dropped:
            response.headers["x-request-id"] = request.state.request_id
        status = 0 if dropped else response.status_code
        state.record(request.method, request.url.path, request.headers.raw, parsed[1], status)
        await response(scope, receive, send)


def create_app(state: ServerState) -> Starlette:
    """Build the ASGI application serving every endpoint family from ``state``.

    Every request is answered with JSON (unknown paths 404, wrong methods 405, bodies over the
    bound 413) and recorded in ``state`` just before its response is sent.
    """
    return Starlette(routes=[Route("/{path:path}", _Endpoint(state))])
