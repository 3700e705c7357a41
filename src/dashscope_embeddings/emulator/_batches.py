"""The OpenAI-compatible Batch API ([ref 7b], steps 3-5).

* ``POST /compatible-mode/v1/batches``: ``input_file_id``, ``endpoint`` ``/v1/embeddings``,
  ``completion_window`` ``"24h"`` .. ``"336h"`` (whole hours), optional ``metadata``.
* ``GET /compatible-mode/v1/batches/{id}``, ``GET /compatible-mode/v1/batches?after=&limit=``
  (newest first), ``POST /compatible-mode/v1/batches/{id}/cancel``.

Timeline, computed from the store's clock whenever a batch is read, with ``d`` the delay
configured when the batch was created: ``validating`` until ``0.1 d``, ``in_progress`` until
``0.9 d`` (lines are done at an even pace, ``request_counts`` growing), ``finalizing`` until
``d``, then ``completed``. With ``d = 0`` the create answer says ``validating`` and the first
read says ``completed``.

Every line is answered at creation exactly as the real-time compatible endpoint would answer
its ``body`` (same validation, same vectors, same error bodies); a line it would reject, or a
line hit by an injected failure, goes to the error file with its status code and error body.
A model without ``supports_batch_api`` is answered ``model_not_found``. Lines are processed in
a deterministic order that is not input order (unless the emulator runs with
``shuffle=False``), and the output and error files are written in that order.

Other outcomes: a batch whose lines' ``url`` differ from its ``endpoint`` (or hit by an injected
validation failure) is ``failed`` with an OpenAI ``errors`` list at ``0.1 d``; an injected
expiry, or a completion window shorter than ``d``, gives ``expired``: the lines done by then
are in the output / error files, the rest are failed with ``batch_expired`` error lines;
cancel answers ``cancelling`` and the batch reads ``cancelled`` from then on, keeping the lines
done at the moment of the cancel and failing the rest with ``batch_cancelled`` error lines.
"""

from __future__ import annotations

import math
import random
import re
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from dashscope_embeddings.emulator._errors import ServiceError, bad_request, model_not_found
from dashscope_embeddings.emulator._gateway import inspect_texts
from dashscope_embeddings.emulator._responses import render_json
from dashscope_embeddings.emulator._state import ServerState
from dashscope_embeddings.emulator._store import (
    Batch,
    InputLine,
    LineFailure,
    LineResult,
    Store,
    StoredFile,
    json_response,
    method_not_allowed,
    not_found,
)
from dashscope_embeddings.emulator._text import compatible_job, compatible_success, parse_json

__all__ = ["BATCHES_PATH", "ENDPOINT", "handle", "refresh_all"]

Json = dict[str, Any]

BATCHES_PATH = "/compatible-mode/v1/batches"
ENDPOINT = "/v1/embeddings"
# [ref 7b]: 24h..336h is [UNCONFIRMED]; whole hours only.
MIN_WINDOW_HOURS = 24
MAX_WINDOW_HOURS = 336
_WINDOW_RE = re.compile(r"^([0-9]+)h$")
# OpenAI's metadata limits (the reference gives none of its own).
_MAX_METADATA_KEYS = 16
_MAX_METADATA_KEY = 64
_MAX_METADATA_VALUE = 512
_DEFAULT_LIST_LIMIT = 20
_MAX_LIST_LIMIT = 100
_VALIDATING_END = 0.1
_PROGRESS_END = 0.9

_EXPIRED_ERROR = {
    "code": "batch_expired",
    "message": "This request could not be executed before the completion window expired.",
}
_CANCELLED_ERROR = {
    "code": "batch_cancelled",
    "message": "This request was not executed because the batch was cancelled.",
}

_TIMESTAMP_KEYS = (
    "in_progress_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
)


# --- line execution ---------------------------------------------------------------------------


def _texts(body: Json) -> list[str]:
    value = body.get("input")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [t for t in value if isinstance(t, str)]
    return []


def _injected(store: Store, line: InputLine) -> LineFailure | None:
    failure = store.failures_by_id.get(line.custom_id)
    if failure is not None:
        return failure
    texts = _texts(line.body)
    for marker, failure in store.failures_by_marker:
        if any(marker in text for text in texts):
            return failure
    return None


def _run_line(state: ServerState, store: Store, line: InputLine) -> LineResult:
    request_id = str(uuid.uuid4())
    try:
        failure = _injected(store, line)
        if failure is not None:
            raise ServiceError(failure.status, failure.code, failure.message)
        job = compatible_job(line.body)
        if not job.spec.supports_batch_api:
            raise model_not_found(job.spec.name)
        inspect_texts(state, list(job.texts))
        body = compatible_success(job, state, request_id)
        tokens = int(body["usage"]["total_tokens"])
        return LineResult(line.custom_id, 200, request_id, body, tokens)
    except ServiceError as error:
        return LineResult(
            line.custom_id, error.status, request_id, error.body("compatible", request_id), 0
        )


def _processing_order(n: int, state: ServerState) -> list[int]:
    order = list(range(n))
    if state.shuffle and n > 1:
        random.Random(f"{state.seed}:batch:{n}").shuffle(order)
        if order == sorted(order):
            order.reverse()
    return order


# --- timeline ---------------------------------------------------------------------------------


def _done_at(batch: Batch, at: float) -> int:
    """How many lines (in processing order) are done at clock time ``at``."""
    n = len(batch.results)
    if batch.delay <= 0:
        done = n
    else:
        start = batch.created + _VALIDATING_END * batch.delay
        span = (_PROGRESS_END - _VALIDATING_END) * batch.delay
        done = math.floor(n * min(1.0, max(0.0, (at - start) / span)))
    if batch.expire_fraction is not None:
        done = min(done, math.floor(n * batch.expire_fraction))
    return done


def _output_line(result: LineResult) -> Json:
    return {
        "id": f"batch_req_{uuid.uuid4().hex}",
        "custom_id": result.custom_id,
        "response": {
            "status_code": result.status_code,
            "request_id": result.request_id,
            "body": result.body,
        },
        "error": None,
    }


def _jsonl(records: list[Json]) -> bytes:
    # render_json: the line bodies hold the text path's cached vector objects.
    return b"".join(render_json(r) + b"\n" for r in records)


def _store_file(store: Store, kind: str, batch: Batch, records: list[Json], at: float) -> str:
    stored = StoredFile(
        id=f"file-batch_{kind}-{uuid.uuid4().hex}",
        filename=f"{batch.id}_{kind}.jsonl",
        purpose="batch_output",
        data=_jsonl(records),
        created_at=int(at),
    )
    store.files[stored.id] = stored
    return stored.id


def _finish(store: Store, batch: Batch, status: str, at: float, done: int) -> None:
    batch.status = status
    batch.done = done
    if status == "failed":
        batch.timestamps["failed_at"] = at
        return
    finished = batch.results[:done]
    outputs = [_output_line(r) for r in finished if r.ok]
    errors = [_output_line(r) for r in finished if not r.ok]
    if status in ("expired", "cancelled"):
        error = _EXPIRED_ERROR if status == "expired" else _CANCELLED_ERROR
        for result in batch.results[done:]:
            errors.append(
                {
                    "id": f"batch_req_{uuid.uuid4().hex}",
                    "custom_id": result.custom_id,
                    "response": None,
                    "error": dict(error),
                }
            )
    if outputs:
        batch.output_file_id = _store_file(store, "output", batch, outputs, at)
    if errors:
        batch.error_file_id = _store_file(store, "error", batch, errors, at)
    successes = [r for r in finished if r.ok]
    store.counters.lines_billed += len(successes)
    store.counters.tokens_billed += sum(r.tokens for r in successes)
    batch.timestamps[f"{status}_at"] = at


def refresh(store: Store, batch: Batch) -> str:
    """Bring ``batch`` up to the store's clock and return its current status.

    Call with ``store.lock`` held. A batch reaching a terminal status gets its output and
    error files and is billed, once.
    """
    if batch.status is not None:
        return batch.status
    now = store.now()
    t0, d = batch.created, batch.delay
    validated = t0 + _VALIDATING_END * d
    if batch.errors is not None:
        if now < validated:
            return "validating"
        _finish(store, batch, "failed", validated, 0)
        return "failed"
    if batch.cancel_at is not None:
        if batch.cancel_at >= validated:
            batch.timestamps["in_progress_at"] = validated
        batch.timestamps["cancelling_at"] = batch.cancel_at
        _finish(store, batch, "cancelled", now, _done_at(batch, batch.cancel_at))
        return "cancelled"
    end = t0 + d
    expire_at: float | None = None
    if batch.expire_fraction is not None:
        expire_at = end
    elif batch.window_s < d:
        expire_at = t0 + batch.window_s
    if expire_at is not None and now >= expire_at:
        batch.timestamps["in_progress_at"] = min(validated, expire_at)
        _finish(store, batch, "expired", expire_at, _done_at(batch, expire_at))
        return "expired"
    if now >= end:
        batch.timestamps["in_progress_at"] = validated
        batch.timestamps["finalizing_at"] = t0 + _PROGRESS_END * d
        _finish(store, batch, "completed", end, len(batch.results))
        return "completed"
    if now < validated:
        return "validating"
    if now < t0 + _PROGRESS_END * d:
        return "in_progress"
    return "finalizing"


def refresh_all(store: Store) -> None:
    """Refresh every batch (so that counters include batches nobody polled)."""
    with store.lock:
        for batch in store.batches.values():
            refresh(store, batch)


def _counts(batch: Batch, status: str, now: float) -> Json:
    n = len(batch.results)
    if status in ("validating", "failed"):
        return {"total": 0, "completed": 0, "failed": 0}
    if status in ("in_progress", "finalizing", "cancelling"):
        at = batch.cancel_at if batch.cancel_at is not None else now
        finished = batch.results[: _done_at(batch, at)]
    else:
        finished = batch.results[: batch.done]
    completed = sum(1 for r in finished if r.ok)
    failed = len(finished) - completed
    if status in ("expired", "cancelled"):
        failed = n - completed
    return {"total": n, "completed": completed, "failed": failed}


def _to_json(store: Store, batch: Batch, status: str) -> Json:
    now = store.now()
    t0, d = batch.created, batch.delay
    stamps = dict(batch.timestamps)
    if batch.status is None:  # not terminal: the phases reached so far
        validated = t0 + _VALIDATING_END * d
        if status in ("in_progress", "finalizing", "cancelling") and now >= validated:
            stamps.setdefault("in_progress_at", validated)
        if status == "finalizing":
            stamps["finalizing_at"] = t0 + _PROGRESS_END * d
        if batch.cancel_at is not None:
            stamps["cancelling_at"] = batch.cancel_at
    body: Json = {
        "id": batch.id,
        "object": "batch",
        "endpoint": batch.endpoint,
        "errors": {"object": "list", "data": batch.errors} if batch.errors else None,
        "input_file_id": batch.input_file_id,
        "completion_window": batch.completion_window,
        "status": status,
        "output_file_id": batch.output_file_id,
        "error_file_id": batch.error_file_id,
        "created_at": int(t0),
        "expires_at": int(t0 + batch.window_s),
    }
    for key in _TIMESTAMP_KEYS:
        value = stamps.get(key)
        body[key] = int(value) if value is not None else None
    body["request_counts"] = _counts(batch, status, now)
    body["metadata"] = batch.metadata
    return body


# --- endpoints --------------------------------------------------------------------------------


def _window_seconds(value: Any) -> float:
    match = _WINDOW_RE.match(value) if isinstance(value, str) else None
    hours = int(match.group(1)) if match else 0
    if not MIN_WINDOW_HOURS <= hours <= MAX_WINDOW_HOURS:
        raise bad_request(
            f"completion_window should be between {MIN_WINDOW_HOURS}h and "
            f"{MAX_WINDOW_HOURS}h in whole hours, e.g. '24h'."
        )
    return hours * 3600.0


def _metadata(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    ok = (
        isinstance(value, dict)
        and len(value) <= _MAX_METADATA_KEYS
        and all(
            isinstance(k, str)
            and isinstance(v, str)
            and len(k) <= _MAX_METADATA_KEY
            and len(v) <= _MAX_METADATA_VALUE
            for k, v in value.items()
        )
    )
    if not ok:
        raise bad_request(
            f"metadata should be an object of at most {_MAX_METADATA_KEYS} string values "
            f"(keys up to {_MAX_METADATA_KEY} characters, values up to {_MAX_METADATA_VALUE})."
        )
    return dict(value)


def _create(state: ServerState, store: Store, raw: bytes) -> Response:
    ok, body = parse_json(raw)
    if not ok:
        raise bad_request("The request body is not valid JSON.")
    if not isinstance(body, dict):
        raise bad_request("The request body should be a JSON object.")
    file_id = body.get("input_file_id")
    if not isinstance(file_id, str) or not file_id:
        raise bad_request("Required parameter 'input_file_id' missing.")
    endpoint = body.get("endpoint")
    if endpoint != ENDPOINT:
        # The service also runs chat batches; the emulator serves embeddings only.
        raise bad_request(f"endpoint should be '{ENDPOINT}' (the emulator serves embeddings).")
    window = body.get("completion_window")
    window_s = _window_seconds(window)
    metadata = _metadata(body.get("metadata"))
    with store.lock:
        stored = store.files.get(file_id)
        if stored is None:
            raise not_found(f"No such file: {file_id}")
        if stored.purpose != "batch":
            raise bad_request(f"File {file_id} has purpose '{stored.purpose}', not 'batch'.")
        errors = [
            {
                "code": "InvalidParameter",
                "message": f"The line's url '{line.url}' does not match the batch endpoint "
                f"'{endpoint}'.",
                "param": "url",
                "line": line.number,
            }
            for line in stored.lines
            if line.url != endpoint
        ]
        if store.batch_failures:
            code, message = store.batch_failures.popleft()
            errors.append({"code": code, "message": message, "param": None, "line": None})
        results: list[LineResult] = []
        if not errors:
            lines = stored.lines
            results = [
                _run_line(state, store, lines[i]) for i in _processing_order(len(lines), state)
            ]
        batch = Batch(
            id=f"batch_{uuid.uuid4()}",
            input_file_id=file_id,
            endpoint=ENDPOINT,
            completion_window=str(window),
            window_s=window_s,
            metadata=metadata,
            created=store.now(),
            delay=store.delay_s,
            results=results,
            errors=errors or None,
            expire_fraction=store.expirations.popleft() if store.expirations else None,
        )
        store.batches[batch.id] = batch
        store.counters.batches_created += 1
        return json_response(_to_json(store, batch, "validating"))


def _batch(store: Store, batch_id: str) -> Batch:
    batch = store.batches.get(batch_id)
    if batch is None:
        raise not_found(f"No such batch: {batch_id}")
    return batch


def _cancel(store: Store, batch_id: str) -> Response:
    with store.lock:
        batch = _batch(store, batch_id)
        status = refresh(store, batch)
        if status == "cancelled":
            return json_response(_to_json(store, batch, status))
        if batch.status is not None:
            raise bad_request(f"Cannot cancel a batch with status '{status}'.")
        if batch.cancel_at is None:
            batch.cancel_at = store.now()
        return json_response(_to_json(store, batch, "cancelling"))


def _list(store: Store, request: Request) -> Response:
    raw_limit = request.query_params.get("limit")
    try:
        limit = _DEFAULT_LIST_LIMIT if raw_limit is None else int(raw_limit)
    except ValueError:
        limit = 0
    if not 1 <= limit <= _MAX_LIST_LIMIT:
        raise bad_request(f"limit should be an integer in [1, {_MAX_LIST_LIMIT}].")
    after = request.query_params.get("after")
    with store.lock:
        batches = list(reversed(store.batches.values()))  # newest first
        if after is not None:
            ids = [b.id for b in batches]
            if after not in ids:
                raise bad_request(f"No such batch: {after}")
            batches = batches[ids.index(after) + 1 :]
        page = [_to_json(store, b, refresh(store, b)) for b in batches[:limit]]
    return json_response(
        {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(batches) > limit,
        }
    )


def handle(state: ServerState, store: Store, request: Request, raw: bytes) -> Response:
    """Answer one authenticated request under ``/compatible-mode/v1/batches``.

    Raises:
        ServiceError: For every error answer (the caller renders it in the compatible shape).
    """
    rest = request.url.path[len(BATCHES_PATH) :].strip("/")
    segments = rest.split("/") if rest else []
    method = request.method
    if not segments:
        if method == "POST":
            return _create(state, store, raw)
        if method == "GET":
            return _list(store, request)
        raise method_not_allowed(method, "GET, POST")
    if len(segments) == 1:
        if method != "GET":
            raise method_not_allowed(method, "GET")
        with store.lock:
            batch = _batch(store, segments[0])
            return json_response(_to_json(store, batch, refresh(store, batch)))
    if len(segments) == 2 and segments[1] == "cancel":
        if method != "POST":
            raise method_not_allowed(method, "POST")
        return _cancel(store, segments[0])
    raise not_found(f"Not found: {request.url.path}")
