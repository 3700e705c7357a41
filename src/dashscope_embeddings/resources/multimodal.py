"""The multimodal embedding endpoint: inputs, checks, request planning and answer parsing.

``POST {native}/services/embeddings/multimodal-embedding/multimodal-embedding``. Reference:
https://www.alibabacloud.com/help/en/model-studio/multimodal-embedding-api-reference
"""

from __future__ import annotations

import typing
from collections.abc import Mapping, Sequence

from dashscope_embeddings._config import Endpoints
from dashscope_embeddings._registry import ModelSpec
from dashscope_embeddings._tokens import TokenCounter

if typing.TYPE_CHECKING:
    from dashscope_embeddings._fanout import CallPlan

__all__ = ["plan_multimodal_call"]


class MultimodalCall(typing.Protocol):
    """A planned multimodal call: a ``CallPlan`` plus ``refs``, inputs -> units sent."""

    refs: list[list[tuple[int, float]]]


def plan_multimodal_call(
    inputs: Sequence[object],
    *,
    spec: ModelSpec,
    endpoints: Endpoints,
    dimension: int | None,
    fps: float | None,
    instruct: str | None,
    token_counter: TokenCounter | None,
    extra_body: Mapping[str, typing.Any] | None = None,
) -> CallPlan:
    """Check every input against the model's limits and plan the requests (not built yet)."""
    raise NotImplementedError("multimodal embeddings are not built yet")
