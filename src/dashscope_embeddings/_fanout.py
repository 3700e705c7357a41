"""Running a call's requests side by side: limiters and all-or-nothing fan-out.

A call (say, 2,000 texts) becomes many requests. They run concurrently — on the client's
thread pool for the sync client, as tasks on the running event loop for the async one — and
come back in request order. All or nothing: the first request that fails stops the others
(queued ones never start, running ones stop before their next attempt or backoff wait), and
its error is raised; the same happens on ``KeyboardInterrupt`` or task cancellation.

How many requests are on the wire at once is bounded by the client's limiter
(``_limiter.py``), which the transport holds per attempt only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import typing
from collections.abc import Awaitable, Callable, Sequence

from dashscope_embeddings._transport import CallCancelled

__all__ = ["run_all_async", "run_all_sync"]

T = typing.TypeVar("T")


def _first_error(futures: Sequence[concurrent.futures.Future[T]]) -> BaseException | None:
    """The error to raise: the first real failure in request order (not a cancellation)."""
    for future in futures:
        if future.done() and not future.cancelled():
            exc = future.exception()
            if exc is not None and not isinstance(exc, CallCancelled):
                return exc
    return None


def _guarded(job: Callable[[threading.Event], T], cancel: threading.Event) -> T:
    """Run one job; a failure stops its siblings at once, from the thread that saw it."""
    try:
        return job(cancel)
    except BaseException:
        cancel.set()
        raise


def run_all_sync(
    pool: concurrent.futures.Executor,
    jobs: Sequence[Callable[[threading.Event], T]],
) -> list[T]:
    """Run ``jobs`` on ``pool``; results in job order, or the first failure raised.

    Each job gets the call's cancel event and must stop at its next check once it is set.
    A single job runs in the calling thread.
    """
    cancel = threading.Event()
    if len(jobs) == 1:
        return [jobs[0](cancel)]
    futures = [pool.submit(_guarded, job, cancel) for job in jobs]
    try:
        concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
    except BaseException:  # KeyboardInterrupt: stop sending, do not wait for the wire
        cancel.set()
        for future in futures:
            future.cancel()
        raise
    if all(f.done() and not f.cancelled() and f.exception() is None for f in futures):
        return [f.result() for f in futures]
    cancel.set()
    for future in futures:
        future.cancel()
    # Requests on the wire finish their attempt (what they billed is recorded) and stop; no
    # thread of this call is left sending once it raises.
    concurrent.futures.wait(futures)
    error = _first_error(futures)
    if error is None:  # pragma: no cover - only CallCancelled, which needs a failure first
        raise CallCancelled
    raise error


async def run_all_async(coros: Sequence[Awaitable[T]]) -> list[T]:
    """Run side by side; on the first failure cancel the rest and raise it."""
    if len(coros) == 1:
        return [await coros[0]]
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in tasks:
            if task in done and not task.cancelled() and task.exception() is not None:
                raise typing.cast(BaseException, task.exception())
        return [t.result() for t in tasks]
    finally:
        pending = [t for t in tasks if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
