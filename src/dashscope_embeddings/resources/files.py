"""The OpenAI-compatible file endpoints, used by the Batch API: requests and parsing.

``POST {compatible}/files`` (multipart ``file`` + ``purpose``), ``GET /files`` (list),
``GET /files/{id}``,
``GET /files/{id}/content`` (raw bytes), ``DELETE /files/{id}``. Reference:
https://www.alibabacloud.com/help/en/model-studio/batch-inference
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field

from dashscope_embeddings._config import Endpoints
from dashscope_embeddings._constants import FILES_PATH
from dashscope_embeddings._transport import Answer, APIRequest
from dashscope_embeddings.resources._common import as_dict, malformed

__all__ = [
    "FileObject",
    "content_request",
    "delete_request",
    "list_request",
    "parse_file_list",
    "parse_file",
    "parse_content",
    "parse_deleted",
    "retrieve_request",
    "upload_request",
]

# A downloaded output file holds every vector of up to 50,000 lines: allow far more than a
# JSON answer, but still a bound.
MAX_FILE_BYTES = 4 * 1024 * 1024 * 1024


@dataclass(frozen=True)
class FileObject:
    """A file stored by the service (OpenAI file object)."""

    id: str
    bytes: int | None
    filename: str | None
    purpose: str | None
    created_at: int | None
    raw: dict[str, typing.Any] = field(repr=False, compare=False, default_factory=dict)


def _url(endpoints: Endpoints, *parts: str) -> str:
    return "/".join([endpoints.compatible_base + FILES_PATH, *parts])


def upload_request(
    endpoints: Endpoints, content: bytes, *, filename: str, purpose: str = "batch"
) -> APIRequest:
    """Upload ``content`` as ``filename`` (multipart).

    Not idempotent: an upload the service may have stored (its answer lost or late) is never
    sent again blindly, which would leave an orphan copy; the caller looks for it first
    (``files.list()``, by name and size), as a batch job does.
    """
    return APIRequest(
        "POST",
        _url(endpoints),
        files={"file": (filename, content, "application/jsonl")},
        data={"purpose": purpose},
        idempotent=False,
        label=f"upload {filename} ({len(content):,} bytes)",
    )


def retrieve_request(endpoints: Endpoints, file_id: str) -> APIRequest:
    """Get a file object."""
    return APIRequest("GET", _url(endpoints, file_id), label=f"file {file_id}")


def list_request(endpoints: Endpoints) -> APIRequest:
    """List stored files."""
    return APIRequest("GET", _url(endpoints), label="list files")


def content_request(endpoints: Endpoints, file_id: str) -> APIRequest:
    """Download a file's bytes."""
    return APIRequest(
        "GET",
        _url(endpoints, file_id, "content"),
        expect_json=False,
        max_response_bytes=MAX_FILE_BYTES,
        label=f"file {file_id} content",
    )


def delete_request(endpoints: Endpoints, file_id: str) -> APIRequest:
    """Delete a file."""
    return APIRequest("DELETE", _url(endpoints, file_id), label=f"delete file {file_id}")


def parse_file(answer: Answer) -> FileObject:
    """A file object from its JSON."""
    body = as_dict(answer.payload, "the file object", answer.request_id)
    file_id = body.get("id")
    if not isinstance(file_id, str) or not file_id:
        raise malformed("the file object has no id", answer.request_id)
    size = body.get("bytes")
    created = body.get("created_at")
    return FileObject(
        id=file_id,
        bytes=size if isinstance(size, int) else None,
        filename=body.get("filename") if isinstance(body.get("filename"), str) else None,
        purpose=body.get("purpose") if isinstance(body.get("purpose"), str) else None,
        created_at=created if isinstance(created, int) else None,
        raw=body,
    )


def parse_file_list(answer: Answer) -> list[FileObject]:
    """The files of a list answer (``{"data": [...]}``)."""
    body = as_dict(answer.payload, "the file list", answer.request_id)
    data = body.get("data")
    if not isinstance(data, list):
        raise malformed("the file list has no data", answer.request_id)
    return [
        parse_file(Answer(answer.status_code, answer.headers, b"", item, answer.request_id))
        for item in data
    ]


def parse_content(answer: Answer) -> bytes:
    """The raw bytes of a download."""
    return answer.content


def parse_deleted(answer: Answer) -> bool:
    """Whether the service says the file is deleted."""
    body = as_dict(answer.payload, "the deletion answer", answer.request_id)
    return bool(body.get("deleted"))
