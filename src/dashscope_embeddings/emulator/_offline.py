"""The emulator's files, Batch API and asynchronous task endpoints, and their controller.

Served here ([ref 7a], [ref 7b]), all behind ``Authorization: Bearer`` except the
result link of a task, which stands in for a signed OSS URL:

* ``/compatible-mode/v1/files[/{id}[/content]]``: upload, list, get, download, delete
  (:mod:`._files`).
* ``/compatible-mode/v1/batches[/{id}[/cancel]]``: create, list, get, cancel
  (:mod:`._batches`).
* ``/api/v1/tasks[/{id}[/cancel]]`` and ``/oss/dashscope-result/{id}/result.txt.gz``: the
  asynchronous text-embedding tasks (:mod:`._tasks`); :func:`create_task` answers their create
  call for the text path.

Errors take each protocol's shape: compatible ``{"error": {"message", "type", "param",
"code"}, "id", "request_id"}`` under ``/compatible-mode/``, native ``{"request_id", "code",
"message"}`` under ``/api/v1/``. Unknown file and batch ids are 404 ``not_found``.

Tests drive everything through :class:`BatchController` (``Emulator.batch``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from dashscope_embeddings.emulator import _batches, _files, _tasks
from dashscope_embeddings.emulator._errors import ServiceError
from dashscope_embeddings.emulator._state import ServerState
from dashscope_embeddings.emulator._store import (
    LineFailure,
    error_response,
    get_store,
    not_found,
    require_auth,
)

__all__ = ["BatchController", "BatchCounters", "controller", "create_task", "handle", "matches"]

Json = dict[str, Any]

_PREFIXES = (_files.FILES_PATH, _batches.BATCHES_PATH, _tasks.TASKS_PATH)


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def matches(path: str) -> bool:
    """Whether this module serves ``path``."""
    return any(_under(path, p) for p in _PREFIXES) or path.startswith(_tasks.RESULT_PREFIX)


async def handle(state: ServerState, request: Request, raw: bytes) -> Response:
    """Answer one request on a path for which :func:`matches` is true."""
    store = get_store(state)
    path = request.url.path
    if path.startswith(_tasks.RESULT_PREFIX):
        return _tasks.handle_result(store, request)
    protocol = "native" if _under(path, _tasks.TASKS_PATH) else "compatible"
    try:
        require_auth(state, request)
        if _under(path, _files.FILES_PATH):
            return _files.handle(state, store, request, raw)
        if _under(path, _batches.BATCHES_PATH):
            return _batches.handle(state, store, request, raw)
        if _under(path, _tasks.TASKS_PATH):
            return _tasks.handle(state, store, request)
        raise not_found(f"Not found: {path}")
    except ServiceError as error:
        return error_response(error, request, protocol)


def create_task(
    state: ServerState, body: Json, *, async_header: bool, request_id: str
) -> tuple[int, Json, dict[str, str]] | None:
    """Answer the create call of an asynchronous task ([ref 7a]), for the native text path.

    Returns ``None`` unless ``async_header`` (``X-DashScope-Async: enable``) is set and
    ``body["model"]`` is an ``async_task`` model, so the text path goes on as before; otherwise
    ``(200, {"request_id", "output": {"task_id", "task_status": "PENDING"}}, {})``.

    Raises:
        ServiceError: 400 ``InvalidParameter`` for a malformed body (render it natively).
    """
    return _tasks.create_task(
        state, get_store(state), body, async_header=async_header, request_id=request_id
    )


@dataclass(frozen=True)
class BatchCounters:
    """A snapshot of what the files, batches and tasks endpoints did.

    Attributes:
        uploads: Files accepted by ``POST /files``.
        bytes_uploaded: Their total size.
        batches_created: Batches accepted by ``POST /batches`` (including ones that then fail
            validation).
        lines_billed: Successful lines of finished batches (completed, expired, cancelled).
        tokens_billed: Their ``usage.total_tokens``.
        content_downloads: Successful ``GET /files/{id}/content`` calls.
        tasks_created: Asynchronous tasks created.
        task_tokens_billed: Tokens of succeeded tasks.
        result_downloads: Successful downloads of task result files.
    """

    uploads: int
    bytes_uploaded: int
    batches_created: int
    lines_billed: int
    tokens_billed: int
    content_downloads: int
    tasks_created: int
    task_tokens_billed: int
    result_downloads: int


class BatchController:
    """Settings, injected outcomes and counters of the files, Batch API and task endpoints.

    Obtained as ``Emulator.batch``; every method is thread-safe and takes effect at once.
    Settings and injections persist until :meth:`reset`.

    * :meth:`configure`: processing delay and the upload limits.
    * :meth:`fail_lines`: lines that fail (by ``custom_id`` or by a marker in their text).
    * :meth:`expire_next`, :meth:`fail_next`: the next batch expires / fails validation.
    * :meth:`advance`: move the emulator's batch and task clock forward (no sleeping).
    * :meth:`register_url`, :meth:`fail_next_task`, :meth:`create_task`: asynchronous tasks.
    * :attr:`counters`: a frozen :class:`BatchCounters` snapshot; :meth:`reset` clears all.

    >>> with Emulator(api_key="sk-test") as emu:  # doctest: +SKIP
    ...     emu.batch.configure(delay_s=2.0, max_lines_per_file=100)
    ...     emu.batch.fail_lines(custom_ids=["doc-7"], status=500, code="InternalError")
    ...     emu.batch.expire_next(completed_fraction=0.5)
    """

    def __init__(self, state: ServerState) -> None:
        self._state = state
        self._store = get_store(state)

    def configure(
        self,
        *,
        delay_s: float | None = None,
        max_lines_per_file: int | None = None,
        max_file_bytes: int | None = None,
        max_line_bytes: int | None = None,
    ) -> None:
        """Change settings; ``None`` keeps the current value.

        Args:
            delay_s: Seconds from creation until a batch completes or a task ends (default
                0: done at the first read). Applies to batches and tasks created afterwards.
                A batch is ``validating`` for the first 10%, ``in_progress`` until 90%, then
                ``finalizing``; a task is ``PENDING`` for the first 25%, then ``RUNNING``.
            max_lines_per_file: Lines per uploaded file (default 50,000, [UNCONFIRMED]).
            max_file_bytes: Bytes per uploaded file (default 500 MB, [UNCONFIRMED]).
            max_line_bytes: Bytes per line (default 6 MB, [UNCONFIRMED]).

        Raises:
            ValueError: If a value is negative (delay) or below 1 (limits).
        """
        if delay_s is not None and delay_s < 0:
            raise ValueError("delay_s must be >= 0")
        for name, value in (
            ("max_lines_per_file", max_lines_per_file),
            ("max_file_bytes", max_file_bytes),
            ("max_line_bytes", max_line_bytes),
        ):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1")
        with self._store.lock:
            if delay_s is not None:
                self._store.delay_s = float(delay_s)
            if max_lines_per_file is not None:
                self._store.max_lines_per_file = max_lines_per_file
            if max_file_bytes is not None:
                self._store.max_file_bytes = max_file_bytes
            if max_line_bytes is not None:
                self._store.max_line_bytes = max_line_bytes

    def fail_lines(
        self,
        *,
        custom_ids: Iterable[str] = (),
        marker: str | None = None,
        status: int = 500,
        code: str = "InternalError",
        message: str = "An internal error has occured, please try again later.",
    ) -> None:
        """Make lines of batches created afterwards fail with ``status`` / ``code``.

        A failing line goes to the batch's error file as ``{"custom_id", "response":
        {"status_code": status, "request_id", "body": <compatible error body>}, "error":
        null}`` and counts as failed; the rest of the batch runs normally.

        Args:
            custom_ids: Lines with these ``custom_id`` fail.
            marker: Lines whose ``body.input`` text contains this string fail.
            status: HTTP status of the failed line's response.
            code: Error code (also the ``type``) in the line's error body.
            message: Error message in the line's error body.

        Raises:
            ValueError: If ``status`` is not an error status, or nothing is selected.
        """
        ids = list(custom_ids)
        if not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        if not ids and not marker:
            raise ValueError("give custom_ids and/or a non-empty marker")
        failure = LineFailure(status, code, message)
        with self._store.lock:
            for custom_id in ids:
                self._store.failures_by_id[custom_id] = failure
            if marker:
                self._store.failures_by_marker.append((marker, failure))

    def expire_next(self, completed_fraction: float = 0.5) -> None:
        """Make the next batch created expire when it would have completed.

        The first ``floor(completed_fraction * lines)`` lines (in processing order) are done
        and kept in the output / error files; the others are counted failed and written to the
        error file with ``"error": {"code": "batch_expired", ...}``. (Without this, a batch
        also expires when its completion window is shorter than the delay.)

        Args:
            completed_fraction: Share of the lines done before expiry, in [0, 1].

        Raises:
            ValueError: If ``completed_fraction`` is outside [0, 1].
        """
        if not 0.0 <= completed_fraction <= 1.0:
            raise ValueError("completed_fraction must be in [0, 1]")
        with self._store.lock:
            self._store.expirations.append(completed_fraction)

    def fail_next(
        self,
        code: str = "InvalidParameter",
        message: str = "The input file failed validation.",
    ) -> None:
        """Make the next batch created fail validation (status ``failed``, ``errors`` set).

        Args:
            code: ``errors.data[0].code``.
            message: ``errors.data[0].message``.
        """
        with self._store.lock:
            self._store.batch_failures.append((code, message))

    def advance(self, seconds: float) -> None:
        """Move the clock of batches and tasks (and their timestamps) forward.

        Args:
            seconds: How far, >= 0.

        Raises:
            ValueError: If ``seconds`` is negative.
        """
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        with self._store.lock:
            self._store.offset += seconds

    def register_url(self, url: str, texts: Sequence[str] | str) -> None:
        """Serve ``texts`` as the content of ``url`` for asynchronous tasks' ``input.url``.

        Args:
            url: The URL a create call names.
            texts: One text per line: a sequence, or a string split on line breaks (a final
                line break ends the last line). Blank lines are kept, and rejected as texts.
        """
        lines = tuple(texts.splitlines()) if isinstance(texts, str) else tuple(texts)
        with self._store.lock:
            self._store.urls[url] = lines

    def fail_next_task(
        self,
        code: str = "InternalError",
        message: str = "An internal error has occured, please try again later.",
    ) -> None:
        """Make the next task created end ``FAILED`` with ``output.code`` / ``output.message``.

        Args:
            code: The failed task's code.
            message: The failed task's message.
        """
        with self._store.lock:
            self._store.task_failures.append((code, message))

    def create_task(self, body: Mapping[str, Any]) -> Json:
        """Create an asynchronous task as ``POST .../text-embedding`` + ``X-DashScope-Async``.

        Args:
            body: The create call's body, e.g. ``{"model": "text-embedding-async-v2",
                "input": {"url": ...}, "parameters": {"text_type": "query"}}``.

        Returns:
            The create answer, ``{"request_id", "output": {"task_id", "task_status"}}``.

        Raises:
            ServiceError: If the body is malformed (as the service would answer 400).
            ValueError: If the model is not an asynchronous task model.
        """
        request_id = str(uuid.uuid4())
        answer = create_task(self._state, dict(body), async_header=True, request_id=request_id)
        if answer is None:
            raise ValueError(f"{body.get('model')!r} is not an asynchronous task model")
        return answer[1]

    @property
    def counters(self) -> BatchCounters:
        """A frozen snapshot of the counters (batches and tasks are first brought up to date)."""
        with self._store.lock:
            _batches.refresh_all(self._store)
            _tasks.refresh_all(self._store)
            c = self._store.counters
            return BatchCounters(
                uploads=c.uploads,
                bytes_uploaded=c.bytes_uploaded,
                batches_created=c.batches_created,
                lines_billed=c.lines_billed,
                tokens_billed=c.tokens_billed,
                content_downloads=c.content_downloads,
                tasks_created=c.tasks_created,
                task_tokens_billed=c.task_tokens_billed,
                result_downloads=c.result_downloads,
            )

    def reset(self) -> None:
        """Drop all files, batches, tasks, injections, URLs and counters; default settings."""
        self._store.reset()


def controller(state: ServerState) -> BatchController:
    """The controller of ``state``'s files, batches and tasks."""
    return BatchController(state)
