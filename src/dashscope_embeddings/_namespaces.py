"""The file, Batch API and task endpoints as client namespaces.

``client.files``, ``client.batches`` and ``client.tasks``, and their async twins.

Each method builds its request with an endpoint module (``resources/``) and sends it through
the owning client's one request path, so retries, errors, deadlines and key handling are the
same as for embeddings. Creating a batch is not idempotent: it is retried only when the
service surely did not act on it.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Callable, Mapping

from dashscope_embeddings._config import Endpoints
from dashscope_embeddings._transport import Answer, APIRequest
from dashscope_embeddings.resources import batches, files, tasks
from dashscope_embeddings.resources.batches import BatchObject
from dashscope_embeddings.resources.files import FileObject
from dashscope_embeddings.resources.tasks import TaskObject

__all__ = ["AsyncBatches", "AsyncFiles", "AsyncTasks", "Batches", "Files", "Tasks"]

T = typing.TypeVar("T")


class _SyncOwner(typing.Protocol):
    endpoints: Endpoints

    def _request(self, request: APIRequest, parse: Callable[[Answer], T]) -> T: ...


class _AsyncOwner(typing.Protocol):
    endpoints: Endpoints

    async def _request(self, request: APIRequest, parse: Callable[[Answer], T]) -> T: ...


def _read(content: bytes | str | os.PathLike[str], filename: str | None) -> tuple[bytes, str]:
    if isinstance(content, bytes):
        return content, filename or "input.jsonl"
    with open(content, "rb") as handle:
        return handle.read(), filename or os.path.basename(os.fspath(content))


class Files:
    """``client.files``: upload, get, download and delete stored files."""

    def __init__(self, owner: _SyncOwner) -> None:
        self._owner = owner

    def upload(
        self,
        content: bytes | str | os.PathLike[str],
        *,
        filename: str | None = None,
        purpose: str = "batch",
    ) -> FileObject:
        """Upload bytes or a file at a path (JSON lines for the Batch API)."""
        data, name = _read(content, filename)
        request = files.upload_request(self._owner.endpoints, data, filename=name, purpose=purpose)
        return self._owner._request(request, files.parse_file)

    def retrieve(self, file_id: str) -> FileObject:
        """A stored file's metadata."""
        return self._owner._request(
            files.retrieve_request(self._owner.endpoints, file_id), files.parse_file
        )

    def list(self) -> list[FileObject]:
        """Every stored file."""
        return self._owner._request(
            files.list_request(self._owner.endpoints), files.parse_file_list
        )

    def content(self, file_id: str) -> bytes:
        """A stored file's bytes (e.g. a batch's output file)."""
        return self._owner._request(
            files.content_request(self._owner.endpoints, file_id), files.parse_content
        )

    def delete(self, file_id: str) -> bool:
        """Delete a stored file; ``True`` when the service confirms."""
        return self._owner._request(
            files.delete_request(self._owner.endpoints, file_id), files.parse_deleted
        )


class AsyncFiles:
    """Async ``client.files``; see :class:`Files`."""

    def __init__(self, owner: _AsyncOwner) -> None:
        self._owner = owner

    async def upload(
        self,
        content: bytes | str | os.PathLike[str],
        *,
        filename: str | None = None,
        purpose: str = "batch",
    ) -> FileObject:
        """Upload bytes or a file at a path."""
        data, name = _read(content, filename)
        request = files.upload_request(self._owner.endpoints, data, filename=name, purpose=purpose)
        return await self._owner._request(request, files.parse_file)

    async def retrieve(self, file_id: str) -> FileObject:
        """A stored file's metadata."""
        return await self._owner._request(
            files.retrieve_request(self._owner.endpoints, file_id), files.parse_file
        )

    async def list(self) -> list[FileObject]:
        """Every stored file."""
        return await self._owner._request(
            files.list_request(self._owner.endpoints), files.parse_file_list
        )

    async def content(self, file_id: str) -> bytes:
        """A stored file's bytes."""
        return await self._owner._request(
            files.content_request(self._owner.endpoints, file_id), files.parse_content
        )

    async def delete(self, file_id: str) -> bool:
        """Delete a stored file."""
        return await self._owner._request(
            files.delete_request(self._owner.endpoints, file_id), files.parse_deleted
        )


class Batches:
    """``client.batches``: create, get, list and cancel Batch API jobs."""

    def __init__(self, owner: _SyncOwner) -> None:
        self._owner = owner

    def create(
        self,
        input_file_id: str,
        *,
        endpoint: str = "/v1/embeddings",
        completion_window: str = "24h",
        metadata: Mapping[str, str] | None = None,
    ) -> BatchObject:
        """Start a batch over an uploaded input file (billed; never sent twice)."""
        request = batches.create_request(
            self._owner.endpoints,
            input_file_id,
            endpoint=endpoint,
            completion_window=completion_window,
            metadata=metadata,
        )
        return self._owner._request(request, batches.parse_batch)

    def retrieve(self, batch_id: str) -> BatchObject:
        """A batch's status, counts and file ids."""
        return self._owner._request(
            batches.retrieve_request(self._owner.endpoints, batch_id), batches.parse_batch
        )

    def cancel(self, batch_id: str) -> BatchObject:
        """Ask the service to cancel a batch."""
        return self._owner._request(
            batches.cancel_request(self._owner.endpoints, batch_id), batches.parse_batch
        )

    def list(self, *, limit: int = 20, after: str | None = None) -> list[BatchObject]:
        """Batches, newest first."""
        return self._owner._request(
            batches.list_request(self._owner.endpoints, limit=limit, after=after),
            batches.parse_batch_list,
        )


class AsyncBatches:
    """Async ``client.batches``; see :class:`Batches`."""

    def __init__(self, owner: _AsyncOwner) -> None:
        self._owner = owner

    async def create(
        self,
        input_file_id: str,
        *,
        endpoint: str = "/v1/embeddings",
        completion_window: str = "24h",
        metadata: Mapping[str, str] | None = None,
    ) -> BatchObject:
        """Start a batch over an uploaded input file."""
        request = batches.create_request(
            self._owner.endpoints,
            input_file_id,
            endpoint=endpoint,
            completion_window=completion_window,
            metadata=metadata,
        )
        return await self._owner._request(request, batches.parse_batch)

    async def retrieve(self, batch_id: str) -> BatchObject:
        """A batch's status, counts and file ids."""
        return await self._owner._request(
            batches.retrieve_request(self._owner.endpoints, batch_id), batches.parse_batch
        )

    async def cancel(self, batch_id: str) -> BatchObject:
        """Ask the service to cancel a batch."""
        return await self._owner._request(
            batches.cancel_request(self._owner.endpoints, batch_id), batches.parse_batch
        )

    async def list(self, *, limit: int = 20, after: str | None = None) -> list[BatchObject]:
        """Batches, newest first."""
        return await self._owner._request(
            batches.list_request(self._owner.endpoints, limit=limit, after=after),
            batches.parse_batch_list,
        )


class Tasks:
    """``client.tasks``: poll and cancel asynchronous tasks."""

    def __init__(self, owner: _SyncOwner) -> None:
        self._owner = owner

    def retrieve(self, task_id: str) -> TaskObject:
        """A task's status (``UNKNOWN`` for an id the key cannot see)."""
        return self._owner._request(
            tasks.retrieve_request(self._owner.endpoints, task_id), tasks.parse_task
        )

    def cancel(self, task_id: str) -> TaskObject:
        """Cancel a PENDING task."""
        return self._owner._request(
            tasks.cancel_request(self._owner.endpoints, task_id), tasks.parse_task
        )


class AsyncTasks:
    """Async ``client.tasks``; see :class:`Tasks`."""

    def __init__(self, owner: _AsyncOwner) -> None:
        self._owner = owner

    async def retrieve(self, task_id: str) -> TaskObject:
        """A task's status."""
        return await self._owner._request(
            tasks.retrieve_request(self._owner.endpoints, task_id), tasks.parse_task
        )

    async def cancel(self, task_id: str) -> TaskObject:
        """Cancel a PENDING task."""
        return await self._owner._request(
            tasks.cancel_request(self._owner.endpoints, task_id), tasks.parse_task
        )
