"""The emulator's multimodal embedding endpoint (not served yet: answers 404 like any path)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

if TYPE_CHECKING:
    from dashscope_embeddings.emulator import _ServerState

__all__ = ["MULTIMODAL_PATH", "handle", "matches"]

MULTIMODAL_PATH = "/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding"


def matches(path: str) -> bool:  # noqa: ARG001
    """Whether this module serves ``path``."""
    return False


async def handle(state: _ServerState, request: Request, raw: bytes) -> Response:
    """Answer one request."""
    raise NotImplementedError
