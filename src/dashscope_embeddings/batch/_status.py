"""Where a job stands: :class:`JobStatus` with one :class:`PartStatus` per batch."""

from __future__ import annotations

from dataclasses import dataclass

from dashscope_embeddings._errors import DashScopeError
from dashscope_embeddings.batch._state import TERMINAL, Part

__all__ = ["JobStatus", "PartStatus", "WaitTimeoutError", "part_status"]


class WaitTimeoutError(DashScopeError, TimeoutError):
    """``wait(timeout=...)`` ran out; the job goes on, and ``status`` is where it stood.

    A :class:`~dashscope_embeddings.DashScopeError` (not an ``APIError``: every request was
    answered, the batches are just not finished) and, as ever, a ``TimeoutError``.
    """

    def __init__(self, message: str, status: JobStatus) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class PartStatus:
    """One batch of a job.

    Attributes:
        name: The part (``part-0000``, ...).
        attempt: 0 for the first submission, ``n`` for the ``n``-th resubmission.
        batch_id: The service's batch id, once created.
        status: The service's status, or ``submitting`` before the batch exists.
        lines: Lines in its input file.
        texts: Inputs those lines carry.
        completed: Lines done, as last reported.
        failed: Lines failed, as last reported.
        resubmitted: Its failed inputs were sent again in later batches.
    """

    name: str
    attempt: int
    batch_id: str | None
    status: str
    lines: int
    texts: int
    completed: int
    failed: int
    resubmitted: bool = False


@dataclass(frozen=True)
class JobStatus:
    """Where a job stands: every part's batch, and totals.

    >>> status = job.status()  # doctest: +SKIP
    >>> status.done, status.finished_lines, status.lines  # doctest: +SKIP
    >>> print(status)  # '2 batches: 1 completed, 1 in_progress; 830/1,000 lines done, 3 failed'
    """

    parts: tuple[PartStatus, ...]

    @property
    def done(self) -> bool:
        """Whether every batch reached a final status."""
        return all(p.status in TERMINAL for p in self.parts)

    @property
    def lines(self) -> int:
        """Lines in all parts; a resubmitted line counts once, in its last batch."""
        return sum(p.lines - (p.failed if p.resubmitted else 0) for p in self.parts)

    @property
    def completed_lines(self) -> int:
        """Lines that succeeded, as last reported."""
        return sum(p.completed for p in self.parts)

    @property
    def failed_lines(self) -> int:
        """Lines that failed, as last reported, and were not resubmitted."""
        return sum(p.failed for p in self.parts if not p.resubmitted)

    @property
    def finished_lines(self) -> int:
        """Lines done either way (a resubmitted line counts once, by its last outcome)."""
        return sum(p.completed + (0 if p.resubmitted else p.failed) for p in self.parts)

    @property
    def statuses(self) -> dict[str, int]:
        """How many batches are in each status."""
        counts: dict[str, int] = {}
        for part in self.parts:
            counts[part.status] = counts.get(part.status, 0) + 1
        return counts

    def __str__(self) -> str:
        by_status = ", ".join(f"{n} {s}" for s, n in self.statuses.items())
        return (
            f"{len(self.parts)} batch{'es' if len(self.parts) != 1 else ''}: {by_status}; "
            f"{self.finished_lines:,}/{self.lines:,} lines done, {self.failed_lines:,} failed"
        )


def part_status(part: Part) -> PartStatus:
    counts = part.request_counts
    completed, failed = counts.get("completed", 0), counts.get("failed", 0)
    if part.done and completed + failed < len(part.lines):
        failed = len(part.lines) - completed  # a failed batch, or cancelled before creation
    return PartStatus(
        name=part.name,
        attempt=part.attempt,
        batch_id=part.batch_id,
        status=part.status or "submitting",
        lines=len(part.lines),
        texts=part.texts,
        completed=completed,
        failed=failed,
        resubmitted=part.resubmitted,
    )
