"""Streaming a corpus: bounded memory, results in input order, parts embedded side by side.

The input (any iterable, read lazily; an async iterable too for the async twin) is cut into
parts of ``part_size`` texts. Up to ``window`` parts are being embedded at once — each part is
one ordinary call, its requests sent concurrently under the client's limiter — and parts are
yielded strictly in input order as :class:`StreamPart` objects. At most ``window`` parts'
vectors are held at any time, whatever the corpus size; with ``numpy=True`` each part's
vectors are one float32 array (a 1,024-dimension vector: 4 KB instead of ~33 KB of floats).

A part in which the service rejected inputs raises :class:`PartialEmbeddingError` with the
caller's (global) indices, after every earlier part was yielded; with ``on_error="skip"`` the
part is yielded with its ``failed`` map and ``None`` in place of those vectors.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import itertools
import typing
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
)
from dataclasses import dataclass, field

from dashscope_embeddings._errors import APIError, InvalidInputError, PartialEmbeddingError
from dashscope_embeddings._types import (
    EmbeddingResult,
    FailedInput,
    OnError,
    PartialResult,
    SparseVector,
    Usage,
    _dense_summary,
    _failed_summary,
    _sparse_summary,
)

__all__ = ["StreamPart", "astream", "stream"]

Result = typing.Union[EmbeddingResult, PartialResult]  # noqa: UP007 (py3.10 runtime alias)


@dataclass(frozen=True)
class StreamPart:
    """One part of a stream: the vectors of inputs ``start`` .. ``start + len(part) - 1``.

    Attributes:
        start: Index of the part's first input in the whole stream.
        embeddings: Dense vectors in input order: a list of lists, or a float32 array of shape
            ``(len(part), dimension)`` with ``numpy=True``; ``None`` when only sparse output
            was asked for. With ``on_error="skip"``, ``None`` in place of a failed input.
        sparse_embeddings: Sparse vectors, when asked for.
        failed: Global index -> why that input has no vector (``on_error="skip"`` only).
        usage: What this part was billed.
    """

    start: int
    embeddings: typing.Any
    sparse_embeddings: list[SparseVector] | list[SparseVector | None] | None
    failed: dict[int, FailedInput] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    count: int = 0

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return (
            f"StreamPart(start={self.start}, count={self.count}, "
            f"embeddings={_dense_summary(self.embeddings)}, "
            f"sparse_embeddings={_sparse_summary(self.sparse_embeddings)}, "
            f"failed={_failed_summary(self.failed)}, usage={self.usage!r})"
        )


def _as_numpy(vectors: list[list[float]]) -> typing.Any:
    try:
        import numpy as np
    except ImportError as exc:
        raise ImportError(
            'numpy=True returns float32 arrays: pip install "dashscope-embeddings[numpy]"'
        ) from exc
    # Row by row into one preallocated array: the same float32 values as numpy.asarray over the
    # lists, about 15 % faster (benchmarks/client_overhead.py --numpy).
    size = len(vectors[0]) if vectors else 0
    if not size or any(len(vector) != size for vector in vectors):
        return np.asarray(vectors, dtype=np.float32)  # empty or ragged: numpy's own answer
    array = np.empty((len(vectors), size), dtype=np.float32)
    for row, vector in enumerate(vectors):
        array[row] = np.fromiter(vector, dtype=np.float32, count=size)
    return array


def _shift(failed: dict[int, FailedInput], start: int) -> dict[int, FailedInput]:
    return {
        start + i: FailedInput(
            start + i, f.code, f.message, status_code=f.status_code, request_id=f.request_id
        )
        for i, f in failed.items()
    }


def _part(start: int, result: Result, *, numpy: bool) -> StreamPart:
    """A part from one call's result (a :class:`PartialResult` raises unless skipping)."""
    failed = _shift(result.failed, start) if isinstance(result, PartialResult) else {}
    dense: typing.Any = result.dense
    if numpy and dense is not None:
        dense = _as_numpy(dense)
    return StreamPart(
        start=start,
        embeddings=dense,
        sparse_embeddings=result.sparse,
        failed=failed,
        usage=result.usage,
        count=len(result),
    )


def _globalize(error: BaseException, start: int) -> BaseException:
    """Errors of a part name the caller's indices in the whole stream, not in the part."""
    if isinstance(error, PartialEmbeddingError):
        result = error.result
        shifted = PartialResult(
            model=result.model,
            dense=result.dense,
            sparse=result.sparse,
            failed=_shift(result.failed, start),
            usage=result.usage,
            request_ids=result.request_ids,
        )
        return PartialEmbeddingError(shifted)
    if isinstance(error, InvalidInputError) and error.index is not None:
        return InvalidInputError(
            str(error).replace(f"input {error.index}", f"input {start + error.index}", 1),
            index=start + error.index,
        )
    if isinstance(error, APIError) and error.partial is not None:
        error.partial = PartialResult(
            model=error.partial.model,
            dense=error.partial.dense,
            sparse=error.partial.sparse,
            failed=_shift(error.partial.failed, start),
            usage=error.partial.usage,
            request_ids=error.partial.request_ids,
        )
    return error


def _check(part_size: int, window: int, numpy: bool, on_error: OnError) -> None:
    if part_size < 1 or window < 1:
        raise InvalidInputError("part_size and window must be >= 1")
    if numpy and on_error == "skip":
        raise InvalidInputError(
            "numpy=True needs on_error='raise': an array has no place for a missing vector"
        )


def _parts(texts: Iterable[str], part_size: int) -> Iterator[tuple[int, list[str]]]:
    if isinstance(texts, (str, bytes)):
        raise InvalidInputError("texts must be an iterable of strings, got a single string")
    iterator = iter(texts)
    start = 0
    while chunk := list(itertools.islice(iterator, part_size)):
        yield start, chunk
        start += len(chunk)


def stream(
    embed: Callable[[list[str]], Result],
    texts: Iterable[str],
    *,
    part_size: int,
    window: int,
    numpy: bool,
    on_error: OnError,
) -> Generator[StreamPart, None, None]:
    """Embed ``texts`` part by part (``embed`` is one call), yielding parts in input order."""
    _check(part_size, window, numpy, on_error)
    pending: collections.deque[tuple[int, concurrent.futures.Future[Result]]] = (
        collections.deque()
    )
    runner = concurrent.futures.ThreadPoolExecutor(window, thread_name_prefix="dashscope-stream")
    try:
        for start, chunk in _parts(texts, part_size):
            pending.append((start, runner.submit(embed, chunk)))
            while len(pending) >= window:
                yield _collect(*pending.popleft(), numpy=numpy)
        while pending:
            yield _collect(*pending.popleft(), numpy=numpy)
    finally:
        for _, future in pending:
            future.cancel()
        runner.shutdown(wait=True, cancel_futures=True)


def _collect(start: int, future: concurrent.futures.Future[Result], *, numpy: bool) -> StreamPart:
    try:
        result = future.result()
    except BaseException as error:
        raise _globalize(error, start) from None
    return _part(start, result, numpy=numpy)


async def _aparts(
    texts: Iterable[str] | AsyncIterable[str], part_size: int
) -> AsyncIterator[tuple[int, list[str]]]:
    if isinstance(texts, AsyncIterable):
        start = 0
        chunk: list[str] = []
        async for text in texts:
            chunk.append(text)
            if len(chunk) == part_size:
                yield start, chunk
                start, chunk = start + len(chunk), []
        if chunk:
            yield start, chunk
        return
    for item in _parts(texts, part_size):
        yield item


async def astream(
    embed: Callable[[list[str]], Awaitable[Result]],
    texts: Iterable[str] | AsyncIterable[str],
    *,
    part_size: int,
    window: int,
    numpy: bool,
    on_error: OnError,
) -> AsyncGenerator[StreamPart, None]:
    """Async :func:`stream`: parts are tasks on the running loop."""
    _check(part_size, window, numpy, on_error)
    pending: collections.deque[tuple[int, asyncio.Task[Result]]] = collections.deque()

    async def collect(start: int, task: asyncio.Task[Result]) -> StreamPart:
        try:
            result = await task
        except BaseException as error:
            raise _globalize(error, start) from None
        return _part(start, result, numpy=numpy)

    try:
        async for start, chunk in _aparts(texts, part_size):
            pending.append((start, asyncio.ensure_future(embed(chunk))))
            while len(pending) >= window:
                yield await collect(*pending.popleft())
        while pending:
            yield await collect(*pending.popleft())
    finally:
        for _, task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*(t for _, t in pending), return_exceptions=True)
