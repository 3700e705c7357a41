"""The file task of text-embedding-async-v1 / -v2: its create request and its result file.

Create: ``POST {native}/services/embeddings/text-embedding/text-embedding`` with
``X-DashScope-Async: enable`` and ``{"model", "input": {"url"}, "parameters": {"text_type"}}``;
the answer is ``output.task_id`` / ``output.task_status`` (polled with :mod:`.tasks`).
Reference: https://help.aliyun.com/zh/model-studio/text-embedding-batch-api

The result file's layout is not fully documented, so it is read tolerantly: gzip'd or not, JSON
lines each with the line's index (``text_index`` or ``index``) and its vector (``embedding``),
possibly wrapped in ``output``, possibly a per-line ``code`` / ``message`` instead of a vector.
Anything else fails with :class:`ResultFileError` naming what was found.
"""

from __future__ import annotations

import gzip
import json
import typing
import zlib
from dataclasses import dataclass

from dashscope_embeddings._config import Endpoints
from dashscope_embeddings._constants import TEXT_EMBEDDING_PATH
from dashscope_embeddings._errors import DashScopeError
from dashscope_embeddings._transport import APIRequest

__all__ = [
    "FileTaskFailure",
    "ResultFileError",
    "create_request",
    "parse_result_file",
]

_SHOWN = 120


class ResultFileError(DashScopeError, ValueError):
    """A task's result file that cannot be read as one vector (or error) per input line."""


@dataclass(frozen=True)
class FileTaskFailure:
    """One input line the task could not embed.

    Attributes:
        index: 0-based line number in the input file.
        code: The service's error code for the line.
        message: The service's message.
    """

    index: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"line {self.index}: {self.code}: {self.message}"


def create_request(endpoints: Endpoints, model: str, url: str, text_type: str) -> APIRequest:
    """Create a task over the input file at ``url`` (not idempotent: it is billed)."""
    body = {"model": model, "input": {"url": url}, "parameters": {"text_type": text_type}}
    return APIRequest(
        "POST",
        f"{endpoints.native_base}{TEXT_EMBEDDING_PATH}",
        content=json.dumps(body, ensure_ascii=False).encode("utf-8"),
        headers={"X-DashScope-Async": "enable"},
        idempotent=False,
        label="create file task",
    )


def _shown(raw: bytes | str) -> str:
    text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
    text = " ".join(text.split())
    return repr(text[:_SHOWN] + ("..." if len(text) > _SHOWN else ""))


def _decompress(data: bytes) -> bytes:
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise ResultFileError(
                f"the result file looks gzip'd ({len(data)} bytes) but cannot be "
                f"decompressed: {error}"
            ) from None
    return data


def _record(line: str, number: int) -> dict[str, typing.Any]:
    try:
        value = json.loads(line)
    except ValueError:
        raise ResultFileError(f"result file line {number} is not JSON: {_shown(line)}") from None
    if isinstance(value, dict) and isinstance(value.get("output"), dict):
        inner: dict[str, typing.Any] = dict(value["output"])
        for key in ("code", "message"):  # a per-line error may sit beside "output"
            if key not in inner and key in value:
                inner[key] = value[key]
        value = inner
    if not isinstance(value, dict):
        raise ResultFileError(f"result file line {number} is not a JSON object: {_shown(line)}")
    return value


def _index(record: dict[str, typing.Any], number: int, line: str) -> int:
    for key in ("text_index", "index", "line_index"):
        value = record.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    raise ResultFileError(
        f"result file line {number} has no line index (text_index / index); keys "
        f"{sorted(record)}: {_shown(line)}"
    )


def _vector(record: dict[str, typing.Any]) -> list[float] | None:
    value = record.get("embedding")
    if (
        isinstance(value, list)
        and value
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value)
    ):
        return [float(x) for x in value]
    return None


def parse_result_file(
    data: bytes, expected: int | None = None
) -> tuple[list[list[float] | None], list[FileTaskFailure]]:
    """Vectors in input line order (``None`` where a line failed) and the failed lines.

    Args:
        data: The downloaded file (gzip'd or not).
        expected: The input's line count, when known; every index ``0 .. expected - 1`` must
            then appear exactly once. Without it the indices must be ``0 .. n - 1``.

    Raises:
        ResultFileError: For anything that is not one vector or error per input line, naming
            the line and what it held.
    """
    raw = _decompress(data)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ResultFileError(
            f"the result file is neither gzip'd nor UTF-8 text ({len(data)} bytes): {_shown(raw)}"
        ) from None
    found: dict[int, list[float] | FileTaskFailure] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        record = _record(line, number)
        index = _index(record, number, line)
        if index < 0 or (expected is not None and index >= expected):
            limit = f" (the input has {expected} lines)" if expected is not None else ""
            raise ResultFileError(f"result file line {number} names line {index}{limit}")
        if index in found:
            raise ResultFileError(f"result file line {number} repeats line {index}")
        vector = _vector(record)
        code = record.get("code")
        if vector is not None and not code:
            found[index] = vector
        elif code or record.get("message"):
            found[index] = FileTaskFailure(
                index, str(code or "Unknown"), str(record.get("message") or "")
            )
        else:
            raise ResultFileError(
                f"result file line {number} has neither a vector (embedding) nor an error "
                f"(code / message); keys {sorted(record)}: {_shown(line)}"
            )
    count = expected if expected is not None else (max(found) + 1 if found else 0)
    missing = [i for i in range(count) if i not in found]
    if missing or not found:
        shown = ", ".join(str(i) for i in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise ResultFileError(
            f"the result file has {len(found)} of {count} lines"
            + (f"; missing lines: {shown}" if missing else "")
        )
    vectors: list[list[float] | None] = []
    failures: list[FileTaskFailure] = []
    for i in range(count):
        entry = found[i]
        if isinstance(entry, FileTaskFailure):
            failures.append(entry)
            vectors.append(None)
        else:
            vectors.append(entry)
    return vectors, failures
