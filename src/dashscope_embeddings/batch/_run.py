"""How a job's steps are run: each step yields typed requests and receives their results.

A step yields a :class:`Send` (a request of an endpoint module and its parser) or a
:class:`Sleep`; the runner sends the request through the client's one request path (retries,
deadlines, errors and key handling as for embeddings) and sends the parsed result back in. Two
more kinds serve file tasks: a :class:`Fetch` (a signed link streamed to a file, without the
API key, through the client's HTTP pool) and a :class:`Call` (the user's own callable, such as
an upload; awaited by the async runner when it returns an awaitable). The sync and async jobs
differ only here: :func:`run_sync` uses a ``DashScopeClient``, :func:`run_async` awaits an
``AsyncDashScopeClient``. A request's exception is raised inside the step at its ``yield``, so
a step handles errors as if it made the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import time
import typing
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass
from pathlib import Path

from dashscope_embeddings._config import Endpoints
from dashscope_embeddings._transport import Answer, APIRequest
from dashscope_embeddings.resources import batches, file_tasks, files, tasks

if typing.TYPE_CHECKING:
    import httpx

    from dashscope_embeddings._namespaces import AsyncOwner, SyncOwner
    from dashscope_embeddings.resources.batches import BatchObject
    from dashscope_embeddings.resources.files import FileObject
    from dashscope_embeddings.resources.tasks import TaskObject

__all__ = [
    "Call",
    "Fetch",
    "Send",
    "Sleep",
    "Step",
    "cancel_batch",
    "cancel_task",
    "create_batch",
    "create_file_task",
    "download",
    "fetch_async",
    "fetch_sync",
    "list_batches",
    "list_files",
    "retrieve_batch",
    "retrieve_task",
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


@dataclass(frozen=True)
class Fetch:
    """GET ``url`` without the API key (a signed link), a 200 body streamed to ``target``.

    Answered with the HTTP status; the file is replaced atomically, and only on a 200. A
    connection failure (``httpx.TransportError``) is raised inside the step.
    """

    url: str
    target: Path


@dataclass(frozen=True)
class Call(typing.Generic[T]):
    """``func(*args)``, a callable of the user's; the async runner awaits an awaitable result."""

    func: Callable[..., T | Awaitable[T]]
    args: tuple[typing.Any, ...] = ()


Step = Generator["Send[typing.Any] | Sleep | Fetch | Call[typing.Any]", typing.Any, T]


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


def create_file_task(model: str, url: str, text_type: str) -> Send[TaskObject]:
    """Create a file task over the input at ``url`` (not idempotent: it is billed)."""
    return Send(
        lambda ep: file_tasks.create_request(ep, model, url, text_type), tasks.parse_task
    )


def retrieve_task(task_id: str) -> Send[TaskObject]:
    """A task's status."""
    return Send(lambda ep: tasks.retrieve_request(ep, task_id), tasks.parse_task)


def cancel_task(task_id: str) -> Send[None]:
    """Ask the service to cancel a task (its answer carries only a request id)."""
    return Send(lambda ep: tasks.cancel_request(ep, task_id), _ignore)


def _ignore(answer: Answer) -> None:
    del answer


@contextlib.contextmanager
def _writing(target: Path) -> typing.Iterator[typing.BinaryIO]:
    """A file to write ``target``'s new content into; it replaces ``target`` only on success."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def fetch_sync(http: httpx.Client, call: Fetch) -> int:
    """Run a :class:`Fetch` with a sync pool; the HTTP status."""
    with http.stream("GET", call.url, follow_redirects=True) as response:
        if response.status_code != 200:
            response.read()
            return response.status_code
        with _writing(call.target) as handle:
            for chunk in response.iter_bytes():
                handle.write(chunk)
    return 200


async def fetch_async(http: httpx.AsyncClient, call: Fetch) -> int:
    """Run a :class:`Fetch` with an async pool; see :func:`fetch_sync`.

    The chunks are written with blocking calls, as they arrive (each is small).
    """
    async with http.stream("GET", call.url, follow_redirects=True) as response:
        if response.status_code != 200:
            await response.aread()
            return response.status_code
        with _writing(call.target) as handle:
            async for chunk in response.aiter_bytes():
                handle.write(chunk)
    return 200


def run_sync(
    client: SyncOwner, step: Step[T], sleep: Callable[[float], object] | None = None
) -> T:
    """Run ``step`` with a sync client; a request's exception is raised inside the step.

    ``sleep`` makes the pauses (default ``time.sleep``).
    """
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
                (sleep or time.sleep)(call.seconds)
            elif isinstance(call, Fetch):
                value = fetch_sync(client._http, call)
            elif isinstance(call, Call):
                value = call.func(*call.args)
            else:
                value = client._request(call.build(client.endpoints), call.parse)
        except Exception as exc:
            error = exc


async def run_async(
    client: AsyncOwner, step: Step[T], sleep: Callable[[float], Awaitable[object]] | None = None
) -> T:
    """Run ``step`` with an async client; see :func:`run_sync` (``sleep``: ``asyncio.sleep``)."""
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
                await (sleep or asyncio.sleep)(call.seconds)
            elif isinstance(call, Fetch):
                value = await fetch_async(await client._http_client(), call)
            elif isinstance(call, Call):
                value = call.func(*call.args)
                if inspect.isawaitable(value):
                    value = await value
            else:
                value = await client._request(call.build(client.endpoints), call.parse)
        except Exception as exc:
            error = exc
