"""Progress of a call, counted in the caller's texts: a callback, or a tqdm bar.

``progress=True`` shows a tqdm bar (the ``progress`` extra); a callable is called as
``progress(done, total)`` after each request comes back, ``done`` counting the caller's inputs
finished so far. Identical inputs sent once and long texts sent in chunks are counted by the
caller's inputs they stand for, so the count ends exactly at ``total``.
"""

from __future__ import annotations

import threading
import typing
from collections.abc import Callable, Sequence

__all__ = ["Progress", "ProgressTracker", "make_tracker"]

Progress = typing.Union[bool, Callable[[int, int], None], None]  # noqa: UP007 (py3.10 alias)
"""``True`` for a tqdm bar, a callable ``(done, total)``, or ``None`` / ``False`` for nothing."""


class ProgressTracker:
    """Turns "these units came back" into "this many of the caller's inputs are done"."""

    def __init__(
        self,
        refs: Sequence[Sequence[tuple[int, float]]],
        report: Callable[[int, int], None],
        close: Callable[[], None] | None = None,
        offset: int = 0,
        total: int | None = None,
    ) -> None:
        # Each unit carries a share of the inputs that use it: a chunk of an input split in
        # three carries a third; a text sent once for four identical inputs carries four.
        shares: dict[int, float] = {}
        for parts in refs:
            for unit, _ in parts:
                shares[unit] = shares.get(unit, 0.0) + 1.0 / len(parts)
        self._shares = shares
        self._order: list[int] = []
        self._done = 0.0
        self._reported = 0
        self._count = len(refs)
        self._offset = offset
        self._total = total if total is not None else len(refs)
        self._report = report
        self._close = close
        self._lock = threading.Lock()

    def units_done(self, units: Sequence[int]) -> None:
        """Some units came back (embedded or failed)."""
        with self._lock:
            self._done += sum(self._shares.get(u, 0.0) for u in units)
            done = min(self._count, round(self._done))
            if done > self._reported:
                self._reported = done
                self._report(self._offset + done, self._total)

    def finish(self) -> None:
        """The call is over (whole or not): close a bar."""
        if self._close is not None:
            self._close()


def make_tracker(
    progress: Progress,
    refs: Sequence[Sequence[tuple[int, float]]],
    *,
    description: str,
) -> ProgressTracker | None:
    """A tracker for ``progress``, or ``None`` when nothing is to be shown.

    Raises:
        ImportError: For ``progress=True`` without tqdm, naming the pip command.
    """
    if progress is None or progress is False:
        return None
    if progress is True:
        try:
            from tqdm.auto import tqdm  # type: ignore[import-untyped]
        except ImportError as exc:
            raise ImportError(
                'progress=True shows a tqdm bar: pip install "dashscope-embeddings[progress]"'
            ) from exc
        bar = tqdm(total=len(refs), desc=description, unit="text")

        def advance(done: int, total: int) -> None:  # noqa: ARG001 - tqdm knows the total
            bar.update(done - bar.n)

        return ProgressTracker(refs, advance, bar.close)
    if not callable(progress):
        raise TypeError(f"progress must be True, False, None or a callable, got {progress!r}")
    return ProgressTracker(refs, progress)
