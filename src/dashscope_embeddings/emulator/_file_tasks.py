"""Task creation for text-embedding-async-v1 / -v2 over HTTP ([ref 7a]).

``POST /api/v1/services/embeddings/text-embedding/text-embedding`` with
``X-DashScope-Async: enable`` and an ``async_task`` model creates a task: the emulator downloads
``input.url`` (http or https on a loopback host only, at most ``max_input_bytes``; a URL given to
``BatchController.register_url`` is read from there instead), splits it into lines (UTF-8, one
text per line, a final line break ends the last line, CR LF accepted), embeds every line and
keeps the result file. The task is then served by :mod:`._tasks` (``GET /api/v1/tasks/{id}``,
cancel, the signed result link), through the store both modules share.

* Vectors equal those of the real-time endpoint for the same text and ``text_type``:
  ``text-embedding-async-v2`` gives ``text-embedding-v2``'s, ``-async-v1`` ``-v1``'s.
* Result file: gzip'd JSON lines ``{"embedding": [...], "text_index": i}`` in a deterministic
  non-input order; an injected failing line is ``{"text_index": i, "code", "message"}`` and is
  not billed (the real layout is [UNCONFIRMED] in [ref 7a]).
* The task fails (``FAILED`` with ``output.code`` / ``message``) when the input cannot be
  downloaded or read, is empty, has more than 100,000 lines or a line outside [1, 2,048]
  tokens, or by injection (``BatchController.fail_next_task``).
* Limits ([ref 6], [ref 7a]): task creation 1 request/second, 50 tasks queued or running,
  3 running. Over a limit the create call is HTTP 429 ``Throttling.RateQuota`` (rate, with
  ``Retry-After``) or ``Throttling`` (queue); those codes and wordings are the emulator's
  choice. A task beyond the 3 running waits ``PENDING`` until a slot frees: its timeline is
  stretched so that it starts then (it is ``PENDING`` for the first quarter, as every task).
* Timeline, with ``d`` the delay of ``BatchController.configure(delay_s=)``: ``PENDING`` for
  ``d / 4``, ``RUNNING`` until ``d``, then final. ``FileTaskController.expire_links`` moves the
  clock past the result link's expiry.

Tests drive the limits and injections through :class:`FileTaskController`.
"""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import Response

from dashscope_embeddings._registry import MODELS
from dashscope_embeddings.emulator import _lexical, _tasks
from dashscope_embeddings.emulator._errors import ServiceError, bad_request
from dashscope_embeddings.emulator._gateway import Admission, admit, inspect_texts
from dashscope_embeddings.emulator._responses import EmulatorResponse
from dashscope_embeddings.emulator._store import Store, Task, get_store
from dashscope_embeddings.emulator._text import TextJob, checked_dimension, choice, dense_values
from dashscope_embeddings.emulator._vectors import response_order

if TYPE_CHECKING:
    from dashscope_embeddings.emulator._state import ServerState

__all__ = ["FileTaskController", "create", "handle", "wanted"]

Json = dict[str, Any]

_EXTENSION_KEY = "file_tasks"
_REALTIME_TWIN = {
    "text-embedding-async-v2": "text-embedding-v2",
    "text-embedding-async-v1": "text-embedding-v1",
}
DEFAULT_MAX_INPUT_BYTES = 64 * 1024 * 1024
DEFAULT_MIN_INTERVAL_S = 1.0  # task creation: 1 request/second ([ref 6])
DEFAULT_MAX_QUEUED = 50  # queued or running per account ([ref 6])
DEFAULT_MAX_RUNNING = 3  # running at once ([ref 6])
_DOWNLOAD_TIMEOUT_S = 30.0
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


@dataclass
class _Settings:
    """Limits and injections of the create call (one per emulator)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    min_interval_s: float = DEFAULT_MIN_INTERVAL_S
    max_queued: int = DEFAULT_MAX_QUEUED
    max_running: int = DEFAULT_MAX_RUNNING
    max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES
    line_failures: list[tuple[str, str, str]] = field(default_factory=list)
    last_created: float | None = None
    downloads: int = 0


def _settings(state: ServerState) -> _Settings:
    with state.lock:
        found = state.extensions.get(_EXTENSION_KEY)
        if not isinstance(found, _Settings):
            found = _Settings()
            state.extensions[_EXTENSION_KEY] = found
        return found


def wanted(request: Request, parsed: tuple[bool, Any]) -> bool:
    """Whether a native text request is a task creation (async header and an async model)."""
    if request.headers.get("x-dashscope-async", "").lower() != "enable":
        return False
    ok, body = parsed
    if not ok or not isinstance(body, dict):
        return False
    model = body.get("model")
    spec = MODELS.get(model) if isinstance(model, str) else None
    return spec is not None and spec.endpoint == "async_task"


def _is_loopback(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    host = parts.hostname.lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _InputError(Exception):
    """The input file cannot be used: the task fails with this message."""


async def _download(url: str, limit: int) -> bytes:
    if not _is_loopback(url):
        raise _InputError(
            f"Failed to download the input file: {url} (the emulator downloads only http(s) "
            "URLs on a loopback host)"
        )
    try:
        async with (
            httpx.AsyncClient(timeout=_DOWNLOAD_TIMEOUT_S, verify=False) as http,
            http.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise _InputError(
                    f"Failed to download the input file: {url} (HTTP {response.status_code})"
                )
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise _InputError(f"The input file is larger than {limit} bytes.")
                chunks.append(chunk)
    except httpx.HTTPError as error:
        raise _InputError(
            f"Failed to download the input file: {url} ({type(error).__name__})"
        ) from None
    return b"".join(chunks)


def _lines(data: bytes) -> tuple[str, ...]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _InputError("The input file is not UTF-8 text.") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return tuple(line[:-1] if line.endswith("\r") else line for line in lines)


def _result(
    state: ServerState,
    model: str,
    texts: tuple[str, ...],
    text_type: str,
    failures: list[tuple[str, str, str]],
) -> tuple[bytes, int]:
    """The gzip'd result file and the billed tokens; raises ``_InputError`` for bad input."""
    spec = MODELS[model]
    twin = MODELS[_REALTIME_TWIN.get(model, "text-embedding-v2")]
    if not texts:
        raise _InputError("The input file is empty.")
    if len(texts) > spec.max_batch_size:
        raise _InputError(
            f"The input file has {len(texts)} lines, more than the limit of {spec.max_batch_size}."
        )
    analyses = [_lexical.analyze(text) for text in texts]
    for number, analysis in enumerate(analyses, start=1):
        if not 1 <= analysis.token_count <= spec.max_tokens_per_input:
            raise _InputError(
                f"Line {number}: Range of input length should be [1, {spec.max_tokens_per_input}]"
            )
    try:
        inspect_texts(state, list(texts))
    except ServiceError as error:
        raise _InputError(error.message) from None
    job = TextJob(
        spec=twin,
        texts=texts,
        analyses=analyses,
        dimension=twin.default_dimension or 1536,
        text_type=text_type,
    )
    rows: list[str] = []
    tokens = 0
    for i in response_order(len(texts), state.seed, state.shuffle):
        failure = next((f for f in failures if f[0] in texts[i]), None)
        if failure is not None:
            rows.append(json.dumps({"text_index": i, "code": failure[1], "message": failure[2]}))
            continue
        rows.append(json.dumps({"embedding": dense_values(job, analyses[i]), "text_index": i}))
        tokens += analyses[i].token_count
    return gzip.compress(("\n".join(rows) + "\n").encode("utf-8"), mtime=0), tokens


def _schedule(store: Store, settings: _Settings, now: float) -> float:
    """The new task's delay: stretched so that it starts only when a running slot is free."""
    delay = store.delay_s
    ends = sorted(
        (t.created + t.delay for t in store.tasks.values() if t.canceled_at is None),
        reverse=True,
    )
    if len(ends) >= settings.max_running:
        free = ends[settings.max_running - 1]
        delay = max(delay, 4 * (free - now))
    return delay


def _busy(store: Store, now: float) -> int:
    return sum(
        1 for t in store.tasks.values() if t.canceled_at is None and now < t.created + t.delay
    )


def _throttle(settings: _Settings, store: Store) -> ServiceError | None:
    """The 429 of a create call over a limit, or ``None`` (then the call is counted)."""
    now = store.now()
    with settings.lock:
        last = settings.last_created
        if last is not None and now - last < settings.min_interval_s:
            wait = settings.min_interval_s - (now - last)
            return ServiceError(
                429,
                "Throttling.RateQuota",
                "Requests rate limit exceeded, please try again later.",
                headers={"retry-after": f"{max(wait, 0.001):.3f}"},
            )
        with store.lock:
            if _busy(store, now) >= settings.max_queued:
                return ServiceError(
                    429,
                    "Throttling",
                    f"Too many tasks queued or running (at most {settings.max_queued}).",
                )
        settings.last_created = now
    return None


def _parameters(body: Json) -> tuple[str, str]:
    """``(url, text_type)`` of a create body; raises the service's 400 for a malformed one."""
    inp = body.get("input")
    url = inp.get("url") if isinstance(inp, dict) else None
    if not isinstance(url, str) or not url.strip():
        raise bad_request("Required parameter 'input.url' missing or invalid.")
    params = body.get("parameters")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise bad_request("Parameter 'parameters' should be an object.")
    text_type = choice(params.get("text_type"), ("query", "document"), "document", "text_type")
    checked_dimension(MODELS[str(body["model"])], params.get("dimension"))
    return url, text_type


async def handle(state: ServerState, request: Request, raw: bytes) -> Response:  # noqa: ARG001
    """Answer a task creation (:func:`wanted` was true) through the gateway (auth, faults).

    The in-flight slot, if one was taken, is given back once the answer has been sent.
    """
    admission = await admit(state, request, "native")
    try:
        response = admission.response
        if response is None:
            response = await create(state, admission, request.state.parsed_body)
    except BaseException:
        admission.release()
        raise
    if isinstance(response, EmulatorResponse):
        response.on_sent = admission.release
    else:  # pragma: no cover - the gateway and create only build EmulatorResponse
        admission.release()
    return response


async def create(state: ServerState, admission: Admission, parsed: tuple[bool, Any]) -> Response:
    """Answer a create call that passed the gateway (:func:`wanted` was true).

    Returns ``{"request_id", "output": {"task_id", "task_status": "PENDING"}}``; a malformed
    body is 400 ``InvalidParameter``, a limit 429. A download or input failure makes the
    task ``FAILED`` rather than failing the call, as the service reads the file later.
    """
    body: Json = parsed[1]
    store = get_store(state)
    settings = _settings(state)
    try:
        url, text_type = _parameters(body)
        throttled = _throttle(settings, store)
        if throttled is not None:
            raise throttled
    except ServiceError as error:
        return admission.error(error)
    model = str(body["model"])
    with settings.lock:
        failures = list(settings.line_failures)
        limit = settings.max_input_bytes
    with store.lock:
        registered = store.urls.get(url)
        injected = store.task_failures.popleft() if store.task_failures else None
    result: bytes | None = None
    tokens = 0
    failure: tuple[str, str] | None = injected
    if failure is None:
        try:
            if registered is not None:
                texts = registered
            else:
                if _is_loopback(url):
                    with settings.lock:
                        settings.downloads += 1
                texts = _lines(await _download(url, limit))
            result, tokens = await asyncio.to_thread(
                _result, state, model, texts, text_type, failures
            )
        except _InputError as error:
            failure = ("InvalidParameter", str(error))
    with store.lock:
        now = store.now()
        task = Task(
            id=str(uuid.uuid4()),
            model=model,
            created=now,
            delay=_schedule(store, settings, now),
            result=result if failure is None else None,
            tokens=tokens if failure is None else 0,
            failure=failure,
        )
        store.tasks[task.id] = task
        store.counters.tasks_created += 1
    output = {"task_id": task.id, "task_status": "PENDING"}
    return admission.respond(200, {"request_id": admission.request_id, "output": output})


class FileTaskController:
    """Limits and injections of task creation over HTTP, for tests.

    >>> ctl = FileTaskController.of(emu)  # doctest: +SKIP
    >>> ctl.configure(min_interval_s=0)  # no 1 request/second limit
    >>> ctl.fail_lines("poison", code="InvalidParameter", message="bad line")
    >>> ctl.expire_links()  # every result link handed out so far has expired

    The processing delay, task failures and counters are ``Emulator.batch``'s
    (``configure(delay_s=)``, ``fail_next_task``, ``counters.tasks_created``).
    """

    def __init__(self, state: ServerState) -> None:
        self._state = state
        self._settings = _settings(state)

    @classmethod
    def of(cls, emulator: Any) -> FileTaskController:
        """The controller of a running ``Emulator``."""
        return cls(emulator._state)

    def configure(
        self,
        *,
        min_interval_s: float | None = None,
        max_queued: int | None = None,
        max_running: int | None = None,
        max_input_bytes: int | None = None,
    ) -> None:
        """Change limits; ``None`` keeps the current value.

        Args:
            min_interval_s: Seconds between two task creations (default 1).
            max_queued: Tasks queued or running at once (default 50).
            max_running: Tasks running at once (default 3); applies to tasks created later.
            max_input_bytes: Largest input file downloaded (default 64 MiB).

        Raises:
            ValueError: For a negative interval or a limit below 1.
        """
        if min_interval_s is not None and min_interval_s < 0:
            raise ValueError("min_interval_s must be >= 0")
        for name, value in (
            ("max_queued", max_queued),
            ("max_running", max_running),
            ("max_input_bytes", max_input_bytes),
        ):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1")
        with self._settings.lock:
            if min_interval_s is not None:
                self._settings.min_interval_s = float(min_interval_s)
            if max_queued is not None:
                self._settings.max_queued = max_queued
            if max_running is not None:
                self._settings.max_running = max_running
            if max_input_bytes is not None:
                self._settings.max_input_bytes = max_input_bytes

    def fail_lines(
        self, marker: str, *, code: str = "InternalError", message: str = "Line failed."
    ) -> None:
        """Lines containing ``marker`` fail in tasks created afterwards (per-line errors).

        Raises:
            ValueError: If ``marker`` is empty.
        """
        if not marker:
            raise ValueError("marker must be non-empty")
        with self._settings.lock:
            self._settings.line_failures.append((marker, code, message))

    def expire_links(self) -> None:
        """Move the task clock past the result links' lifetime (links handed out expire)."""
        store = get_store(self._state)
        with store.lock:
            store.offset += _tasks.LINK_TTL_S + 1

    @property
    def downloads(self) -> int:
        """Input files downloaded over HTTP so far."""
        with self._settings.lock:
            return self._settings.downloads

    def reset(self) -> None:
        """Default limits, no injections, the rate window and download count cleared."""
        with self._settings.lock:
            self._settings.min_interval_s = DEFAULT_MIN_INTERVAL_S
            self._settings.max_queued = DEFAULT_MAX_QUEUED
            self._settings.max_running = DEFAULT_MAX_RUNNING
            self._settings.max_input_bytes = DEFAULT_MAX_INPUT_BYTES
            self._settings.line_failures.clear()
            self._settings.last_created = None
            self._settings.downloads = 0
