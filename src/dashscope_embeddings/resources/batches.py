"""The OpenAI-compatible Batch API endpoints: requests and parsing.

``POST {compatible}/batches``, ``GET /batches/{id}``, ``GET /batches``,
``POST /batches/{id}/cancel``. Statuses: ``validating``, ``in_progress``, ``finalizing``,
``completed``, ``failed``, ``expired``, ``cancelling``, ``cancelled``. Reference:
https://www.alibabacloud.com/help/en/model-studio/batch-inference
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass, field

from dashscope_embeddings._config import Endpoints
from dashscope_embeddings._constants import BATCHES_PATH
from dashscope_embeddings._transport import Answer, APIRequest
from dashscope_embeddings.resources._common import as_dict, dumps, malformed

__all__ = [
    "TERMINAL_STATUSES",
    "BatchObject",
    "cancel_request",
    "create_request",
    "list_request",
    "parse_batch",
    "parse_batch_list",
    "retrieve_request",
]

TERMINAL_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})


@dataclass(frozen=True)
class BatchObject:
    """A Batch API job as the service reports it (OpenAI batch object)."""

    id: str
    status: str
    input_file_id: str | None
    output_file_id: str | None
    error_file_id: str | None
    request_counts: dict[str, int]
    raw: dict[str, typing.Any] = field(repr=False, compare=False, default_factory=dict)

    @property
    def done(self) -> bool:
        """Whether the status is final (completed, failed, expired or cancelled)."""
        return self.status in TERMINAL_STATUSES


def _url(endpoints: Endpoints, *parts: str) -> str:
    return "/".join([endpoints.compatible_base + BATCHES_PATH, *parts])


def create_request(
    endpoints: Endpoints,
    input_file_id: str,
    *,
    endpoint: str = "/v1/embeddings",
    completion_window: str = "24h",
    metadata: Mapping[str, str] | None = None,
) -> APIRequest:
    """Create a batch over an uploaded input file."""
    body: dict[str, typing.Any] = {
        "input_file_id": input_file_id,
        "endpoint": endpoint,
        "completion_window": completion_window,
    }
    if metadata:
        body["metadata"] = dict(metadata)
    return APIRequest(
        "POST", _url(endpoints), content=dumps(body), idempotent=False, label="create batch"
    )


def retrieve_request(endpoints: Endpoints, batch_id: str) -> APIRequest:
    """Get a batch."""
    return APIRequest("GET", _url(endpoints, batch_id), label=f"batch {batch_id}")


def cancel_request(endpoints: Endpoints, batch_id: str) -> APIRequest:
    """Cancel a batch."""
    return APIRequest("POST", _url(endpoints, batch_id, "cancel"), label=f"cancel {batch_id}")


def list_request(endpoints: Endpoints, *, limit: int = 20, after: str | None = None) -> APIRequest:
    """List batches, newest first."""
    query = f"?limit={int(limit)}" + (f"&after={after}" if after else "")
    return APIRequest("GET", _url(endpoints) + query, label="list batches")


def _batch(raw: object, request_id: str | None) -> BatchObject:
    body = as_dict(raw, "the batch object", request_id)
    batch_id, status = body.get("id"), body.get("status")
    if not isinstance(batch_id, str) or not isinstance(status, str):
        raise malformed("the batch object has no id or status", request_id)
    counts = body.get("request_counts")
    counts = counts if isinstance(counts, dict) else {}

    def text(name: str) -> str | None:
        value = body.get(name)
        return value if isinstance(value, str) and value else None

    return BatchObject(
        id=batch_id,
        status=status,
        input_file_id=text("input_file_id"),
        output_file_id=text("output_file_id"),
        error_file_id=text("error_file_id"),
        request_counts={k: v for k, v in counts.items() if isinstance(v, int)},
        raw=body,
    )


def parse_batch(answer: Answer) -> BatchObject:
    """A batch object from its JSON."""
    return _batch(answer.payload, answer.request_id)


def parse_batch_list(answer: Answer) -> list[BatchObject]:
    """The batches of a list answer."""
    body = as_dict(answer.payload, "the batch list", answer.request_id)
    data = body.get("data")
    if not isinstance(data, list):
        raise malformed("the batch list has no data", answer.request_id)
    return [_batch(item, answer.request_id) for item in data]
