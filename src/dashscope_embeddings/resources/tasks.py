"""The native asynchronous task endpoints: ``GET {native}/tasks/{id}`` and its cancel.

Used by the file-based text-embedding-async-v1/v2 models. Statuses: ``PENDING``, ``RUNNING``,
``SUCCEEDED``, ``FAILED``, ``CANCELED``, ``UNKNOWN`` (HTTP 200 for an id that does not exist or
is not visible to the key, so it is final too). Reference:
https://help.aliyun.com/zh/model-studio/text-embedding-batch-api
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field

from dashscope_embeddings._config import Endpoints
from dashscope_embeddings._constants import TASKS_PATH
from dashscope_embeddings._transport import Answer, APIRequest
from dashscope_embeddings.resources._common import as_dict, malformed

__all__ = ["TERMINAL_STATUSES", "TaskObject", "cancel_request", "parse_task", "retrieve_request"]

TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "CANCELED", "UNKNOWN"})


@dataclass(frozen=True)
class TaskObject:
    """An asynchronous task as the service reports it."""

    id: str
    status: str
    result_url: str | None
    code: str | None
    message: str | None
    raw: dict[str, typing.Any] = field(repr=False, compare=False, default_factory=dict)

    @property
    def done(self) -> bool:
        """Whether the status is final."""
        return self.status in TERMINAL_STATUSES


def retrieve_request(endpoints: Endpoints, task_id: str) -> APIRequest:
    """Poll a task."""
    return APIRequest("GET", f"{endpoints.native_base}{TASKS_PATH}/{task_id}", label="task")


def cancel_request(endpoints: Endpoints, task_id: str) -> APIRequest:
    """Cancel a task (only a PENDING one can be)."""
    return APIRequest(
        "POST", f"{endpoints.native_base}{TASKS_PATH}/{task_id}/cancel", label="cancel task"
    )


def parse_task(answer: Answer) -> TaskObject:
    """A task from its JSON (``output.task_id``, ``output.task_status``, ``output.url``)."""
    body = as_dict(answer.payload, "the task answer", answer.request_id)
    output = as_dict(body.get("output"), "output", answer.request_id)
    task_id, status = output.get("task_id"), output.get("task_status")
    if not isinstance(task_id, str) or not isinstance(status, str):
        raise malformed("the task answer has no task_id or task_status", answer.request_id)

    def text(name: str) -> str | None:
        value = output.get(name)
        return value if isinstance(value, str) and value else None

    return TaskObject(
        id=task_id,
        status=status,
        result_url=text("url"),
        code=text("code"),
        message=text("message"),
        raw=body,
    )
