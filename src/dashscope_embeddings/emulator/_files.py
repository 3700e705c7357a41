"""The OpenAI-compatible files endpoints ([ref 7b], steps 2 and 5).

* ``POST /compatible-mode/v1/files``: ``multipart/form-data`` with ``file`` and
  ``purpose=batch``; answers the OpenAI file object.
* ``GET /compatible-mode/v1/files``: the list of files (OpenAI list object).
* ``GET /compatible-mode/v1/files/{id}``: the file object.
* ``GET /compatible-mode/v1/files/{id}/content``: the raw bytes (JSON lines).
* ``DELETE /compatible-mode/v1/files/{id}``: ``{"id", "object": "file", "deleted": true}``.

An upload is validated as a batch input file: size, line count and line size against the
store's limits, then every line must be a JSON object with a non-empty ``custom_id`` unique in
the file, ``method`` ``POST``, a ``url`` among the documented batch URLs and an object
``body``. A violation is a 400 ``InvalidParameter`` naming the line. Whether a line's ``url``
matches the endpoint of a batch is only known when the batch is created (a mismatch fails the
batch in its validating phase, see :mod:`._batches`); the line bodies themselves are checked
line by line when the batch runs.
"""

from __future__ import annotations

import email.message
import email.parser
import json
import uuid
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from dashscope_embeddings.emulator._errors import ServiceError, bad_request
from dashscope_embeddings.emulator._state import ServerState
from dashscope_embeddings.emulator._store import (
    InputLine,
    Store,
    StoredFile,
    json_response,
    method_not_allowed,
    not_found,
)

__all__ = ["BATCH_LINE_URLS", "FILES_PATH", "handle"]

FILES_PATH = "/compatible-mode/v1/files"
# [ref 7b] / S8: the line URLs the Batch API documents (embeddings, chat, and the test model's).
BATCH_LINE_URLS = ("/v1/embeddings", "/v1/chat/completions", "/v1/chat/ds-test")


@dataclass(frozen=True)
class _Part:
    name: str
    filename: str | None
    data: bytes


def _parse_multipart(content_type: str, raw: bytes) -> dict[str, _Part]:
    """The named parts of a ``multipart/form-data`` body (the first part of each name wins).

    python-multipart is not a dependency, so Starlette's ``request.form()`` is not available.
    """
    header = email.message.Message()
    header["content-type"] = content_type
    boundary = header.get_param("boundary")
    if header.get_content_type() != "multipart/form-data" or not isinstance(boundary, str):
        raise bad_request("The request should be multipart/form-data with 'file' and 'purpose'.")
    malformed = bad_request("The multipart/form-data body is malformed.")
    chunks = (b"\r\n" + raw).split(b"\r\n--" + boundary.encode("latin-1"))
    parts: dict[str, _Part] = {}
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):  # the close delimiter
            return parts
        chunk = chunk.lstrip(b" \t")
        if not chunk.startswith(b"\r\n"):
            raise malformed
        chunk = chunk[2:]
        if chunk.startswith(b"\r\n"):
            head, body = b"", chunk[2:]
        else:
            head, sep, body = chunk.partition(b"\r\n\r\n")
            if not sep:
                raise malformed
        headers = email.parser.HeaderParser().parsestr(head.decode("utf-8", "replace"))
        name = headers.get_param("name", header="content-disposition")
        if isinstance(name, str) and name not in parts:
            filename = headers.get_filename()
            parts[name] = _Part(name, filename, body)
    raise malformed  # no close delimiter


def _line_error(number: int, message: str) -> ServiceError:
    return bad_request(f"Line {number}: {message}")


def _parse_batch_file(store: Store, data: bytes) -> tuple[InputLine, ...]:
    """Validate an upload as a batch input file (JSON lines) and return its lines."""
    if len(data) > store.max_file_bytes:
        raise bad_request(
            f"The file has {len(data)} bytes, more than the limit of {store.max_file_bytes}."
        )
    raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[-1] == b"":  # a final newline ends the last line
        raw_lines.pop()
    if not raw_lines:
        raise bad_request("The file is empty.")
    if len(raw_lines) > store.max_lines_per_file:
        raise bad_request(
            f"The file has {len(raw_lines)} lines, more than the limit of "
            f"{store.max_lines_per_file}."
        )
    lines: list[InputLine] = []
    seen: set[str] = set()
    for number, raw in enumerate(raw_lines, start=1):
        if len(raw) > store.max_line_bytes:
            raise _line_error(
                number,
                f"the line has {len(raw)} bytes, more than the limit of {store.max_line_bytes}.",
            )
        try:
            item = json.loads(raw.decode("utf-8"))
        except ValueError:  # JSONDecodeError and UnicodeDecodeError; blank lines too
            raise _line_error(number, "the line is not valid JSON.") from None
        if not isinstance(item, dict):
            raise _line_error(number, "the line should be a JSON object.")
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            raise _line_error(number, "'custom_id' is missing or not a non-empty string.")
        if custom_id in seen:
            raise _line_error(number, f"custom_id '{custom_id}' is duplicated in the file.")
        seen.add(custom_id)
        if item.get("method") != "POST":
            raise _line_error(number, "'method' should be 'POST'.")
        url = item.get("url")
        if url not in BATCH_LINE_URLS:
            raise _line_error(number, f"'url' should be one of {', '.join(BATCH_LINE_URLS)}.")
        body = item.get("body")
        if not isinstance(body, dict):
            raise _line_error(number, "'body' is missing or not a JSON object.")
        lines.append(InputLine(number=number, custom_id=custom_id, url=str(url), body=body))
    return tuple(lines)


def _upload(store: Store, request: Request, raw: bytes) -> Response:
    parts = _parse_multipart(request.headers.get("content-type", ""), raw)
    purpose_part = parts.get("purpose")
    if purpose_part is None:
        raise bad_request("Required parameter 'purpose' missing.")
    purpose = purpose_part.data.decode("utf-8", "replace").strip()
    if purpose != "batch":
        # The service also knows other purposes (e.g. file-extract); the emulator serves only
        # the Batch API's.
        raise bad_request(f"purpose '{purpose}' is not supported; use 'batch'.")
    file_part = parts.get("file")
    if file_part is None:
        raise bad_request("Required parameter 'file' missing.")
    with store.lock:
        lines = _parse_batch_file(store, file_part.data)
        stored = StoredFile(
            id=f"file-batch-{uuid.uuid4().hex}",
            filename=file_part.filename or "upload.jsonl",
            purpose="batch",
            data=file_part.data,
            created_at=int(store.now()),
            lines=lines,
        )
        store.files[stored.id] = stored
        store.counters.uploads += 1
        store.counters.bytes_uploaded += len(file_part.data)
    return json_response(stored.to_json())


def _file(store: Store, file_id: str) -> StoredFile:
    stored = store.files.get(file_id)
    if stored is None:
        raise not_found(f"No such file: {file_id}")
    return stored


def handle(state: ServerState, store: Store, request: Request, raw: bytes) -> Response:  # noqa: ARG001
    """Answer one authenticated request under ``/compatible-mode/v1/files``.

    Raises:
        ServiceError: For every error answer (the caller renders it in the compatible shape).
    """
    rest = request.url.path[len(FILES_PATH) :].strip("/")
    segments = rest.split("/") if rest else []
    method = request.method
    if not segments:
        if method == "POST":
            return _upload(store, request, raw)
        if method == "GET":
            with store.lock:
                data = [f.to_json() for f in reversed(store.files.values())]
            first = data[0]["id"] if data else None
            last = data[-1]["id"] if data else None
            return json_response(
                {
                    "object": "list",
                    "data": data,
                    "first_id": first,
                    "last_id": last,
                    "has_more": False,
                }
            )
        raise method_not_allowed(method, "GET, POST")
    file_id = segments[0]
    if len(segments) == 1:
        with store.lock:
            if method == "GET":
                return json_response(_file(store, file_id).to_json())
            if method == "DELETE":
                _file(store, file_id)
                del store.files[file_id]
                return json_response({"id": file_id, "object": "file", "deleted": True})
        raise method_not_allowed(method, "GET, DELETE")
    if len(segments) == 2 and segments[1] == "content":
        if method != "GET":
            raise method_not_allowed(method, "GET")
        with store.lock:
            stored = _file(store, file_id)
            store.counters.content_downloads += 1
        return Response(stored.data, media_type="application/octet-stream")
    raise not_found(f"Not found: {request.url.path}")
