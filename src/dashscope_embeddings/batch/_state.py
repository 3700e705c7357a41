"""A batch job's state on disk: what was planned, uploaded, created, finished and downloaded.

The state is one JSON file (``state_path``) plus a folder beside it, ``<state_path>.d/``,
holding the inputs (``inputs.jsonl``: one ``{"text", "id"}`` per input) and the downloaded
output and error files (``<part>.<file id>.jsonl``). Every write goes to a temporary file that
then replaces the old one (``os.replace``), so a crash at any moment leaves either the old
state or the new one, never a torn file. The API key is never written.
"""

from __future__ import annotations

import json
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path

from dashscope_embeddings._errors import DashScopeError

__all__ = [
    "TERMINAL",
    "BatchStateError",
    "JobState",
    "Part",
    "data_dir",
    "write_atomic",
]

STATE_VERSION = 1
_KIND = "dashscope-embeddings batch job"
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
"""Statuses after which a batch never changes."""


class BatchStateError(DashScopeError, ValueError):
    """A state file that cannot be used: missing, not a job's state, or from another job."""


@dataclass
class Part:
    """One input file and the batch that runs it.

    Attributes:
        name: ``part-0000``, ``part-0001``, ... in submission order.
        attempt: 0 for the first submission, ``n`` for the ``n``-th ``resubmit_failed``.
        lines: The input range ``[start, stop)`` of each line, in file order.
        file_id: The uploaded input file, once the upload was answered.
        upload_started: An upload was (perhaps) sent; before uploading again, look for the
            file among the service's files (by name and size).
        batch_id: The batch, once its creation was answered.
        create_started: A create request was (perhaps) sent; before creating again, look for
            the batch among the service's batches.
        status: The batch's last known status; ``None`` before creation. A part cancelled
            before its batch was created is ``cancelled`` with no ``batch_id``.
        request_counts: The batch's last known ``total`` / ``completed`` / ``failed``.
        output_file_id: Output file, once finished.
        error_file_id: Error file, once finished.
        errors: The batch's own errors (status ``failed``), as the service gave them.
        downloaded: The output and error files are saved in the data folder.
        resubmitted: Its failed inputs were sent again in later parts.
    """

    name: str
    attempt: int
    lines: list[tuple[int, int]]
    file_id: str | None = None
    upload_started: bool = False
    batch_id: str | None = None
    create_started: bool = False
    status: str | None = None
    request_counts: dict[str, int] = field(default_factory=dict)
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[dict[str, typing.Any]] = field(default_factory=list)
    downloaded: bool = False
    resubmitted: bool = False

    @property
    def done(self) -> bool:
        """Whether the batch reached a final status (or the part was cancelled unsent)."""
        return self.status in TERMINAL

    @property
    def texts(self) -> int:
        """How many inputs the part carries."""
        return sum(stop - start for start, stop in self.lines)

    def to_json(self) -> dict[str, typing.Any]:
        """The part as JSON (lines as ``[start, stop]`` pairs)."""
        return {
            "name": self.name,
            "attempt": self.attempt,
            "lines": [[start, stop] for start, stop in self.lines],
            "file_id": self.file_id,
            "upload_started": self.upload_started,
            "batch_id": self.batch_id,
            "create_started": self.create_started,
            "status": self.status,
            "request_counts": self.request_counts,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "errors": self.errors,
            "downloaded": self.downloaded,
            "resubmitted": self.resubmitted,
        }

    @classmethod
    def from_json(cls, raw: typing.Any) -> Part:
        """A part from :meth:`to_json`'s output.

        Raises:
            KeyError, TypeError, ValueError: For a malformed entry.
        """
        lines = [(int(start), int(stop)) for start, stop in raw["lines"]]
        return cls(
            name=str(raw["name"]),
            attempt=int(raw["attempt"]),
            lines=lines,
            file_id=raw.get("file_id"),
            upload_started=bool(raw.get("upload_started")),
            batch_id=raw.get("batch_id"),
            create_started=bool(raw.get("create_started")),
            status=raw.get("status"),
            request_counts=dict(raw.get("request_counts") or {}),
            output_file_id=raw.get("output_file_id"),
            error_file_id=raw.get("error_file_id"),
            errors=list(raw.get("errors") or []),
            downloaded=bool(raw.get("downloaded")),
            resubmitted=bool(raw.get("resubmitted")),
        )


@dataclass
class JobState:
    """Everything needed to resume a job: its settings and its parts."""

    job_id: str
    model: str
    dimension: int | None
    count: int
    has_ids: bool
    fingerprint: str
    region: str
    texts_per_line: int
    max_lines_per_file: int
    max_file_bytes: int
    completion_window: str
    metadata: dict[str, str]
    parts: list[Part]

    def to_json(self) -> dict[str, typing.Any]:
        """The state as JSON."""
        return {
            "kind": _KIND,
            "version": STATE_VERSION,
            "job_id": self.job_id,
            "model": self.model,
            "dimension": self.dimension,
            "count": self.count,
            "has_ids": self.has_ids,
            "fingerprint": self.fingerprint,
            "region": self.region,
            "texts_per_line": self.texts_per_line,
            "max_lines_per_file": self.max_lines_per_file,
            "max_file_bytes": self.max_file_bytes,
            "completion_window": self.completion_window,
            "metadata": self.metadata,
            "parts": [part.to_json() for part in self.parts],
        }

    def save(self, path: Path) -> None:
        """Write the state atomically."""
        data = json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":")).encode()
        write_atomic(path, data + b"\n")

    @classmethod
    def load(cls, path: Path) -> JobState:
        """Read a state written by :meth:`save`.

        Raises:
            BatchStateError: If the file is missing, unreadable or not a job's state.
        """
        try:
            raw = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise BatchStateError(f"no batch job state at {path}") from None
        except (OSError, ValueError) as exc:
            raise BatchStateError(f"cannot read batch job state {path}: {exc}") from None
        if not isinstance(raw, dict) or raw.get("kind") != _KIND:
            raise BatchStateError(f"{path} is not a batch job state file")
        if raw.get("version") != STATE_VERSION:
            raise BatchStateError(
                f"{path} has state version {raw.get('version')!r}; this release reads "
                f"version {STATE_VERSION}"
            )
        try:
            return cls(
                job_id=str(raw["job_id"]),
                model=str(raw["model"]),
                dimension=raw["dimension"],
                count=int(raw["count"]),
                has_ids=bool(raw["has_ids"]),
                fingerprint=str(raw["fingerprint"]),
                region=str(raw["region"]),
                texts_per_line=int(raw["texts_per_line"]),
                max_lines_per_file=int(raw["max_lines_per_file"]),
                max_file_bytes=int(raw["max_file_bytes"]),
                completion_window=str(raw["completion_window"]),
                metadata=dict(raw.get("metadata") or {}),
                parts=[Part.from_json(p) for p in raw["parts"]],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BatchStateError(f"{path} is a damaged batch job state ({exc!r})") from None


def data_dir(state_path: Path) -> Path:
    """The folder beside the state file that holds inputs and downloads."""
    return state_path.with_name(state_path.name + ".d")


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``.

    Readers (and a process resumed after a crash) see the old content or the new one, never a
    part of either.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
