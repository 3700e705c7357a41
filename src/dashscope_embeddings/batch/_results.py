"""A batch job's outcome: output and error files joined back to the inputs, in input order.

Output order is not input order, so every output line is placed by its ``custom_id``, which
names the inputs it answers (see :mod:`._plan`). An input has exactly one outcome: a vector, a
failure (with the service's code and message), or pending (its batch has not finished). When
an input was sent more than once (``resubmit_failed``), a later submission's outcome replaces
an earlier failure; a vector is never replaced.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dashscope_embeddings._errors import DashScopeError, ResponseValidationError
from dashscope_embeddings._registry import ModelSpec
from dashscope_embeddings._types import EmbeddingResult, FailedInput, Usage
from dashscope_embeddings._usage import usage_for
from dashscope_embeddings.batch._plan import custom_id, parse_custom_id
from dashscope_embeddings.batch._state import JobState, Part
from dashscope_embeddings.resources import text

if typing.TYPE_CHECKING:
    from llama_index.core.schema import TextNode

__all__ = ["BatchFailure", "BatchResults", "IncompleteBatchError", "collect"]


@dataclass(frozen=True, kw_only=True)
class BatchFailure(FailedInput):
    """Why one input of a batch job has no vector: a :class:`FailedInput` with its id.

    Attributes:
        index: The input's position in the texts given to ``submit``.
        code: The service's error code, e.g. ``InternalError``, ``batch_expired``,
            ``batch_cancelled``, or the batch's own error code when the whole batch failed.
        message: The service's message.
        status_code: HTTP status of the line's answer, where there was one.
        request_id: The service's request id of the line, where known.
        id: Its id (the one given to ``submit``, else ``str(index)``).
        custom_id: The line that carried the input.
    """

    id: str
    custom_id: str | None = None

    def __str__(self) -> str:
        return super().__str__().replace(
            f"input {self.index}: ", f"input {self.index} (id {self.id!r}): ", 1
        )


class IncompleteBatchError(DashScopeError):
    """Some inputs have no vector (failed, or their batch has not finished).

    ``failed`` and ``pending`` say which; the vectors that did arrive are in
    ``BatchResults.result``.
    """

    def __init__(
        self, message: str, failed: Sequence[BatchFailure], pending: Sequence[int]
    ) -> None:
        super().__init__(message)
        self.failed = tuple(failed)
        self.pending = tuple(pending)


@dataclass(frozen=True)
class BatchResults:
    """What a batch job produced, in input order.

    ``result`` holds the vectors that arrived (``indices[k]`` is the input of row ``k``);
    ``embeddings`` is every input's vector, or :class:`IncompleteBatchError` when any input
    failed or is pending. Nothing is dropped silently: each input is in exactly one of
    ``indices``, ``failed`` and ``pending``.

    >>> results = job.results()  # doctest: +SKIP
    >>> results.complete, len(results.result), results.usage.cost  # doctest: +SKIP
    >>> [str(f) for f in results.failed][:3]  # doctest: +SKIP
    >>> store.add_embeddings(text_embeddings=results.text_embeddings(),  # LangChain
    ...                      ids=list(results.ids))  # doctest: +SKIP

    Attributes:
        result: Vectors of the inputs that succeeded, in input order, with the job's usage
            priced at the Batch API rate.
        indices: The input index of each row of ``result``.
        ids: The id of each row of ``result``.
        texts: The text of each row of ``result``.
        failed: Inputs that failed, in input order.
        pending: Inputs whose batch has not finished.
        count: How many inputs the job has.
    """

    result: EmbeddingResult
    indices: tuple[int, ...]
    ids: tuple[str, ...]
    texts: tuple[str, ...]
    failed: tuple[BatchFailure, ...]
    pending: tuple[int, ...]
    count: int

    @property
    def complete(self) -> bool:
        """Whether every input has its vector."""
        return len(self.indices) == self.count

    @property
    def usage(self) -> Usage:
        """Tokens and estimated cost of the lines that succeeded (Batch API rate)."""
        return self.result.usage

    @property
    def embeddings(self) -> list[list[float]]:
        """Every input's vector, in input order.

        Raises:
            IncompleteBatchError: If any input failed or is pending (read ``result`` for
                the vectors that did arrive).
        """
        if not self.complete:
            raise IncompleteBatchError(self._incomplete_message(), self.failed, self.pending)
        return self.result.embeddings

    def _incomplete_message(self) -> str:
        missing = self.count - len(self.indices)
        parts = []
        if self.failed:
            parts.append(f"{len(self.failed):,} failed (first: {self.failed[0]})")
        if self.pending:
            parts.append(f"{len(self.pending):,} pending (first: input {self.pending[0]})")
        return (
            f"{missing:,} of {self.count:,} inputs have no vector: {'; '.join(parts)}. "
            "Wait for the job, or resubmit_failed(); results.result holds the vectors that "
            "arrived"
        )

    def text_embeddings(self) -> list[tuple[str, list[float]]]:
        """``(text, vector)`` pairs of ``result``, as LangChain's ``add_embeddings`` takes them.

        >>> store.add_embeddings(text_embeddings=results.text_embeddings(),
        ...                      ids=list(results.ids))  # doctest: +SKIP
        """
        return list(zip(self.texts, self.result.embeddings, strict=True))

    def to_nodes(self) -> list[TextNode]:
        """LlamaIndex ``TextNode``s of ``result``, with ``id_``, ``text`` and ``embedding`` set.

        Ready for ``VectorStoreIndex(nodes)`` without embedding again. Needs the
        ``llama-index`` extra.

        >>> index = VectorStoreIndex(results.to_nodes(), embed_model=embed_model)  # doctest: +SKIP
        """
        try:
            from llama_index.core.schema import TextNode
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "to_nodes() needs llama-index-core: pip install 'dashscope-embeddings[llama-index]'"
            ) from exc
        return [
            TextNode(id_=node_id, text=node_text, embedding=vector)
            for node_id, node_text, vector in zip(
                self.ids, self.texts, self.result.embeddings, strict=True
            )
        ]


# --- joining -----------------------------------------------------------------------------


def _failure_fields(record: dict[str, typing.Any]) -> tuple[str | None, str, int | None]:
    """``(code, message, status)`` of a failed output or error line, in either shape."""
    response = record.get("response")
    response = response if isinstance(response, dict) else {}
    status = response.get("status_code")
    status = status if isinstance(status, int) and not isinstance(status, bool) else None
    candidates = [record.get("error")]
    body = response.get("body")
    if isinstance(body, dict):
        candidates += [body.get("error"), body]
    for error in candidates:
        if isinstance(error, dict) and (error.get("code") or error.get("message")):
            code = error.get("code")
            return (
                str(code) if code else None,
                str(error.get("message") or "(no message)"),
                status,
            )
    return None, "the line failed without an error message", status


class _Outcomes:
    """Per-input outcome while joining."""

    def __init__(self, count: int) -> None:
        self.vectors: list[list[float] | None] = [None] * count
        self.request_ids: list[str | None] = [None] * count
        self.failed: dict[int, BatchFailure] = {}
        self.pending: set[int] = set()
        self.tokens = 0
        self.lines_ok = 0

    def set_pending(self, start: int, stop: int) -> None:
        for i in range(start, stop):
            if self.vectors[i] is None:
                self.failed.pop(i, None)
                self.pending.add(i)

    def set_failed(
        self,
        start: int,
        stop: int,
        ids: Sequence[str],
        *,
        code: str | None,
        message: str,
        custom_id: str,
        status_code: int | None = None,
        request_id: str | None = None,
    ) -> None:
        for i in range(start, stop):
            if self.vectors[i] is None:
                self.pending.discard(i)
                self.failed[i] = BatchFailure(
                    index=i,
                    id=ids[i],
                    code=code,
                    message=message,
                    status_code=status_code,
                    request_id=request_id,
                    custom_id=custom_id,
                )

    def set_vectors(self, start: int, vectors: list[list[float]], request_id: str | None) -> None:
        for offset, vector in enumerate(vectors):
            i = start + offset
            if self.vectors[i] is None:
                self.vectors[i] = vector
                self.request_ids[i] = request_id
                self.failed.pop(i, None)
                self.pending.discard(i)


def _read_lines(part: Part, kind: str, data: bytes) -> list[dict[str, typing.Any]]:
    records = []
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except ValueError:
            raise ResponseValidationError(
                f"malformed response: line {number} of {part.name}'s {kind} file is not JSON"
            ) from None
        if not isinstance(record, dict):
            raise ResponseValidationError(
                f"malformed response: line {number} of {part.name}'s {kind} file is not an object"
            )
        records.append(record)
    return records


def _join_part(
    part: Part,
    files: Sequence[tuple[str, bytes]],
    outcomes: _Outcomes,
    ids: Sequence[str],
    expected_dimension: int | None,
) -> None:
    """Place one finished part's output and error lines; lines without one are failures."""
    lines = set(part.lines)
    answered: set[tuple[int, int]] = set()
    for kind, data in files:
        for record in _read_lines(part, kind, data):
            cid = record.get("custom_id")
            parsed = parse_custom_id(cid)
            if parsed is None or parsed[0] != part.attempt or parsed[1:] not in lines:
                raise ResponseValidationError(
                    f"malformed response: {part.name}'s {kind} file answers custom_id {cid!r}, "
                    "which is not one of its lines"
                )
            start, stop = parsed[1], parsed[2]
            if (start, stop) in answered:
                continue  # a line answered twice: its first answer counts
            answered.add((start, stop))
            response = record.get("response")
            if isinstance(response, dict) and response.get("status_code") == 200:
                request_id = response.get("request_id")
                output = text.parse_compatible(
                    response.get("body"),
                    stop - start,
                    expected_dimension=expected_dimension,
                    request_id=request_id if isinstance(request_id, str) else None,
                )
                outcomes.tokens += output.total_tokens
                outcomes.lines_ok += 1
                outcomes.set_vectors(start, output.dense or [], output.request_id)
                continue
            code, message, status = _failure_fields(record)
            rid = response.get("request_id") if isinstance(response, dict) else None
            outcomes.set_failed(
                start,
                stop,
                ids,
                code=code,
                message=message,
                custom_id=str(cid),
                status_code=status,
                request_id=rid if isinstance(rid, str) else None,
            )
    for start, stop in part.lines:
        if (start, stop) not in answered:
            if part.status == "failed" and part.errors:
                error = part.errors[0]
                code, message = error.get("code"), str(error.get("message") or "(no message)")
            elif part.status == "failed":
                code, message = "batch_failed", "the batch failed without giving a reason"
            elif part.status == "cancelled" and part.batch_id is None:
                code, message = "batch_cancelled", "cancelled before its batch was created"
            else:
                code = "missing_result"
                message = f"the batch ended {part.status} with no output or error line for it"
            outcomes.set_failed(
                start,
                stop,
                ids,
                code=str(code) if code else None,
                message=message,
                custom_id=custom_id(part.attempt, start, stop),
            )


def collect(
    state: JobState,
    spec: ModelSpec,
    texts: Sequence[str],
    ids: Sequence[str] | None,
    read: Callable[[Part], Sequence[tuple[str, bytes]]],
) -> BatchResults:
    """Join every part's outcome back to the inputs.

    Args:
        state: The job.
        spec: The job's model.
        texts: The inputs.
        ids: Their ids, or ``None`` for ``str(index)``.
        read: The downloaded ``(kind, bytes)`` files of a finished part.

    Raises:
        ResponseValidationError: If an output file is malformed.
    """
    input_ids = list(ids) if ids is not None else [str(i) for i in range(state.count)]
    outcomes = _Outcomes(state.count)
    expected = state.dimension or spec.default_dimension
    for part in state.parts:
        if part.done:
            _join_part(part, read(part), outcomes, input_ids, expected)
        else:
            for start, stop in part.lines:
                outcomes.set_pending(start, stop)
    indices = [i for i, v in enumerate(outcomes.vectors) if v is not None]
    request_ids = list(dict.fromkeys(r for i in indices if (r := outcomes.request_ids[i])))
    usage = usage_for(spec, outcomes.tokens, outcomes.lines_ok, state.region, batch=True)
    return BatchResults(
        result=EmbeddingResult(
            model=state.model,
            dense=[typing.cast("list[float]", outcomes.vectors[i]) for i in indices],
            sparse=None,
            usage=usage,
            request_ids=tuple(request_ids),
        ),
        indices=tuple(indices),
        ids=tuple(input_ids[i] for i in indices),
        texts=tuple(texts[i] for i in indices),
        failed=tuple(outcomes.failed[i] for i in sorted(outcomes.failed)),
        pending=tuple(sorted(outcomes.pending)),
        count=state.count,
    )
