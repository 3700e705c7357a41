"""The file, Batch API and task endpoints as client namespaces.

``client.files``, ``client.batches`` and ``client.tasks``, and their async twins.

Each method builds its request with an endpoint module (``resources/``) and sends it through
the owning client's one request path, so retries, errors, deadlines and key handling are the
same as for embeddings. Every method takes the per-call options ``timeout``, ``max_retries``
and ``extra_headers``, as ``embed_texts`` does. The sync and async classes have the same
methods with the same parameters and docstrings (a test compares them). Creating a batch and
uploading a file are not idempotent: they are sent again only when the service surely did not
act on them.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Callable, Mapping

from dashscope_embeddings._config import Endpoints
from dashscope_embeddings._options import NOT_GIVEN, NotGiven, RequestOptions, TimeoutTypes
from dashscope_embeddings._transport import Answer, APIRequest
from dashscope_embeddings.resources import batches, files, tasks
from dashscope_embeddings.resources.batches import BatchObject
from dashscope_embeddings.resources.files import FileObject
from dashscope_embeddings.resources.tasks import TaskObject

if typing.TYPE_CHECKING:
    import httpx

__all__ = [
    "AsyncBatches",
    "AsyncFiles",
    "AsyncOwner",
    "AsyncTasks",
    "Batches",
    "Files",
    "SyncOwner",
    "Tasks",
]

T = typing.TypeVar("T")


class SyncOwner(typing.Protocol):
    """What a namespace (or a batch job's runner) needs of a sync client."""

    @property
    def endpoints(self) -> Endpoints: ...

    def _request(
        self,
        request: APIRequest,
        parse: Callable[[Answer], T],
        options: RequestOptions | None = None,
    ) -> T: ...

    @property
    def _http(self) -> httpx.Client:
        """The connection pool (for a file task's signed link, fetched without the key)."""
        ...


class AsyncOwner(typing.Protocol):
    """What a namespace (or a batch job's runner) needs of an async client."""

    @property
    def endpoints(self) -> Endpoints: ...

    async def _request(
        self,
        request: APIRequest,
        parse: Callable[[Answer], T],
        options: RequestOptions | None = None,
    ) -> T: ...

    async def _http_client(self) -> httpx.AsyncClient:
        """The running loop's connection pool (see ``SyncOwner._http``)."""
        ...


def _read(content: bytes | str | os.PathLike[str], filename: str | None) -> tuple[bytes, str]:
    if isinstance(content, bytes):
        return content, filename or "input.jsonl"
    with open(content, "rb") as handle:
        return handle.read(), filename or os.path.basename(os.fspath(content))


def _options(
    timeout: TimeoutTypes | NotGiven,
    max_retries: int | NotGiven,
    extra_headers: Mapping[str, str] | None,
) -> RequestOptions:
    return RequestOptions(timeout=timeout, max_retries=max_retries, extra_headers=extra_headers)


class Files:
    """``client.files``: upload, list, get, download and delete stored files.

    Every method also takes ``timeout`` (seconds per attempt; for an upload counted from
    when the file is sent), ``max_retries`` and ``extra_headers``, as ``embed_texts`` does.
    """

    def __init__(self, owner: SyncOwner) -> None:
        self._owner = owner

    def upload(
        self,
        content: bytes | str | os.PathLike[str],
        *,
        filename: str | None = None,
        purpose: str = "batch",
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> FileObject:
        """Upload bytes or a file at a path (JSON lines for the Batch API).

        Sent once: when its answer is lost or late, the service may have stored the file, so
        it is not sent again; look for it with :meth:`list` (name and size) before retrying.
        """
        data, name = _read(content, filename)
        request = files.upload_request(self._owner.endpoints, data, filename=name, purpose=purpose)
        return self._owner._request(
            request, files.parse_file, _options(timeout, max_retries, extra_headers)
        )

    def retrieve(
        self,
        file_id: str,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> FileObject:
        """A stored file's metadata."""
        return self._owner._request(
            files.retrieve_request(self._owner.endpoints, file_id),
            files.parse_file,
            _options(timeout, max_retries, extra_headers),
        )

    def list(
        self,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> list[FileObject]:
        """Every stored file."""
        return self._owner._request(
            files.list_request(self._owner.endpoints),
            files.parse_file_list,
            _options(timeout, max_retries, extra_headers),
        )

    def content(
        self,
        file_id: str,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> bytes:
        """A stored file's bytes (e.g. a batch's output file)."""
        return self._owner._request(
            files.content_request(self._owner.endpoints, file_id),
            files.parse_content,
            _options(timeout, max_retries, extra_headers),
        )

    def delete(
        self,
        file_id: str,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> bool:
        """Delete a stored file; ``True`` when the service confirms."""
        return self._owner._request(
            files.delete_request(self._owner.endpoints, file_id),
            files.parse_deleted,
            _options(timeout, max_retries, extra_headers),
        )


class AsyncFiles:
    """Async ``client.files``: upload, list, get, download and delete stored files.

    Every method also takes ``timeout`` (seconds per attempt; for an upload counted from
    when the file is sent), ``max_retries`` and ``extra_headers``, as ``embed_texts`` does.
    """

    def __init__(self, owner: AsyncOwner) -> None:
        self._owner = owner

    async def upload(
        self,
        content: bytes | str | os.PathLike[str],
        *,
        filename: str | None = None,
        purpose: str = "batch",
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> FileObject:
        """Upload bytes or a file at a path (JSON lines for the Batch API).

        Sent once: when its answer is lost or late, the service may have stored the file, so
        it is not sent again; look for it with :meth:`list` (name and size) before retrying.
        """
        data, name = _read(content, filename)
        request = files.upload_request(self._owner.endpoints, data, filename=name, purpose=purpose)
        return await self._owner._request(
            request, files.parse_file, _options(timeout, max_retries, extra_headers)
        )

    async def retrieve(
        self,
        file_id: str,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> FileObject:
        """A stored file's metadata."""
        return await self._owner._request(
            files.retrieve_request(self._owner.endpoints, file_id),
            files.parse_file,
            _options(timeout, max_retries, extra_headers),
        )

    async def list(
        self,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> list[FileObject]:
        """Every stored file."""
        return await self._owner._request(
            files.list_request(self._owner.endpoints),
            files.parse_file_list,
            _options(timeout, max_retries, extra_headers),
        )

    async def content(
        self,
        file_id: str,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> bytes:
        """A stored file's bytes (e.g. a batch's output file)."""
        return await self._owner._request(
            files.content_request(self._owner.endpoints, file_id),
            files.parse_content,
            _options(timeout, max_retries, extra_headers),
        )

    async def delete(
        self,
        file_id: str,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> bool:
        """Delete a stored file; ``True`` when the service confirms."""
        return await self._owner._request(
            files.delete_request(self._owner.endpoints, file_id),
            files.parse_deleted,
            _options(timeout, max_retries, extra_headers),
        )


class Batches:
    """``client.batches``: create, get, list and cancel Batch API jobs.

    Every method also takes ``timeout`` (seconds per attempt), ``max_retries`` and
    ``extra_headers``, as ``embed_texts`` does.
    """

    def __init__(self, owner: SyncOwner) -> None:
        self._owner = owner

    def create(
        self,
        input_file_id: str,
        *,
        endpoint: str = "/v1/embeddings",
        completion_window: str = "24h",
        metadata: Mapping[str, str] | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> BatchObject:
        """Start a batch over an uploaded input file (billed; never sent twice)."""
        request = batches.create_request(
            self._owner.endpoints,
            input_file_id,
            endpoint=endpoint,
            completion_window=completion_window,
            metadata=metadata,
        )
        return self._owner._request(
            request, batches.parse_batch, _options(timeout, max_retries, extra_headers)
        )

    def retrieve(
        self,
        batch_id: str,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> BatchObject:
        """A batch's status, counts and file ids."""
        return self._owner._request(
            batches.retrieve_request(self._owner.endpoints, batch_id),
            batches.parse_batch,
            _options(timeout, max_retries, extra_headers),
        )

    def cancel(
        self,
        batch_id: str,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> BatchObject:
        """Ask the service to cancel a batch."""
        return self._owner._request(
            batches.cancel_request(self._owner.endpoints, batch_id),
            batches.parse_batch,
            _options(timeout, max_retries, extra_headers),
        )

    def list(
        self,
        *,
        limit: int = 20,
        after: str | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> list[BatchObject]:
        """Batches, newest first."""
        return self._owner._request(
            batches.list_request(self._owner.endpoints, limit=limit, after=after),
            batches.parse_batch_list,
            _options(timeout, max_retries, extra_headers),
        )


class AsyncBatches:
    """Async ``client.batches``: create, get, list and cancel Batch API jobs.

    Every method also takes ``timeout`` (seconds per attempt), ``max_retries`` and
    ``extra_headers``, as ``embed_texts`` does.
    """

    def __init__(self, owner: AsyncOwner) -> None:
        self._owner = owner

    async def create(
        self,
        input_file_id: str,
        *,
        endpoint: str = "/v1/embeddings",
        completion_window: str = "24h",
        metadata: Mapping[str, str] | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> BatchObject:
        """Start a batch over an uploaded input file (billed; never sent twice)."""
        request = batches.create_request(
            self._owner.endpoints,
            input_file_id,
            endpoint=endpoint,
            completion_window=completion_window,
            metadata=metadata,
        )
        return await self._owner._request(
            request, batches.parse_batch, _options(timeout, max_retries, extra_headers)
        )

    async def retrieve(
        self,
        batch_id: str,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> BatchObject:
        """A batch's status, counts and file ids."""
        return await self._owner._request(
            batches.retrieve_request(self._owner.endpoints, batch_id),
            batches.parse_batch,
            _options(timeout, max_retries, extra_headers),
        )

    async def cancel(
        self,
        batch_id: str,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> BatchObject:
        """Ask the service to cancel a batch."""
        return await self._owner._request(
            batches.cancel_request(self._owner.endpoints, batch_id),
            batches.parse_batch,
            _options(timeout, max_retries, extra_headers),
        )

    async def list(
        self,
        *,
        limit: int = 20,
        after: str | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> list[BatchObject]:
        """Batches, newest first."""
        return await self._owner._request(
            batches.list_request(self._owner.endpoints, limit=limit, after=after),
            batches.parse_batch_list,
            _options(timeout, max_retries, extra_headers),
        )


class Tasks:
    """``client.tasks``: poll and cancel asynchronous tasks.

    Every method also takes ``timeout`` (seconds per attempt), ``max_retries`` and
    ``extra_headers``, as ``embed_texts`` does.
    """

    def __init__(self, owner: SyncOwner) -> None:
        self._owner = owner

    def retrieve(
        self,
        task_id: str,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> TaskObject:
        """A task's status (``UNKNOWN`` for an id the key cannot see)."""
        return self._owner._request(
            tasks.retrieve_request(self._owner.endpoints, task_id),
            tasks.parse_task,
            _options(timeout, max_retries, extra_headers),
        )

    def cancel(
        self,
        task_id: str,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> TaskObject:
        """Cancel a PENDING task."""
        return self._owner._request(
            tasks.cancel_request(self._owner.endpoints, task_id),
            tasks.parse_task,
            _options(timeout, max_retries, extra_headers),
        )


class AsyncTasks:
    """Async ``client.tasks``: poll and cancel asynchronous tasks.

    Every method also takes ``timeout`` (seconds per attempt), ``max_retries`` and
    ``extra_headers``, as ``embed_texts`` does.
    """

    def __init__(self, owner: AsyncOwner) -> None:
        self._owner = owner

    async def retrieve(
        self,
        task_id: str,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> TaskObject:
        """A task's status (``UNKNOWN`` for an id the key cannot see)."""
        return await self._owner._request(
            tasks.retrieve_request(self._owner.endpoints, task_id),
            tasks.parse_task,
            _options(timeout, max_retries, extra_headers),
        )

    async def cancel(
        self,
        task_id: str,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
    ) -> TaskObject:
        """Cancel a PENDING task."""
        return await self._owner._request(
            tasks.cancel_request(self._owner.endpoints, task_id),
            tasks.parse_task,
            _options(timeout, max_retries, extra_headers),
        )
