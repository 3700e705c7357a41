"""How a job's steps are run: each step yields typed requests and receives their results.

A step yields a :class:`Send` (a request of an endpoint module and its parser) or a
:class:`Sleep`; the runner sends the request through the client's one request path (retries,
deadlines, errors and key handling as for embeddings) and sends the parsed result back in. The
sync and async jobs differ only here: :func:`run_sync` uses a ``DashScopeClient``,
:func:`run_async` awaits an ``AsyncDashScopeClient``. A request's exception is raised inside
the step at its ``yield``, so a step handles errors as if it made the call.
"""

from __future__ import annotations

import asyncio
import time
import typing
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass

from dashscope_embeddings._config import Endpoints
from dashscope_embeddings._transport import Answer, APIRequest
from dashscope_embeddings.resources import batches, files

if typing.TYPE_CHECKING:
    from dashscope_embeddings._namespaces import AsyncOwner, SyncOwner
    from dashscope_embeddings.resources.batches import BatchObject
    from dashscope_embeddings.resources.files import FileObject

__all__ = [
    "Send",
    "Sleep",
    "Step",
    "cancel_batch",
    "create_batch",
    "download",
    "list_batches",
    "list_files",
    "retrieve_batch",
    "run_async",
    "run_sync",
    "upload",
]

T = typing.TypeVar("T")


@dataclass(frozen=True)
class Send(typing.Generic[T]):
    """One request: built for the client's endpoints, answered with ``parse``'s result."""

    build: Callable[[Endpoints], APIRequest]
    parse: Callable[[Answer], T]


@dataclass(frozen=True)
class Sleep:
    """A pause of ``seconds`` between polls or before an upload is tried again."""

    seconds: float


Step = Generator["Send[typing.Any] | Sleep", typing.Any, T]


def upload(content: bytes, filename: str) -> Send[FileObject]:
    """Upload a part's input file (not idempotent: see ``resources.files.upload_request``)."""
    return Send(
        lambda ep: files.upload_request(ep, content, filename=filename, purpose="batch"),
        files.parse_file,
    )


def list_files() -> Send[list[FileObject]]:
    """Every stored file."""
    return Send(files.list_request, files.parse_file_list)


def download(file_id: str) -> Send[bytes]:
    """A stored file's bytes."""
    return Send(lambda ep: files.content_request(ep, file_id), files.parse_content)


def create_batch(
    file_id: str, *, completion_window: str, metadata: Mapping[str, str]
) -> Send[BatchObject]:
    """Create a batch over an uploaded file (not idempotent)."""
    return Send(
        lambda ep: batches.create_request(
            ep, file_id, completion_window=completion_window, metadata=metadata
        ),
        batches.parse_batch,
    )


def retrieve_batch(batch_id: str) -> Send[BatchObject]:
    """A batch's status."""
    return Send(lambda ep: batches.retrieve_request(ep, batch_id), batches.parse_batch)


def cancel_batch(batch_id: str) -> Send[BatchObject]:
    """Ask the service to cancel a batch."""
    return Send(lambda ep: batches.cancel_request(ep, batch_id), batches.parse_batch)


def list_batches(*, limit: int, after: str | None) -> Send[list[BatchObject]]:
    """A page of batches, newest first."""
    return Send(
        lambda ep: batches.list_request(ep, limit=limit, after=after), batches.parse_batch_list
    )


def run_sync(client: SyncOwner, step: Step[T]) -> T:
    """Run ``step`` with a sync client; a request's exception is raised inside the step."""
    value: object = None
    error: Exception | None = None
    while True:
        try:
            call = step.throw(error) if error is not None else step.send(value)
        except StopIteration as stop:
            return typing.cast(T, stop.value)
        value, error = None, None
        try:
            if isinstance(call, Sleep):
                time.sleep(call.seconds)
            else:
                value = client._request(call.build(client.endpoints), call.parse)
        except Exception as exc:
            error = exc


async def run_async(client: AsyncOwner, step: Step[T]) -> T:
    """Run ``step`` with an async client; see :func:`run_sync`."""
    value: object = None
    error: Exception | None = None
    while True:
        try:
            call = step.throw(error) if error is not None else step.send(value)
        except StopIteration as stop:
            return typing.cast(T, stop.value)
        value, error = None, None
        try:
            if isinstance(call, Sleep):
                await asyncio.sleep(call.seconds)
            else:
                value = await client._request(call.build(client.endpoints), call.parse)
        except Exception as exc:
            error = exc
