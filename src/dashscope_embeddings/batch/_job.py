"""The public batch jobs: :class:`BatchJob` (sync) and :class:`AsyncBatchJob` (``await``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from dashscope_embeddings._client import AsyncDashScopeClient, DashScopeClient
from dashscope_embeddings._registry import ModelSpec
from dashscope_embeddings._tokens import TokenCounter
from dashscope_embeddings.batch._core import JobCore, load
from dashscope_embeddings.batch._plan import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_LINES_PER_FILE
from dashscope_embeddings.batch._results import BatchResults
from dashscope_embeddings.batch._run import run_async, run_sync
from dashscope_embeddings.batch._state import JobState
from dashscope_embeddings.batch._status import JobStatus

__all__ = ["AsyncBatchJob", "BatchJob"]

Progress = Callable[[JobStatus], object]


class BatchJob(JobCore):
    """A corpus embedded through the Batch API (half price), as a job that survives crashes.

    >>> from dashscope_embeddings.batch import BatchJob
    >>> job = BatchJob.submit(texts, model="text-embedding-v4", dimension=1024,
    ...                       state_path="corpus.job.json")  # doctest: +SKIP
    >>> job.wait()                       # polls until every batch is final  # doctest: +SKIP
    >>> results = job.results()          # doctest: +SKIP
    >>> if results.failed:               # per-line failures, with index, code and message
    ...     job.resubmit_failed(); job.wait(); results = job.results()  # doctest: +SKIP
    >>> vectors = results.embeddings     # input order; raises if anything is missing

    After a crash or Ctrl-C, ``BatchJob.resume("corpus.job.json")`` continues where the job
    stood: nothing is uploaded, created or billed twice. Create one with :meth:`submit` or
    :meth:`resume`; close it (or use ``with``) to release a client it created. One job object
    belongs to one thread at a time.
    """

    def __init__(
        self, state: JobState, state_path: Path, client: DashScopeClient, owns_client: bool
    ) -> None:
        super().__init__(state, state_path)
        self._client = client
        self._owns_client = owns_client

    @classmethod
    def submit(
        cls,
        texts: Iterable[str],
        *,
        model: str | ModelSpec,
        state_path: str | Path,
        dimension: int | None = None,
        client: DashScopeClient | None = None,
        ids: Iterable[str] | None = None,
        texts_per_line: int | None = None,
        max_lines_per_file: int = DEFAULT_MAX_LINES_PER_FILE,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        completion_window: str = "24h",
        metadata: Mapping[str, str] | None = None,
        token_counter: TokenCounter | None = None,
    ) -> BatchJob:
        """Check the texts, save the job, upload its files and create its batches.

        Every input is checked before anything is written or sent. The inputs and the plan
        are saved first; then each file is uploaded and its batch created, the state saved
        after each answer. If this raises after the state was written (a network error, a
        crash), :meth:`resume` continues.

        Args:
            texts: The texts (any iterable, read once); none may be empty.
            model: A model the Batch API serves (``text-embedding-v4`` / v3 / v2 / v1, ...).
            state_path: Where to keep the job's state (a JSON file; inputs and downloads go to
                the folder ``<state_path>.d`` beside it). Must not exist yet.
            dimension: Output size (sent as ``dimensions``); ``None`` for the model's default.
            client: The client to send with; default: a new ``DashScopeClient()`` (key and
                endpoint from the environment), closed by :meth:`close`.
            ids: One unique string id per text, kept with the results; default ``str(i)``.
            texts_per_line: Texts per request line; default the model's texts per request.
            max_lines_per_file: Lines per uploaded file, at most (the service's own limit is
                not confirmed; the default stays well below the believed 50,000).
            max_file_bytes: Bytes per uploaded file, at most (default 100 MiB).
            completion_window: The service's deadline for each batch (``24h`` .. ``336h``).
            metadata: Sent with each batch; ``ds_name`` gets ``/<part>`` appended.
            token_counter: An exact token counter for the length check (default: estimate).

        Raises:
            InvalidInputError: For a bad text (its index), id, option, or a model the Batch
                API does not serve; nothing is written or sent.
            BatchStateError: If ``state_path`` already holds a job.
            APIError: If the service refuses an upload or a batch; the state is kept.
        """
        own = client is None
        active = client if client is not None else DashScopeClient()
        try:
            state, path = cls.prepare(
                texts,
                model=model,
                dimension=dimension,
                state_path=state_path,
                ids=ids,
                region=active.endpoints.region,
                texts_per_line=texts_per_line,
                max_lines_per_file=max_lines_per_file,
                max_file_bytes=max_file_bytes,
                completion_window=completion_window,
                metadata=metadata,
                token_counter=token_counter,
            )
            job = cls(state, path, active, own)
            run_sync(active, job.submit_step())
        except BaseException:
            if own:
                active.close()
            raise
        return job

    @classmethod
    def resume(cls, state_path: str | Path, client: DashScopeClient | None = None) -> BatchJob:
        """Continue a job from its state: finish an interrupted submission, nothing twice.

        A file whose upload was recorded is not uploaded again; a batch whose creation may
        have been sent but was not recorded is looked for among the service's batches before
        one is created. (An upload cut off before its answer arrived is sent again: it is not
        billed, and it leaves an unused file at the service.)

        Args:
            state_path: The ``state_path`` given to :meth:`submit`.
            client: A client for the same region / base URL; default ``DashScopeClient()``.

        Raises:
            BatchStateError: If there is no job at ``state_path``, or it is damaged.
        """
        state, path = load(state_path)
        own = client is None
        active = client if client is not None else DashScopeClient()
        try:
            job = cls(state, path, active, own)
            run_sync(active, job.submit_step())
        except BaseException:
            if own:
                active.close()
            raise
        return job

    def status(self) -> JobStatus:
        """Ask the service where every unfinished batch stands (and save it)."""
        return run_sync(self._client, self.poll_step())

    def wait(
        self,
        poll_interval: float | None = None,
        timeout: float | None = None,
        progress: Progress | None = None,
    ) -> JobStatus:
        """Poll until every batch is final, downloading each one's files as it finishes.

        Args:
            poll_interval: Seconds between polls; default: from 1 s, growing to 30 s.
            timeout: Give up waiting after this many seconds (the job goes on).
            progress: Called with the :class:`JobStatus` after every poll.

        Raises:
            WaitTimeoutError: When ``timeout`` runs out; its ``status`` says where the job is.
        """
        return run_sync(self._client, self.wait_step(poll_interval, timeout, progress))

    def cancel(self) -> JobStatus:
        """Cancel every unfinished batch; parts not created yet are never created.

        Lines done before the cancel are kept (and billed); the rest are reported as failed
        (``batch_cancelled``) and can be resubmitted. ``wait()`` then sees the batches end.
        """
        return run_sync(self._client, self.cancel_step())

    def results(self) -> BatchResults:
        """Poll once, download what finished, and join it to the inputs in input order.

        Returns:
            A :class:`BatchResults`: vectors that arrived, failed inputs (index, code,
            message) and pending ones.
        """
        return run_sync(self._client, self.results_step())

    def resubmit_failed(self) -> int:
        """Send the failed inputs of finished batches again, as new batches of this job.

        Returns:
            How many inputs were sent again (0 if none failed). ``wait()`` and
            ``results()`` then cover them; a later success replaces the failure.
        """
        return run_sync(self._client, self.resubmit_step())

    def close(self) -> None:
        """Close the client if the job created it (the job's state stays on disk)."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> BatchJob:
        """Start of ``with``: the job itself (a client it created is closed at the end)."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """End of ``with``: :meth:`close` (the batch goes on at the service)."""
        self.close()


class AsyncBatchJob(JobCore):
    """Asynchronous twin of :class:`BatchJob`: the same methods, awaited.

    >>> job = await AsyncBatchJob.submit(texts, model="text-embedding-v4",
    ...                                  state_path="corpus.job.json")  # doctest: +SKIP
    >>> await job.wait(); results = await job.results()  # doctest: +SKIP

    State and download files are written with blocking calls: they are small next to the
    waits, except the downloads of very large outputs.
    """

    def __init__(
        self,
        state: JobState,
        state_path: Path,
        client: AsyncDashScopeClient,
        owns_client: bool,
    ) -> None:
        super().__init__(state, state_path)
        self._client = client
        self._owns_client = owns_client

    @classmethod
    async def submit(
        cls,
        texts: Iterable[str],
        *,
        model: str | ModelSpec,
        state_path: str | Path,
        dimension: int | None = None,
        client: AsyncDashScopeClient | None = None,
        ids: Iterable[str] | None = None,
        texts_per_line: int | None = None,
        max_lines_per_file: int = DEFAULT_MAX_LINES_PER_FILE,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        completion_window: str = "24h",
        metadata: Mapping[str, str] | None = None,
        token_counter: TokenCounter | None = None,
    ) -> AsyncBatchJob:
        """See :meth:`BatchJob.submit`."""
        own = client is None
        active = client if client is not None else AsyncDashScopeClient()
        try:
            state, path = cls.prepare(
                texts,
                model=model,
                dimension=dimension,
                state_path=state_path,
                ids=ids,
                region=active.endpoints.region,
                texts_per_line=texts_per_line,
                max_lines_per_file=max_lines_per_file,
                max_file_bytes=max_file_bytes,
                completion_window=completion_window,
                metadata=metadata,
                token_counter=token_counter,
            )
            job = cls(state, path, active, own)
            await run_async(active, job.submit_step())
        except BaseException:
            if own:
                await active.aclose()
            raise
        return job

    @classmethod
    async def resume(
        cls, state_path: str | Path, client: AsyncDashScopeClient | None = None
    ) -> AsyncBatchJob:
        """See :meth:`BatchJob.resume`."""
        state, path = load(state_path)
        own = client is None
        active = client if client is not None else AsyncDashScopeClient()
        try:
            job = cls(state, path, active, own)
            await run_async(active, job.submit_step())
        except BaseException:
            if own:
                await active.aclose()
            raise
        return job

    async def status(self) -> JobStatus:
        """See :meth:`BatchJob.status`."""
        return await run_async(self._client, self.poll_step())

    async def wait(
        self,
        poll_interval: float | None = None,
        timeout: float | None = None,
        progress: Progress | None = None,
    ) -> JobStatus:
        """See :meth:`BatchJob.wait`."""
        return await run_async(self._client, self.wait_step(poll_interval, timeout, progress))

    async def cancel(self) -> JobStatus:
        """See :meth:`BatchJob.cancel`."""
        return await run_async(self._client, self.cancel_step())

    async def results(self) -> BatchResults:
        """See :meth:`BatchJob.results`."""
        return await run_async(self._client, self.results_step())

    async def resubmit_failed(self) -> int:
        """See :meth:`BatchJob.resubmit_failed`."""
        return await run_async(self._client, self.resubmit_step())

    async def aclose(self) -> None:
        """Close the client if the job created it (the job's state stays on disk)."""
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> AsyncBatchJob:
        """Start of ``async with``: the job itself (a client it created is closed at the end)."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """End of ``async with``: :meth:`aclose` (the batch goes on at the service)."""
        await self.aclose()
