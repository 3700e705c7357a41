"""File tasks (text-embedding-async-v1 / -v2) as resumable jobs: sync and ``await``.

A file task embeds every line of one UTF-8 text file that the service downloads from a URL (up
to 100,000 lines of at most 2,048 tokens each) and leaves the vectors in a result file behind a
signed, expiring link. The job keeps its state in ``state_path`` (JSON, rewritten atomically
after every step: uploaded, create sent, created, finished, downloaded) and its files in the
folder ``<state_path>.d`` beside it (the input written by :meth:`FileTaskJob.from_texts`, the
downloaded result), so a process killed at any moment resumes without creating a second task,
uploading twice or downloading a result it already holds.

>>> from dashscope_embeddings.batch import FileTaskJob
>>> job = FileTaskJob.submit("https://example.com/corpus.txt",
...                          state_path="corpus.task.json")  # doctest: +SKIP
>>> job.wait(progress=print)  # doctest: +SKIP
>>> results = job.results()   # doctest: +SKIP
>>> results.embeddings        # one vector per line, in line order  # doctest: +SKIP

The result link is fetched without the API key (it is signed; the key only goes to the
configured DashScope host). An expired link is replaced by polling the task again.

What a job does is written once, in :class:`FileTaskCore`: every step that talks to the service
is a generator yielding typed requests, pauses, downloads and upload calls (:mod:`._run`); the
sync job runs them with a ``DashScopeClient``, the async one awaits them with an
``AsyncDashScopeClient``. Both read and write the same state file, so either resumes the other's
job.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
import typing
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx

from dashscope_embeddings._client import AsyncDashScopeClient, DashScopeClient
from dashscope_embeddings._errors import (
    APIConnectionError,
    APIStatusError,
    DashScopeError,
    InvalidInputError,
)
from dashscope_embeddings._registry import get_model_spec
from dashscope_embeddings._tokens import TokenCounter, lower_bound
from dashscope_embeddings._types import Usage
from dashscope_embeddings._usage import usage_for
from dashscope_embeddings.batch import _run
from dashscope_embeddings.batch._run import Call, Fetch, Sleep, Step, run_async, run_sync
from dashscope_embeddings.batch._state import BatchStateError, data_dir, write_atomic
from dashscope_embeddings.resources.file_tasks import FileTaskFailure, parse_result_file
from dashscope_embeddings.resources.tasks import TERMINAL_STATUSES, TaskObject

__all__ = [
    "AsyncFileTaskJob",
    "AsyncUpload",
    "FileTaskCore",
    "FileTaskError",
    "FileTaskJob",
    "FileTaskResults",
    "FileTaskStatus",
    "IncompleteFileTaskError",
    "Upload",
]

_KIND = "dashscope-embeddings file task"
_VERSION = 1
MAX_LINES = 100_000
FIRST_POLL_S = 1.0
MAX_POLL_S = 8.0
_POLL_RETRY_STATUSES = frozenset({503, 504})
_MAX_POLL_FAILURES = 10
_MAX_LINK_RENEWALS = 3
_DOWNLOAD_ATTEMPTS = 4
_INPUT_NAME = "input.txt"
_RESULT_NAME = "result.bin"
# Every pause of a job goes through these names, looked up at each pause (tests record them).
_sleep: Callable[[float], object] = time.sleep
_asleep: Callable[[float], Awaitable[object]] = asyncio.sleep

Upload = Callable[[Path], str]
"""``upload(path) -> url``: your own upload of the input file (see ``from_texts``)."""
AsyncUpload = Callable[[Path], "str | Awaitable[str]"]
"""An :data:`Upload` for :class:`AsyncFileTaskJob`: a plain function or a coroutine function."""


def _pause(seconds: float) -> None:
    _sleep(seconds)


async def _apause(seconds: float) -> None:
    await _asleep(seconds)


class FileTaskError(DashScopeError):
    """A task that ended without a result (``FAILED``, ``CANCELED``, ``UNKNOWN``).

    ``status``, ``code`` and ``message`` are the service's.
    """

    def __init__(self, task_id: str, status: str, code: str | None, message: str | None):
        detail = f": {code}: {message}" if code or message else ""
        super().__init__(f"file task {task_id} ended {status}{detail}")
        self.task_id = task_id
        self.status = status
        self.code = code
        self.message = message


class IncompleteFileTaskError(DashScopeError):
    """``embeddings`` was read while some lines failed (see ``FileTaskResults.failed``)."""


@dataclass(frozen=True)
class FileTaskStatus:
    """Where a task stands, as last polled (given to ``wait(progress=...)``)."""

    task_id: str
    status: str

    @property
    def done(self) -> bool:
        """Whether the status is final."""
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True)
class FileTaskResults:
    """A finished task's vectors, in input line order.

    Attributes:
        vectors: One entry per input line: its vector, or ``None`` where the line failed.
        failed: The failed lines (index, code, message), in line order.
        usage: The tokens the task billed, priced at the model's rate.
    """

    vectors: list[list[float] | None]
    failed: list[FileTaskFailure]
    usage: Usage

    @property
    def complete(self) -> bool:
        """Whether every line has a vector."""
        return not self.failed

    @property
    def embeddings(self) -> list[list[float]]:
        """Every line's vector, in line order.

        Raises:
            IncompleteFileTaskError: If any line failed (read ``vectors`` / ``failed``).
        """
        if self.failed:
            shown = "; ".join(str(f) for f in self.failed[:5])
            more = f"; and {len(self.failed) - 5} more" if len(self.failed) > 5 else ""
            raise IncompleteFileTaskError(
                f"{len(self.failed)} of {len(self.vectors)} lines failed: {shown}{more}"
            )
        return [v for v in self.vectors if v is not None]


def check_texts(
    texts: Iterable[str], limit: int = 2048, token_counter: TokenCounter | None = None
) -> list[str]:
    """The texts as a list, each fit for one line of a task's input file.

    None may be empty, hold a line break, or be over ``limit`` tokens (counted by
    ``token_counter``, else the Qwen tokenizer of the ``tokenizer`` extra, else refused only
    when a lower bound of the count is over); there may be at most 100,000.

    Raises:
        InvalidInputError: Naming the first offending text's index.
    """
    counter = token_counter or _default_counter()
    if isinstance(texts, str):
        raise InvalidInputError("texts must be an iterable of strings, not one string")
    checked: list[str] = []
    for index, text in enumerate(texts):
        if index >= MAX_LINES:
            raise InvalidInputError(
                f"more than {MAX_LINES:,} texts: a file task takes at most {MAX_LINES:,} lines; "
                "split the corpus across several tasks"
            )
        if not isinstance(text, str):
            raise InvalidInputError(
                f"text {index} is a {type(text).__name__}, not a str", index=index
            )
        if "\n" in text or "\r" in text:
            raise InvalidInputError(
                f"text {index} contains a line break; a file task reads one text per line",
                index=index,
            )
        if not text.strip():
            raise InvalidInputError(f"text {index} is empty", index=index)
        tokens = counter(text)
        if tokens > limit:
            raise InvalidInputError(
                f"text {index} has {'at least ' if counter is lower_bound else ''}"
                f"{tokens:,} tokens, over the {limit:,} a file task line may have",
                index=index,
            )
        checked.append(text)
    if not checked:
        raise InvalidInputError("no texts given")
    return checked


def _default_counter() -> TokenCounter:
    """The Qwen tokenizer when installed, else a lower bound (refusing only what is surely over)."""
    from dashscope_embeddings import _tokenizer

    return _tokenizer.exact_counter() or lower_bound


def input_bytes(texts: Iterable[str]) -> bytes:
    """The input file :meth:`FileTaskJob.from_texts` writes: UTF-8, one text per line."""
    return "".join(text + "\n" for text in texts).encode("utf-8")


def input_path(state_path: str | Path) -> Path:
    """Where :meth:`FileTaskJob.from_texts` keeps the input file it wrote for ``state_path``."""
    return data_dir(Path(state_path)) / _INPUT_NAME


def read_state(state_path: str | Path) -> dict[str, typing.Any]:
    """A file task job's saved state (model, text_type, input_url, task_id, status, ...).

    Raises:
        BatchStateError: If there is none at ``state_path``, or it is not a file task's.
    """
    path = Path(state_path)
    try:
        state = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise BatchStateError(f"no file task state at {path}") from None
    except ValueError:
        raise BatchStateError(f"{path} is not a file task's state (not JSON)") from None
    if not isinstance(state, dict) or state.get("kind") != _KIND:
        raise BatchStateError(f"{path} is not a file task's state")
    return state


class FileTaskCore:
    """State and every step of a file task job; no I/O of its own but files on disk.

    :class:`FileTaskJob` runs the steps with a ``DashScopeClient``, :class:`AsyncFileTaskJob`
    awaits them with an ``AsyncDashScopeClient``; the properties below are shared.
    """

    def __init__(self, state: dict[str, typing.Any], path: Path) -> None:
        self._state = state
        self._path = path
        self._data = data_dir(path)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(state_path={str(self._path)!r}, "
            f"model={self._state['model']!r}, task_id={self._state['task_id']!r}, "
            f"status={self._state['status']!r})"
        )

    # --- creation (no I/O but the state and input files) -------------------------------------

    @classmethod
    def _prepare_submit(
        cls,
        input_url: str,
        model: str,
        text_type: str,
        state_path: str | Path,
        lines: int | None,
    ) -> tuple[dict[str, typing.Any], Path]:
        if not isinstance(input_url, str) or not input_url.startswith(("http://", "https://")):
            raise InvalidInputError(f"input_url must be an http(s) URL, got {input_url!r}")
        if lines is not None and not 1 <= lines <= MAX_LINES:
            raise InvalidInputError(f"lines must be in [1, {MAX_LINES:,}], got {lines!r}")
        state = cls._new_state(model, text_type, lines)
        state["input_url"] = input_url
        return state, cls._claim(state_path)

    @classmethod
    def _prepare_texts(
        cls,
        texts: Iterable[str],
        model: str,
        text_type: str,
        state_path: str | Path,
        token_counter: TokenCounter | None,
    ) -> tuple[dict[str, typing.Any], Path]:
        spec = get_model_spec(model)
        limit = spec.max_tokens_per_input or 2048
        checked = check_texts(texts, limit, token_counter)
        state = cls._new_state(model, text_type, len(checked))
        state["upload"] = True
        path = cls._claim(state_path)
        folder = data_dir(path)
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / _INPUT_NAME, input_bytes(checked))
        return state, path

    @staticmethod
    def _prepare_resume(
        state_path: str | Path, resubmit_unconfirmed: bool
    ) -> tuple[dict[str, typing.Any], Path]:
        path = Path(state_path)
        state = read_state(path)
        if state.get("create_started") and not state.get("task_id"):
            if not resubmit_unconfirmed:
                raise BatchStateError(
                    f"{path}: a create request was sent but its answer was not recorded; the "
                    "task may exist (see your tasks in the console). Pass "
                    "resubmit_unconfirmed=True to create it again"
                )
            state["create_started"] = False
        return state, path

    @staticmethod
    def _new_state(model: str, text_type: str, lines: int | None) -> dict[str, typing.Any]:
        spec = get_model_spec(model)
        if spec.endpoint != "async_task":
            raise InvalidInputError(
                f"{spec.name} is not a file-task model; use text-embedding-async-v2 or -v1 "
                "(for other models: the Batch API, BatchJob)"
            )
        if text_type not in ("document", "query"):
            raise InvalidInputError(f"text_type must be 'document' or 'query', got {text_type!r}")
        return {
            "kind": _KIND,
            "version": _VERSION,
            "model": spec.name,
            "text_type": text_type,
            "lines": lines,
            "upload": False,
            "input_url": None,
            "create_started": False,
            "task_id": None,
            "status": None,
            "result_url": None,
            "code": None,
            "message": None,
            "tokens": None,
            "downloaded": False,
        }

    @staticmethod
    def _claim(state_path: str | Path) -> Path:
        path = Path(state_path)
        if path.exists():
            raise BatchStateError(f"{path} already exists; resume it or choose another path")
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _save(self) -> None:
        write_atomic(self._path, json.dumps(self._state, indent=1).encode("utf-8"))

    # --- steps ------------------------------------------------------------------------------

    def create_step(self, upload: Callable[[Path], object] | None) -> Step[None]:
        """Save the state, upload the input once if needed, and create the task once."""
        self._save()
        state = self._state
        if state["task_id"]:
            return
        if not state["input_url"]:
            if upload is None:
                raise BatchStateError(
                    f"{self._path}: the input file was not uploaded yet; pass upload= to resume"
                )
            url = yield Call(upload, (self._data / _INPUT_NAME,))
            if inspect.iscoroutine(url):  # an async upload given to the sync job
                url.close()
                raise InvalidInputError(
                    "upload() returned a coroutine: use AsyncFileTaskJob for an async upload"
                )
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise InvalidInputError(f"upload() must return an http(s) URL, got {url!r}")
            state["input_url"] = url
            self._save()
        state["create_started"] = True
        self._save()
        try:
            created: TaskObject = yield _run.create_file_task(
                state["model"], state["input_url"], state["text_type"]
            )
        except APIStatusError as error:
            if error.status_code < 500:  # refused: the service created nothing
                state["create_started"] = False
                self._save()
            raise
        except APIConnectionError as error:
            if getattr(error, "_nothing_sent", False):
                state["create_started"] = False
                self._save()
            raise
        state["task_id"] = created.id
        state["status"] = created.status
        self._save()

    def _record(self, task: TaskObject) -> None:
        state = self._state
        changed = task.status != state["status"]
        state["status"] = task.status
        if task.status == "SUCCEEDED":
            usage = task.raw.get("usage")
            tokens = usage.get("total_tokens") if isinstance(usage, dict) else None
            if isinstance(tokens, int):
                state["tokens"] = tokens
            if task.result_url and task.result_url != state["result_url"]:
                state["result_url"] = task.result_url
                changed = True
        if task.code or task.message:
            state["code"], state["message"] = task.code, task.message
        if changed:
            self._save()

    def poll_step(self) -> Step[TaskObject]:
        """Ask for the task once and record its answer."""
        task: TaskObject = yield _run.retrieve_task(self.task_id)
        self._record(task)
        return task

    def wait_step(
        self, timeout: float | None, progress: Callable[[FileTaskStatus], object] | None
    ) -> Step[FileTaskStatus]:
        """Poll until the task is final (1 s between polls, doubling up to 8 s).

        A poll answered 503 / 504 (after the client's own retries) or cut off is tried again
        at the next interval; ten such failures in a row are raised.
        """
        if self._state["status"] in TERMINAL_STATUSES:
            return self.status
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = FIRST_POLL_S
        failures = 0
        while True:
            try:
                yield from self.poll_step()
                failures = 0
            except (APIStatusError, APIConnectionError) as error:
                retryable = isinstance(error, APIConnectionError) or (
                    error.status_code in _POLL_RETRY_STATUSES
                )
                failures += 1
                if not retryable or failures >= _MAX_POLL_FAILURES:
                    raise
            status = self.status
            if progress is not None and not failures:
                progress(status)
            if status.done:
                return status
            pause = delay
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"file task {self.task_id} is {status.status} after {timeout} s; it "
                        f"goes on at the service (resume it from {self._path})"
                    )
                pause = min(pause, remaining)
            yield Sleep(pause)
            delay = min(delay * 2, MAX_POLL_S)

    def results_step(self, timeout: float | None, region: str) -> Step[FileTaskResults]:
        """Wait for the task, download its result once, and read it in line order.

        ``region`` is the client's, for the price of the billed tokens.
        """
        status = yield from self.wait_step(timeout, None)
        state = self._state
        if status.status != "SUCCEEDED":
            raise FileTaskError(self.task_id, status.status, state["code"], state["message"])
        target = self._data / _RESULT_NAME
        if not state["downloaded"] or not target.exists():
            yield from self.download_step(target)
        vectors, failed = parse_result_file(target.read_bytes(), state["lines"])
        spec = get_model_spec(state["model"])
        usage = usage_for(spec, int(state["tokens"] or 0), 1, region)
        return FileTaskResults(vectors=vectors, failed=failed, usage=usage)

    def download_step(self, target: Path) -> Step[None]:
        """Fetch the result link (without the key) to ``target``; renew it on 403 / 404."""
        self._data.mkdir(parents=True, exist_ok=True)
        renewals = 0
        attempts = 0
        while True:
            url = self._state["result_url"]
            if not url:
                yield from self.poll_step()
                url = self._state["result_url"]
                if not url:
                    raise FileTaskError(
                        self.task_id, self.status.status, None, "no result link was given"
                    )
            try:
                status: int = yield Fetch(url, target)
            except httpx.TransportError as error:
                attempts += 1
                if attempts >= _DOWNLOAD_ATTEMPTS:
                    raise APIConnectionError(
                        f"could not download the result of task {self.task_id}: "
                        f"{type(error).__name__}"
                    ) from None
                yield Sleep(min(FIRST_POLL_S * 2**attempts, MAX_POLL_S))
                continue
            if status == 200:
                self._state["downloaded"] = True
                self._save()
                return
            if status in (403, 404) and renewals < _MAX_LINK_RENEWALS:
                renewals += 1  # expired or refused: ask the task for a fresh link
                self._state["result_url"] = None
                self._save()
                continue
            attempts += 1
            if status < 500 or attempts >= _DOWNLOAD_ATTEMPTS:
                raise FileTaskError(
                    self.task_id,
                    "SUCCEEDED",
                    f"HTTP {status}",
                    "the result file could not be downloaded",
                )
            yield Sleep(min(FIRST_POLL_S * 2**attempts, MAX_POLL_S))

    def cancel_step(self) -> Step[FileTaskStatus]:
        """Ask the service to cancel the task, then poll it."""
        yield _run.cancel_task(self.task_id)
        yield from self.poll_step()
        return self.status

    # --- shared, no request -----------------------------------------------------------------

    @property
    def state_path(self) -> Path:
        """Where the job's state is kept."""
        return self._path

    @property
    def task_id(self) -> str:
        """The service's task id."""
        return str(self._state["task_id"])

    @property
    def model(self) -> str:
        """The model the task runs."""
        return str(self._state["model"])

    @property
    def status(self) -> FileTaskStatus:
        """The last polled status (no request)."""
        return FileTaskStatus(self.task_id, str(self._state["status"] or "PENDING"))


class FileTaskJob(FileTaskCore):
    """One text-embedding-async-v1 / -v2 task, as a job that survives crashes.

    Create one with :meth:`submit` (a URL you host), :meth:`from_texts` (texts you upload with
    your own callable) or :meth:`resume`; then :meth:`wait` and :meth:`results`. Close it (or
    use ``with``) to release a client it created. One job object belongs to one thread.
    For ``await``: :class:`AsyncFileTaskJob`, the same methods as coroutines.
    """

    def __init__(
        self,
        state: dict[str, typing.Any],
        path: Path,
        client: DashScopeClient,
        owns_client: bool,
    ) -> None:
        super().__init__(state, path)
        self._client = client
        self._owns_client = owns_client

    # --- creation ---------------------------------------------------------------------------

    @classmethod
    def submit(
        cls,
        input_url: str,
        *,
        model: str = "text-embedding-async-v2",
        text_type: str = "document",
        state_path: str | Path,
        client: DashScopeClient | None = None,
        lines: int | None = None,
    ) -> FileTaskJob:
        """Save the job, then create the task over the file at ``input_url``.

        Args:
            input_url: A URL the service can download: UTF-8 text, one text per line.
            model: ``text-embedding-async-v2`` or ``text-embedding-async-v1``.
            text_type: ``document`` or ``query``.
            state_path: Where to keep the job's state; must not exist yet.
            client: The client to send with; default a new ``DashScopeClient()``, closed by
                :meth:`close`.
            lines: The file's line count, when known: the result must then hold exactly
                that many lines.

        Raises:
            InvalidInputError: For a bad URL, model or option; nothing is written or sent.
            BatchStateError: If ``state_path`` already holds something.
            APIError: If the service refuses the task; the state is kept.
        """
        state, path = cls._prepare_submit(input_url, model, text_type, state_path, lines)
        return cls._start(state, path, client, upload=None)

    @classmethod
    def from_texts(
        cls,
        texts: Iterable[str],
        *,
        upload: Upload,
        model: str = "text-embedding-async-v2",
        text_type: str = "document",
        state_path: str | Path,
        client: DashScopeClient | None = None,
        token_counter: TokenCounter | None = None,
    ) -> FileTaskJob:
        """Write the texts to a file, upload it with ``upload``, and create the task.

        Every text is checked before anything is written, uploaded or sent: none may be
        empty, hold a line break, or be over 2,048 tokens (counted by ``token_counter``, else
        as :func:`check_texts` counts), and there may be at most 100,000.
        ``upload(path) -> url`` is your own upload (an OSS / S3 presigned upload, a public
        bucket); it is called once, and never again once its URL is recorded, even across
        :meth:`resume`.

        Raises:
            InvalidInputError: For a bad text (its index), option or a non-URL from
                ``upload``; nothing is sent.
            BatchStateError: If ``state_path`` already holds something.
        """
        state, path = cls._prepare_texts(texts, model, text_type, state_path, token_counter)
        return cls._start(state, path, client, upload=upload)

    @classmethod
    def resume(
        cls,
        state_path: str | Path,
        client: DashScopeClient | None = None,
        *,
        upload: Upload | None = None,
        resubmit_unconfirmed: bool = False,
    ) -> FileTaskJob:
        """Continue a job from its state: the same task, nothing sent or uploaded twice.

        The state may have been written by either :class:`FileTaskJob` or
        :class:`AsyncFileTaskJob`.

        Args:
            state_path: The ``state_path`` the job was created with.
            client: A client for the same region / base URL; default ``DashScopeClient()``.
            upload: Needed only if a :meth:`from_texts` job stopped before its upload was
                recorded.
            resubmit_unconfirmed: A create request may have been sent without its answer
                being recorded (a crash in that instant). The service's task list cannot say
                which task is this job's, so by default this raises; ``True`` creates a task
                again (possibly a second, billed one).

        Raises:
            BatchStateError: No job at ``state_path``, a damaged one, or an unconfirmed
                creation (see ``resubmit_unconfirmed``).
        """
        state, path = cls._prepare_resume(state_path, resubmit_unconfirmed)
        return cls._start(state, path, client, upload=upload)

    @classmethod
    def _start(
        cls,
        state: dict[str, typing.Any],
        path: Path,
        client: DashScopeClient | None,
        upload: Upload | None,
    ) -> FileTaskJob:
        own = client is None
        active = client if client is not None else DashScopeClient()
        try:
            job = cls(state, path, active, own)
            run_sync(active, job.create_step(upload), _pause)
        except BaseException:
            if own:
                active.close()
            raise
        return job

    # --- the running task -------------------------------------------------------------------

    def wait(
        self,
        *,
        timeout: float | None = None,
        progress: Callable[[FileTaskStatus], object] | None = None,
    ) -> FileTaskStatus:
        """Poll until the task is final (1 s between polls, doubling up to 8 s).

        A poll answered 503 / 504 (after the client's own retries) or cut off is tried again
        at the next interval; ten such failures in a row are raised.

        Args:
            timeout: Seconds to wait at most; ``None`` waits as long as the task runs.
            progress: Called with each polled :class:`FileTaskStatus`.

        Raises:
            TimeoutError: If ``timeout`` ran out (the task goes on; resume or wait again).
        """
        return run_sync(self._client, self.wait_step(timeout, progress), _pause)

    def results(self, *, timeout: float | None = None) -> FileTaskResults:
        """Wait for the task, download its result once, and read it in line order.

        The result is kept beside the state (``<state_path>.d/result.bin``), so a resumed job
        reads it without downloading again. An expired or refused link is replaced by polling
        the task for a fresh one.

        Raises:
            FileTaskError: If the task ended ``FAILED``, ``CANCELED`` or ``UNKNOWN``.
            ResultFileError: If the result file cannot be read (naming what was found).
            TimeoutError: If ``timeout`` (seconds) ran out while waiting.
        """
        step = self.results_step(timeout, self._client.endpoints.region)
        return run_sync(self._client, step, _pause)

    def cancel(self) -> FileTaskStatus:
        """Ask the service to cancel the task (only a ``PENDING`` one can be), then poll it."""
        return run_sync(self._client, self.cancel_step(), _pause)

    def close(self) -> None:
        """Close the client if the job created it (the job's state stays on disk)."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> FileTaskJob:
        """Start of ``with``: the job itself (a client it created is closed at the end)."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """End of ``with``: :meth:`close` (the task goes on at the service)."""
        self.close()


class AsyncFileTaskJob(FileTaskCore):
    """Asynchronous twin of :class:`FileTaskJob`: the same methods, awaited.

    >>> from dashscope_embeddings.batch import AsyncFileTaskJob
    >>> job = await AsyncFileTaskJob.submit("https://example.com/corpus.txt",
    ...                                     state_path="corpus.task.json")  # doctest: +SKIP
    >>> await job.wait(progress=print)  # doctest: +SKIP
    >>> vectors = (await job.results()).embeddings  # doctest: +SKIP

    Polls, pauses and the result download never block the event loop (the download streams
    through the client's connection pool, without the API key); the small state file and the
    downloaded chunks are written with blocking calls. Cancelling the task that awaits a
    method leaves the state as it stood after the last answer, so :meth:`resume` (or
    :meth:`FileTaskJob.resume`) continues the same task. Close it (or use ``async with``) to
    release a client it created.
    """

    def __init__(
        self,
        state: dict[str, typing.Any],
        path: Path,
        client: AsyncDashScopeClient,
        owns_client: bool,
    ) -> None:
        super().__init__(state, path)
        self._client = client
        self._owns_client = owns_client

    @classmethod
    async def submit(
        cls,
        input_url: str,
        *,
        model: str = "text-embedding-async-v2",
        text_type: str = "document",
        state_path: str | Path,
        client: AsyncDashScopeClient | None = None,
        lines: int | None = None,
    ) -> AsyncFileTaskJob:
        """See :meth:`FileTaskJob.submit`.

        ``client`` defaults to a new ``AsyncDashScopeClient()``, closed by :meth:`aclose`.
        """
        state, path = cls._prepare_submit(input_url, model, text_type, state_path, lines)
        return await cls._start(state, path, client, upload=None)

    @classmethod
    async def from_texts(
        cls,
        texts: Iterable[str],
        *,
        upload: AsyncUpload,
        model: str = "text-embedding-async-v2",
        text_type: str = "document",
        state_path: str | Path,
        client: AsyncDashScopeClient | None = None,
        token_counter: TokenCounter | None = None,
    ) -> AsyncFileTaskJob:
        """See :meth:`FileTaskJob.from_texts`.

        ``upload`` may be a plain function or a coroutine function (``async def upload(path)
        -> url``): its result is awaited when it is awaitable. The texts are checked and the
        input file written with blocking calls, before anything is sent.
        """
        state, path = cls._prepare_texts(texts, model, text_type, state_path, token_counter)
        return await cls._start(state, path, client, upload=upload)

    @classmethod
    async def resume(
        cls,
        state_path: str | Path,
        client: AsyncDashScopeClient | None = None,
        *,
        upload: AsyncUpload | None = None,
        resubmit_unconfirmed: bool = False,
    ) -> AsyncFileTaskJob:
        """See :meth:`FileTaskJob.resume` (also for a state the sync job wrote)."""
        state, path = cls._prepare_resume(state_path, resubmit_unconfirmed)
        return await cls._start(state, path, client, upload=upload)

    @classmethod
    async def _start(
        cls,
        state: dict[str, typing.Any],
        path: Path,
        client: AsyncDashScopeClient | None,
        upload: AsyncUpload | None,
    ) -> AsyncFileTaskJob:
        own = client is None
        active = client if client is not None else AsyncDashScopeClient()
        try:
            job = cls(state, path, active, own)
            await run_async(active, job.create_step(upload), _apause)
        except BaseException:
            if own:
                await active.aclose()
            raise
        return job

    async def wait(
        self,
        *,
        timeout: float | None = None,
        progress: Callable[[FileTaskStatus], object] | None = None,
    ) -> FileTaskStatus:
        """See :meth:`FileTaskJob.wait`; the pauses are ``asyncio.sleep``."""
        return await run_async(self._client, self.wait_step(timeout, progress), _apause)

    async def results(self, *, timeout: float | None = None) -> FileTaskResults:
        """See :meth:`FileTaskJob.results`."""
        step = self.results_step(timeout, self._client.endpoints.region)
        return await run_async(self._client, step, _apause)

    async def cancel(self) -> FileTaskStatus:
        """See :meth:`FileTaskJob.cancel`."""
        return await run_async(self._client, self.cancel_step(), _apause)

    async def aclose(self) -> None:
        """Close the client if the job created it (the job's state stays on disk)."""
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> AsyncFileTaskJob:
        """Start of ``async with``: the job itself (a client it created is closed at the end)."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """End of ``async with``: :meth:`aclose` (the task goes on at the service)."""
        await self.aclose()
