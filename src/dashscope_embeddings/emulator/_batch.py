"""The emulator's files, Batch API and asynchronous task endpoints (not served yet)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

if TYPE_CHECKING:
    from dashscope_embeddings.emulator import _ServerState

__all__ = ["handle", "matches"]


def matches(path: str) -> bool:  # noqa: ARG001
    """Whether this module serves ``path``."""
    return False


async def handle(state: _ServerState, request: Request, raw: bytes) -> Response:
    """Answer one request."""
    raise NotImplementedError
