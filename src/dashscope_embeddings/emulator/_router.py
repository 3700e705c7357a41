"""The emulator's router: one ASGI endpoint that hands each request to its endpoint family.

The text endpoints are served by :mod:`._app` (which also holds the gateway every family
shares: faults, authentication, quotas, latency); multimodal by :mod:`._multimodal`; files,
the Batch API and asynchronous tasks by :mod:`._batch`. This module sits above all of them, so
no family imports the router.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from dashscope_embeddings.emulator import _batch, _file_tasks, _multimodal
from dashscope_embeddings.emulator._app import (
    COMPATIBLE_PATH,
    NATIVE_TEXT_PATH,
    ApiError,
    EmulatorResponse,
    Protocol,
    _finish,
    _parse_json,
    _text_answer,
    admit,
    render_json,
    wrap_response,
)

if TYPE_CHECKING:
    from dashscope_embeddings.emulator import _ServerState

__all__ = ["create_app"]


class _Endpoint:
    """ASGI endpoint for every path and method (a class, so the route accepts any method).

    The text endpoints are served here; each other endpoint family (multimodal, files and
    batches, asynchronous tasks) lives in a module of its own exposing
    ``matches(path) -> bool`` and ``async handle(state, request, raw_body) -> Response``.
    Every request counts in the emulator's statistics (in flight from arrival until its
    response has been sent).
    """

    def __init__(self, state: _ServerState) -> None:
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
        raw = await request.body()
        parsed = _parse_json(raw)
        path = request.url.path
        for family in _FAMILIES:
            if family.matches(path):
                response: Response = await family.handle(state, request, raw)
                await self._send(request, response, parsed, scope, receive, send)
                return
        protocol: Protocol = "compatible" if path.startswith("/compatible-mode/") else "native"
        try:
            if path not in (NATIVE_TEXT_PATH, COMPATIBLE_PATH):
                raise ApiError(404, "NotFound", f"Not found: {path}", compat_code="not_found")
            if request.method != "POST":
                raise ApiError(
                    405,
                    "MethodNotAllowed",
                    f"Method {request.method} is not allowed; use POST.",
                    compat_code="method_not_allowed",
                    headers={"allow": "POST"},
                )
        except ApiError as error:
            body = render_json(error.body(protocol, request_id))
            response = _finish(state, error.status, body, error.headers, None)
            await self._send(request, response, parsed, scope, receive, send)
            return
        admission = await admit(state, request, protocol)
        async with admission:  # the in-flight slot is held until the response has been sent
            if admission.response is not None:
                response = admission.response
            elif _file_tasks.wanted(request, parsed):
                response = await _file_tasks.create(state, admission, parsed)
            else:
                response = _text_answer(state, request, admission, parsed)
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


# Each other endpoint family lives in a module exposing ``matches(path) -> bool`` and
# ``async handle(state, request, raw_body) -> Response``.
_FAMILIES = (_multimodal, _batch)


def create_app(state: _ServerState) -> Starlette:
    """Build the ASGI application serving both embedding protocols from ``state``.

    Every request is answered with JSON (unknown paths 404, wrong methods 405) and recorded in
    ``state`` just before its response is sent.
    """
    return Starlette(routes=[Route("/{path:path}", _Endpoint(state))])
