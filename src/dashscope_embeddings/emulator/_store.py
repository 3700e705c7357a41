"""Shared state and helpers of the files, Batch API and asynchronous task endpoints.

One :class:`Store` per emulator lives in ``ServerState.extensions["batch"]``; it is created
under the server state's lock on first use and guarded afterwards by its own re-entrant lock,
which the server's event loop (request handlers) and the caller's threads (the controller)
both take. The clock is ``time.time()`` plus an offset the controller can advance, so tests can
move batches and tasks through their phases without sleeping.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from dashscope_embeddings.emulator._errors import ServiceError, invalid_api_key
from dashscope_embeddings.emulator._gateway import bearer_key_accepted
from dashscope_embeddings.emulator._state import ServerState

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "DEFAULT_MAX_LINES_PER_FILE",
    "DEFAULT_MAX_LINE_BYTES",
    "Batch",
    "InputLine",
    "LineFailure",
    "LineResult",
    "Store",
    "StoredFile",
    "Task",
    "error_response",
    "get_store",
    "json_response",
    "method_not_allowed",
    "not_found",
    "require_auth",
]

Json = dict[str, Any]

_EXTENSION_KEY = "batch"
_MB = 1024 * 1024

# [ref 7b] marks Alibaba's limits [UNCONFIRMED]; the figures "believed" there.
DEFAULT_MAX_LINES_PER_FILE = 50_000
DEFAULT_MAX_FILE_BYTES = 500 * _MB
DEFAULT_MAX_LINE_BYTES = 6 * _MB


@dataclass(frozen=True)
class InputLine:
    """One validated line of an uploaded batch input file."""

    number: int  # 1-based line number in the file
    custom_id: str
    url: str
    body: Json


@dataclass
class StoredFile:
    """A file held by the files endpoint (uploaded input, or a batch's output / error file)."""

    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int
    lines: tuple[InputLine, ...] = ()

    def to_json(self) -> Json:
        """The OpenAI file object ([ref 7b] step 2)."""
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
        }


@dataclass(frozen=True)
class LineFailure:
    """An injected per-line failure: the HTTP status and error of the line's response."""

    status: int
    code: str
    message: str


@dataclass(frozen=True)
class LineResult:
    """The answer to one batch line, as the real-time compatible endpoint would give it."""

    custom_id: str
    status_code: int
    request_id: str
    body: Json
    tokens: int  # billed tokens; 0 for a failed line

    @property
    def ok(self) -> bool:
        """Whether the line succeeded (HTTP 200)."""
        return self.status_code == 200


@dataclass
class Batch:
    """A batch job; its status is computed from the clock whenever it is read."""

    id: str
    input_file_id: str
    endpoint: str
    completion_window: str
    window_s: float
    metadata: dict[str, str] | None
    created: float
    delay: float
    results: list[LineResult]  # in processing order (deterministic, not input order)
    errors: list[Json] | None  # validation errors: the batch fails
    expire_fraction: float | None  # injected expiry: share of the lines done when it expires
    cancel_at: float | None = None
    # Set once the batch reaches a terminal status (then never recomputed).
    status: str | None = None
    done: int = 0
    timestamps: dict[str, float] = field(default_factory=dict)
    output_file_id: str | None = None
    error_file_id: str | None = None


@dataclass
class Task:
    """An asynchronous text-embedding task ([ref 7a])."""

    id: str
    model: str
    created: float
    delay: float
    result: bytes | None  # gzip'd JSON lines, when the task succeeds
    tokens: int
    failure: tuple[str, str] | None  # (code, message) when the task fails
    canceled_at: float | None = None
    billed: bool = False


@dataclass
class Counters:
    """Mutable usage counters (the controller hands out frozen snapshots)."""

    uploads: int = 0
    bytes_uploaded: int = 0
    batches_created: int = 0
    lines_billed: int = 0
    tokens_billed: int = 0
    content_downloads: int = 0
    tasks_created: int = 0
    task_tokens_billed: int = 0
    result_downloads: int = 0


class Store:
    """Everything the files, batches and tasks endpoints hold for one emulator."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.secret = secrets.token_bytes(16)
        self.reset()

    def reset(self) -> None:
        """Drop every file, batch, task, injection and counter; restore the default settings."""
        with self.lock:
            self.delay_s = 0.0
            self.max_lines_per_file = DEFAULT_MAX_LINES_PER_FILE
            self.max_file_bytes = DEFAULT_MAX_FILE_BYTES
            self.max_line_bytes = DEFAULT_MAX_LINE_BYTES
            self.offset = 0.0
            self.files: dict[str, StoredFile] = {}
            self.batches: dict[str, Batch] = {}
            self.tasks: dict[str, Task] = {}
            self.failures_by_id: dict[str, LineFailure] = {}
            self.failures_by_marker: list[tuple[str, LineFailure]] = []
            self.expirations: deque[float] = deque()
            self.batch_failures: deque[tuple[str, str]] = deque()
            self.task_failures: deque[tuple[str, str]] = deque()
            self.urls: dict[str, tuple[str, ...]] = {}
            self.counters = Counters()

    def now(self) -> float:
        """The emulator's clock: wall-clock seconds plus the advanced offset."""
        return time.time() + self.offset


def get_store(state: ServerState) -> Store:
    """The store of ``state``, created on first use."""
    with state.lock:
        store = state.extensions.get(_EXTENSION_KEY)
        if not isinstance(store, Store):
            store = Store()
            state.extensions[_EXTENSION_KEY] = store
        return store


def json_response(
    payload: Json, status: int = 200, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A JSON answer."""
    return JSONResponse(payload, status_code=status, headers=headers)


def error_response(error: ServiceError, request: Request, protocol: str) -> JSONResponse:
    """``error`` in the shape of ``protocol`` ("native" or "compatible")."""
    request_id: str = request.state.request_id
    body = error.body("native" if protocol == "native" else "compatible", request_id)
    return JSONResponse(body, status_code=error.status, headers=dict(error.headers))


def require_auth(state: ServerState, request: Request) -> None:
    """Raise the 401 ``InvalidApiKey`` error unless the request carries an accepted key."""
    if not bearer_key_accepted(request, state.api_key):
        raise invalid_api_key()


def not_found(message: str) -> ServiceError:
    """A 404 for an unknown file, batch or path (compatible code ``not_found``)."""
    return ServiceError(404, "NotFound", message, compat_code="not_found")


def method_not_allowed(method: str, allowed: str) -> ServiceError:
    """A 405 for a known path with the wrong method."""
    return ServiceError(
        405,
        "MethodNotAllowed",
        f"Method {method} is not allowed; use {allowed}.",
        compat_code="method_not_allowed",
        headers={"allow": allowed},
    )
