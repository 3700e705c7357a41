"""Running a call's requests side by side, keeping every finished vector.

A call (say, 20,000 texts) becomes many requests, each carrying some of the call's *units*
(the texts actually sent). They run concurrently — on the client's thread pool for the sync
client, as tasks on the running event loop for the async one — under the client's limiter
(held by the transport per attempt).

What happens when a request fails for good (its retries spent):

* The service rejected its input (HTTP 400, content inspection): the request is split in two
  and each half sent again, down to the one unit at fault, which is recorded as failed; every
  other unit is embedded. If more than ``max(10, units / 10)`` units fail this way, the
  options rather than the inputs are at fault: the call stops. A unit the service found too
  long (``InvalidParameter`` about the input length) is first offered to the plan's
  ``recut`` (``long_text`` truncate / chunk: cut shorter and sent again, one retry of the
  budget each); only if that declines is it recorded as failed, with the service's message.
* Anything else (authentication, an unknown model, the service still failing once the retry
  budget is spent): the call stops at once — queued requests never start, running ones stop
  before their next attempt or backoff wait — and that error is raised, carrying what the
  finished requests returned. The same happens on ``KeyboardInterrupt`` or task cancellation.

Retries draw on a budget shared by the call (:class:`RetryBudget`): ``max_retries`` plus one
per other request in flight to start with, one more for every request that succeeds. A flaky
minute in a long job is absorbed; a dead service fails after about a dozen retries.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
import typing
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from dashscope_embeddings._errors import APIError, BadRequestError
from dashscope_embeddings._retry import RetryBudget
from dashscope_embeddings._transport import Answer, APIRequest, CallCancelled
from dashscope_embeddings._types import SparseVector, Usage

__all__ = [
    "CallOutcome",
    "CallPlan",
    "Job",
    "UnitOutput",
    "is_length_rejection",
    "run_call_async",
    "run_call_sync",
]

@dataclass(frozen=True)
class Job:
    """One request of a call and the units (positions in the call's unit list) it carries."""

    request: APIRequest
    units: tuple[int, ...]


@dataclass(frozen=True)
class UnitOutput:
    """A successful request's vectors, in the order of ``units``."""

    units: tuple[int, ...]
    dense: list[list[float]] | None
    sparse: list[SparseVector] | None
    total_tokens: int
    request_id: str | None
    image_tokens: int = 0
    """Of ``total_tokens``, those the service counted for images and video (priced apart)."""


class CallPlan(typing.Protocol):
    """What an endpoint module gives the fan-out: initial requests, and how to re-plan."""

    @property
    def jobs(self) -> Sequence[Job]:
        """The call's requests, as first planned."""

    @property
    def unit_count(self) -> int:
        """How many units the call sends."""

    def build(self, units: Sequence[int]) -> Job:
        """A request carrying exactly ``units`` (used to split a rejected request)."""

    def parser(self, job: Job) -> Callable[[Answer], UnitOutput]:
        """The parser of ``job``'s answer."""

    def usage(self, output: UnitOutput) -> Usage:
        """What one successful request billed."""


@dataclass
class CallOutcome:
    """Everything a call produced: successful outputs, failed units, the error that stopped it."""

    outputs: list[UnitOutput] = field(default_factory=list)
    failures: dict[int, APIError] = field(default_factory=dict)
    fatal: BaseException | None = None
    retries: int = 0


def is_length_rejection(error: BaseException) -> bool:
    """Whether the service refused a request because an input is too long.

    HTTP 400 ``InvalidParameter`` whose message is about the input length ("Range of input
    length should be [1, 8192]"): the code alone does not tell it from other bad parameters.
    """
    if not isinstance(error, BadRequestError) or getattr(error, "code", None) != "InvalidParameter":
        return False
    message = str(getattr(error, "message", "") or error).lower()
    return "length" in message or "too long" in message


def _rejects_input(error: BaseException) -> bool:
    """Whether the service refused the request for what it carries (so a part may pass)."""
    return isinstance(error, BadRequestError)


class _CallState:
    """The bookkeeping both drivers share: outcomes in, requests to send out."""

    def __init__(
        self, plan: CallPlan, budget: RetryBudget, progress: Callable[[Sequence[int]], None] | None
    ) -> None:
        self.plan = plan
        self.budget = budget
        self.progress = progress
        self.outcome = CallOutcome()
        self.max_failed = max(10, plan.unit_count // 10)

    def handle(self, job: Job, result: UnitOutput | BaseException) -> list[Job]:
        """Record one finished job; return the jobs to send next."""
        if isinstance(result, UnitOutput):
            self.outcome.outputs.append(result)
            if self.progress is not None:
                self.progress(result.units)
            return []
        if isinstance(result, CallCancelled) or self.outcome.fatal is not None:
            return []
        if not _rejects_input(result) or not isinstance(result, APIError):
            self.outcome.fatal = result
            return []
        if len(job.units) > 1:
            half = len(job.units) // 2
            return [self.plan.build(job.units[:half]), self.plan.build(job.units[half:])]
        recut = getattr(self.plan, "recut", None)
        if recut is not None and is_length_rejection(result) and self.budget.take():
            follow = recut(job.units[0], result)
            if follow is not None:
                self.outcome.retries += 1
                return [follow]
        self.outcome.failures[job.units[0]] = result
        if self.progress is not None:
            self.progress(job.units)
        if len(self.outcome.failures) > self.max_failed:
            self.outcome.fatal = result  # too many inputs refused: the options are at fault
        return []


def _run_job(
    send: Callable[[Job, threading.Event], UnitOutput], job: Job, cancel: threading.Event
) -> UnitOutput | BaseException:
    try:
        return send(job, cancel)
    except Exception as exc:  # every failure is an outcome; the driver decides
        if not isinstance(exc, CallCancelled) and not _rejects_input(exc):
            cancel.set()  # fatal: stop the siblings now, from the thread that saw it
        return exc


def run_call_sync(
    pool: concurrent.futures.Executor,
    plan: CallPlan,
    budget: RetryBudget,
    send: Callable[[Job, threading.Event], UnitOutput],
    progress: Callable[[Sequence[int]], None] | None = None,
) -> CallOutcome:
    """Send every job of ``plan`` on ``pool``, splitting rejected ones.

    A call of one request runs in this thread. Everything stops on a fatal error or an
    interrupt.
    """
    state = _CallState(plan, budget, progress)
    cancel = threading.Event()
    jobs = list(plan.jobs)
    while len(jobs) == 1:  # a one-request call never touches the pool
        job = jobs.pop()
        jobs = state.handle(job, _run_job(send, job, cancel))
    running: dict[concurrent.futures.Future[UnitOutput | BaseException], Job] = {}
    # Each future reports itself when done: one hand-over per request, where waiting on the
    # whole set again after each completion costs a waiter on every pending future.
    finished: queue.SimpleQueue[concurrent.futures.Future[UnitOutput | BaseException]]
    finished = queue.SimpleQueue()

    def submit(job: Job) -> None:
        future = pool.submit(_run_job, send, job, cancel)
        running[future] = job
        future.add_done_callback(finished.put)

    try:
        for job in jobs:
            submit(job)
        while running:
            future = finished.get()
            job_done = running.pop(future, None)
            if job_done is None or future.cancelled():
                continue
            for follow in state.handle(job_done, future.result()):
                if state.outcome.fatal is None:
                    submit(follow)
            if state.outcome.fatal is not None and not cancel.is_set():
                # Stop the call: queued jobs never start; running ones stop at their next
                # check, and what they billed is still recorded.
                cancel.set()
                for other in running:
                    other.cancel()
    except BaseException:  # KeyboardInterrupt: stop sending, do not wait for the wire
        cancel.set()
        for future in running:
            future.cancel()
        raise
    return state.outcome


async def run_call_async(
    plan: CallPlan,
    budget: RetryBudget,
    send: Callable[[Job], Awaitable[UnitOutput]],
    progress: Callable[[Sequence[int]], None] | None = None,
) -> CallOutcome:
    """Async :func:`run_call_sync`: jobs are tasks; cancelling the caller cancels them all."""
    state = _CallState(plan, budget, progress)

    async def run(job: Job) -> UnitOutput | BaseException:
        try:
            return await send(job)
        except Exception as exc:
            return exc

    running: dict[asyncio.Task[UnitOutput | BaseException], Job] = {}
    try:
        for job in plan.jobs:
            running[asyncio.ensure_future(run(job))] = job
        while running:
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                job = running.pop(task)
                for follow in state.handle(job, task.result()):
                    if state.outcome.fatal is None:
                        running[asyncio.ensure_future(run(follow))] = follow
            if state.outcome.fatal is not None and running:
                for task in running:
                    task.cancel()
                results = await asyncio.gather(*running, return_exceptions=True)
                for task, result in zip(list(running), results, strict=True):
                    if isinstance(result, UnitOutput):  # finished just before the cancel
                        state.handle(running[task], result)
                running.clear()
    finally:
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
    return state.outcome
