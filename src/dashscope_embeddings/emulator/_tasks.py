"""Asynchronous text-embedding tasks: text-embedding-async-v1 / -v2 ([ref 7a]).

* :func:`create_task` answers the create call (``POST .../text-embedding/text-embedding`` with
  ``X-DashScope-Async: enable``); the text path calls it, this module does not serve that path.
* ``GET /api/v1/tasks/{task_id}``: the task; an unknown id is HTTP 200 ``UNKNOWN`` ([ref 7a]).
* ``POST /api/v1/tasks/{task_id}/cancel``: only a ``PENDING`` task can be cancelled.
* ``GET /api/v1/tasks?page_no=&page_size=&status=&model_name=&start_time=&end_time=``: a flat
  page (not wrapped in ``output``).
* ``GET /oss/dashscope-result/{task_id}/result.txt.gz?Expires=&Signature=``: the result file,
  on the emulator's own host, standing in for the signed OSS link of the real service (no
  ``Authorization``; a wrong signature or a past ``Expires`` is 403 in OSS's XML shape).

The emulator cannot download ``input.url``: the controller maps URLs to lines of text
(:meth:`BatchController.register_url`); an unregistered URL makes the task ``FAILED``. Timeline
with ``d`` the configured delay: ``PENDING`` until ``0.25 d``, ``RUNNING`` until ``d``, then
``SUCCEEDED`` (or ``FAILED``). Vectors are those of the native text endpoint for the same model,
``text_type`` and text. The result file is gzip'd JSON lines, one
``{"embedding": [...], "text_index": i}`` per input line, in a deterministic non-input order
(the format is [UNCONFIRMED] in [ref 7a]). Times are ``YYYY-MM-DD HH:MM:SS.mmm`` in UTC+8.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import hmac
import json
import math
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from dashscope_embeddings._registry import MODELS
from dashscope_embeddings.emulator import _lexical
from dashscope_embeddings.emulator._errors import ServiceError, bad_request
from dashscope_embeddings.emulator._gateway import inspect_texts
from dashscope_embeddings.emulator._state import ServerState
from dashscope_embeddings.emulator._store import (
    Store,
    Task,
    json_response,
    method_not_allowed,
    not_found,
)
from dashscope_embeddings.emulator._text import (
    TextJob,
    checked_dimension,
    choice,
    dense_values,
)
from dashscope_embeddings.emulator._vectors import response_order

__all__ = ["RESULT_PREFIX", "TASKS_PATH", "create_task", "handle", "handle_result", "refresh_all"]

Json = dict[str, Any]

TASKS_PATH = "/api/v1/tasks"
RESULT_PREFIX = "/oss/dashscope-result/"
_RESULT_NAME = "result.txt.gz"
_PENDING_END = 0.25
LINK_TTL_S = 24 * 3600.0  # expiry of the result link: [UNCONFIRMED] ([ref 7a])
_TZ = datetime.timezone(datetime.timedelta(hours=8))  # the service's Beijing time
_DEFAULT_PAGE_SIZE = 10
_MAX_PAGE_SIZE = 100


def _format_time(at: float) -> str:
    moment = datetime.datetime.fromtimestamp(at, _TZ)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _run(
    state: ServerState, spec_name: str, texts: tuple[str, ...], text_type: str, dimension: int
) -> tuple[bytes, int]:
    """The gzip'd result file and the billed tokens; raises ``ServiceError`` for bad input."""
    spec = MODELS[spec_name]
    if not texts:
        raise bad_request("The input file is empty.")
    if len(texts) > spec.max_batch_size:
        raise bad_request(
            f"The input file has {len(texts)} lines, more than the limit of {spec.max_batch_size}."
        )
    analyses = [_lexical.analyze(text) for text in texts]
    for number, analysis in enumerate(analyses, start=1):
        if not 1 <= analysis.token_count <= spec.max_tokens_per_input:
            limit = spec.max_tokens_per_input
            raise bad_request(f"Line {number}: Range of input length should be [1, {limit}]")
    inspect_texts(state, list(texts))
    job = TextJob(
        spec=spec, texts=texts, analyses=analyses, dimension=dimension, text_type=text_type
    )
    lines = [
        json.dumps({"embedding": dense_values(job, analyses[i]), "text_index": i})
        for i in response_order(len(analyses), state.seed, state.shuffle)
    ]
    data = gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), mtime=0)
    return data, sum(a.token_count for a in analyses)


def create_task(
    state: ServerState, store: Store, body: Json, *, async_header: bool, request_id: str
) -> tuple[int, Json, dict[str, str]] | None:
    """Create an asynchronous task as the service's create call would.

    Returns ``None`` (the text path answers as before) unless ``async_header`` is set and the
    model is an ``async_task`` model; otherwise ``(200, body, headers)`` with the ``PENDING``
    task. Authentication, faults and the JSON parsing stay with the caller.

    Raises:
        ServiceError: For a malformed body (native shape, 400 ``InvalidParameter``).
    """
    model = body.get("model")
    spec = MODELS.get(model) if isinstance(model, str) else None
    if not async_header or spec is None or spec.endpoint != "async_task":
        return None
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
    dimension = checked_dimension(spec, params.get("dimension"))
    with store.lock:
        texts = store.urls.get(url)
        result: bytes | None = None
        tokens = 0
        failure: tuple[str, str] | None = None
        if store.task_failures:
            failure = store.task_failures.popleft()
        elif texts is None:
            failure = ("InvalidParameter", f"Failed to download the input file: {url}")
        else:
            try:
                result, tokens = _run(state, spec.name, texts, text_type, dimension)
            except ServiceError as error:
                failure = (error.code or "InvalidParameter", error.message)
        task = Task(
            id=str(uuid.uuid4()),
            model=spec.name,
            created=store.now(),
            delay=store.delay_s,
            result=result,
            tokens=tokens,
            failure=failure,
        )
        store.tasks[task.id] = task
        store.counters.tasks_created += 1
    payload = {"request_id": request_id, "output": {"task_id": task.id, "task_status": "PENDING"}}
    return 200, payload, {}


def _status(store: Store, task: Task) -> str:
    if task.canceled_at is not None:
        return "CANCELED"
    now = store.now()
    if now < task.created + _PENDING_END * task.delay:
        return "PENDING"
    if now < task.created + task.delay:
        return "RUNNING"
    if task.failure is not None:
        return "FAILED"
    if not task.billed:
        task.billed = True
        store.counters.task_tokens_billed += task.tokens
    return "SUCCEEDED"


def refresh_all(store: Store) -> None:
    """Bring every task up to the clock (so that counters include tasks nobody polled)."""
    with store.lock:
        for task in store.tasks.values():
            _status(store, task)


def _signature(store: Store, task_id: str, expires: int) -> str:
    message = f"{task_id}:{expires}".encode()
    return hmac.new(store.secret, message, hashlib.sha256).hexdigest()[:32]


def _task_output(store: Store, task: Task, status: str, request: Request) -> tuple[Json, Json]:
    output: Json = {"task_id": task.id, "task_status": status}
    output["submit_time"] = _format_time(task.created)
    if status in ("RUNNING", "SUCCEEDED", "FAILED"):
        output["scheduled_time"] = _format_time(task.created + _PENDING_END * task.delay)
    if status in ("SUCCEEDED", "FAILED"):
        output["end_time"] = _format_time(task.created + task.delay)
    if status == "CANCELED" and task.canceled_at is not None:
        output["end_time"] = _format_time(task.canceled_at)
    usage: Json = {}
    if status == "SUCCEEDED":
        expires = int(store.now() + LINK_TTL_S)
        base = str(request.base_url).rstrip("/")
        output["url"] = (
            f"{base}{RESULT_PREFIX}{task.id}/{_RESULT_NAME}"
            f"?Expires={expires}&Signature={_signature(store, task.id, expires)}"
        )
        usage = {"total_tokens": task.tokens}
    if status == "FAILED" and task.failure is not None:
        # [ref 7a]: the location of code / message of a failed task is [UNCONFIRMED]; in output.
        output["code"], output["message"] = task.failure
    return output, usage


def _get(store: Store, request: Request, task_id: str) -> Response:
    request_id: str = request.state.request_id
    with store.lock:
        task = store.tasks.get(task_id)
        if task is None:
            output: Json = {"task_id": task_id, "task_status": "UNKNOWN"}
            return json_response({"request_id": request_id, "output": output})
        output, usage = _task_output(store, task, _status(store, task), request)
    body: Json = {"request_id": request_id, "output": output}
    if usage:
        body["usage"] = usage
    return json_response(body)


def _cancel(store: Store, request: Request, task_id: str) -> Response:
    with store.lock:
        task = store.tasks.get(task_id)
        if task is None or _status(store, task) != "PENDING":
            # The wording and code are the emulator's choice (not in the reference).
            raise ServiceError(
                400,
                "UnsupportedOperation",
                "Failed to cancel the task, please confirm if the task is in PENDING status.",
            )
        task.canceled_at = store.now()
    return json_response({"request_id": request.state.request_id})


def _int_param(request: Request, name: str, default: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    try:
        value = default if raw is None else int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= maximum:
        raise bad_request(f"Parameter '{name}' should be an integer in [1, {maximum}].")
    return value


def _time_param(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        moment = datetime.datetime.strptime(raw, "%Y%m%d%H%M%S").replace(tzinfo=_TZ)
    except ValueError:
        raise bad_request(f"Parameter '{name}' should be formatted YYYYMMDDhhmmss.") from None
    return moment.timestamp()


def _list(store: Store, request: Request) -> Response:
    page_no = _int_param(request, "page_no", 1, 1_000_000)
    page_size = _int_param(request, "page_size", _DEFAULT_PAGE_SIZE, _MAX_PAGE_SIZE)
    start, end = _time_param(request, "start_time"), _time_param(request, "end_time")
    model = request.query_params.get("model_name")
    status_filter = request.query_params.get("status")
    items: list[Json] = []
    with store.lock:
        for task in reversed(store.tasks.values()):  # newest first
            status = _status(store, task)
            if (model is not None and task.model != model) or (
                status_filter is not None and status != status_filter
            ):
                continue
            if (start is not None and task.created < start) or (
                end is not None and task.created > end
            ):
                continue
            output, _usage = _task_output(store, task, status, request)
            output["model_name"] = task.model
            items.append(output)
    first = (page_no - 1) * page_size
    return json_response(
        {
            "request_id": request.state.request_id,
            "data": items[first : first + page_size],
            "total": len(items),
            "total_page": math.ceil(len(items) / page_size),
            "page_no": page_no,
            "page_size": page_size,
        }
    )


def handle(state: ServerState, store: Store, request: Request) -> Response:  # noqa: ARG001
    """Answer one authenticated request under ``/api/v1/tasks``.

    Raises:
        ServiceError: For every error answer (the caller renders it in the native shape).
    """
    rest = request.url.path[len(TASKS_PATH) :].strip("/")
    segments = rest.split("/") if rest else []
    method = request.method
    if not segments:
        if method != "GET":
            raise method_not_allowed(method, "GET")
        return _list(store, request)
    if len(segments) == 1:
        if method != "GET":
            raise method_not_allowed(method, "GET")
        return _get(store, request, segments[0])
    if len(segments) == 2 and segments[1] == "cancel":
        if method != "POST":
            raise method_not_allowed(method, "POST")
        return _cancel(store, request, segments[0])
    raise not_found(f"Not found: {request.url.path}")


def _oss_error(status: int, code: str, message: str) -> Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    )
    return Response(body, status_code=status, media_type="application/xml")


def handle_result(store: Store, request: Request) -> Response:
    """Serve a task's result file from its signed link (no ``Authorization`` needed)."""
    if request.method not in ("GET", "HEAD"):
        return _oss_error(405, "MethodNotAllowed", "The specified method is not allowed.")
    task_id, _, name = request.url.path[len(RESULT_PREFIX) :].partition("/")
    try:
        expires = int(request.query_params.get("Expires", ""))
    except ValueError:
        expires = -1
    signature = request.query_params.get("Signature", "")
    with store.lock:
        task = store.tasks.get(task_id)
        if task is None or task.result is None or name != _RESULT_NAME:
            return _oss_error(404, "NoSuchKey", "The specified key does not exist.")
        if not hmac.compare_digest(signature, _signature(store, task_id, expires)):
            return _oss_error(403, "SignatureDoesNotMatch", "The request signature does not match.")
        if expires < store.now():
            return _oss_error(403, "AccessDenied", "Request has expired.")
        store.counters.result_downloads += 1
        data = task.result
    return Response(data, media_type="application/octet-stream")
