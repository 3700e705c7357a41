"""What a batch job does, written once for both I/O flavours.

Every step that talks to the service is a generator that yields typed requests
(:class:`~._run.Send`, or a :class:`~._run.Sleep`) and receives their results; the sync and
async jobs only differ in how they run them (:mod:`._run`). State is saved after every answer
that changes it, before the next request goes out.

Nothing billed or stored is sent twice blindly: before an upload or a batch creation that may
have reached the service is sent again (its answer lost, late, or the process stopped), the job
looks for it at the service (its file by name and size, its batch by input file) and reuses it.
"""

from __future__ import annotations

import re
import time
import typing
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from dashscope_embeddings._errors import (
    APIError,
    BadRequestError,
    InvalidInputError,
    NotFoundError,
)
from dashscope_embeddings._registry import ModelSpec, get_model_spec
from dashscope_embeddings._retry import maybe_acted, retry_delay
from dashscope_embeddings._tokens import TokenCounter
from dashscope_embeddings.batch import _plan, _run
from dashscope_embeddings.batch._results import BatchResults, collect
from dashscope_embeddings.batch._run import Sleep, Step
from dashscope_embeddings.batch._state import (
    BatchStateError,
    JobState,
    Part,
    data_dir,
    write_atomic,
)
from dashscope_embeddings.batch._status import JobStatus, WaitTimeoutError, part_status
from dashscope_embeddings.resources.batches import BatchObject
from dashscope_embeddings.resources.files import FileObject
from dashscope_embeddings.resources.text import materialize

__all__ = ["JobCore", "load"]

FIRST_POLL_S = 1.0
MAX_POLL_S = 30.0
_POLL_GROWTH = 1.5
_LIST_PAGE = 100
_LIST_PAGES = 10  # look for an unrecorded batch among the newest 1,000
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
UPLOAD_ATTEMPTS = 4  # an upload whose answer was lost: looked for, then sent again, this often


class JobCore:
    """State, planning and every step of a job; no I/O of its own but files on disk."""

    def __init__(self, state: JobState, state_path: Path) -> None:
        self._state = state
        self._path = state_path
        self._data = data_dir(state_path)
        self._spec = get_model_spec(state.model)
        self._inputs: tuple[list[str], list[str] | None] | None = None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(state_path={str(self._path)!r}, model={self._state.model!r}, "
            f"inputs={self._state.count}, batches={len(self._state.parts)})"
        )

    @property
    def state_path(self) -> Path:
        """Where the job's state is kept."""
        return self._path

    @property
    def model(self) -> str:
        """The model the job embeds with."""
        return self._state.model

    @property
    def count(self) -> int:
        """How many inputs the job has."""
        return self._state.count

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the job's inputs and ids (see :func:`fingerprint`)."""
        return self._state.fingerprint

    @property
    def batch_ids(self) -> list[str]:
        """Ids of the batches created so far."""
        return [p.batch_id for p in self._state.parts if p.batch_id]

    # --- creating ---------------------------------------------------------------------------

    @staticmethod
    def prepare(
        texts: typing.Iterable[str],
        *,
        model: str | ModelSpec,
        dimension: int | None,
        state_path: str | Path,
        ids: typing.Iterable[str] | None,
        region: str,
        texts_per_line: int | None,
        max_lines_per_file: int,
        max_file_bytes: int,
        completion_window: str,
        metadata: Mapping[str, str] | None,
        token_counter: TokenCounter | None,
    ) -> tuple[JobState, Path]:
        """Check the inputs, plan the parts and write inputs and state; nothing is sent.

        Raises:
            InvalidInputError: For a bad input, id or option (nothing written).
            BatchStateError: If ``state_path`` already holds a job.
        """
        spec = get_model_spec(model)
        items = list(materialize(texts))
        id_list = None if ids is None else list(materialize(ids))
        per_line = spec.max_batch_size if texts_per_line is None else texts_per_line
        _plan.check_inputs(
            items,
            id_list,
            spec,
            dimension=dimension,
            texts_per_line=per_line,
            token_counter=token_counter,
        )
        if max_lines_per_file < 1 or max_file_bytes < 1:
            raise InvalidInputError("max_lines_per_file and max_file_bytes must be >= 1")
        path = Path(state_path)
        if path.exists():
            raise BatchStateError(
                f"{path} already holds a batch job; continue it with BatchJob.resume({str(path)!r})"
                " or choose another state_path"
            )
        lines = _plan.plan_lines([(0, len(items))], per_line)
        parts = _make_parts(
            spec.name, dimension, items, lines, 0, 0, max_lines_per_file, max_file_bytes
        )
        state = JobState(
            job_id=uuid.uuid4().hex[:12],
            model=spec.name,
            dimension=dimension,
            count=len(items),
            has_ids=id_list is not None,
            fingerprint=_plan.fingerprint(items, id_list),
            region=region,
            texts_per_line=per_line,
            max_lines_per_file=max_lines_per_file,
            max_file_bytes=max_file_bytes,
            completion_window=completion_window,
            metadata=dict(metadata or {}),
            parts=parts,
        )
        folder = data_dir(path)
        folder.mkdir(parents=True, exist_ok=True)
        _plan.write_inputs(folder / "inputs.jsonl", items, id_list)
        state.save(path)  # last: a state file means the inputs are saved
        return state, path

    def _save(self) -> None:
        self._state.save(self._path)

    def _load_inputs(self) -> tuple[list[str], list[str] | None]:
        if self._inputs is None:
            path = self._data / "inputs.jsonl"
            try:
                self._inputs = _plan.read_inputs(path, self._state.count)
            except (OSError, ValueError, KeyError) as exc:
                raise BatchStateError(f"cannot read the job's inputs at {path}: {exc}") from None
        return self._inputs

    def _part_bytes(self, part: Part) -> bytes:
        texts, _ = self._load_inputs()
        model, dim = self._state.model, self._state.dimension
        return b"".join(
            _plan.line_bytes(model, texts, part.attempt, start, stop, dim)
            for start, stop in part.lines
        )

    def _download_path(self, part: Part, file_id: str) -> Path:
        return self._data / f"{part.name}.{_UNSAFE.sub('_', file_id)}.jsonl"

    # --- steps ------------------------------------------------------------------------------

    def _record(self, part: Part, batch: BatchObject) -> bool:
        """Take ``batch``'s answer into ``part``; whether anything changed."""
        before = part.to_json()
        part.batch_id = batch.id
        part.status = batch.status
        part.request_counts = dict(batch.request_counts)
        part.output_file_id = batch.output_file_id
        part.error_file_id = batch.error_file_id
        errors = batch.raw.get("errors")
        data = errors.get("data") if isinstance(errors, dict) else None
        part.errors = [e for e in data if isinstance(e, dict)] if isinstance(data, list) else []
        return part.to_json() != before

    def _find_batch(self, part: Part) -> Step[BatchObject | None]:
        """A batch over ``part``'s file that was created but not recorded (crash)."""
        after: str | None = None
        for _ in range(_LIST_PAGES):
            page: list[BatchObject] = yield _run.list_batches(limit=_LIST_PAGE, after=after)
            for batch in page:
                if batch.input_file_id == part.file_id:
                    return batch
            if len(page) < _LIST_PAGE:
                return None
            after = page[-1].id
        return None

    def _find_file(self, name: str, size: int) -> Step[FileObject | None]:
        """The job's own file ``name`` of ``size`` bytes, if the service stored it."""
        stored: list[FileObject] = yield _run.list_files()
        for item in stored:
            if item.filename == name and item.bytes == size:
                return item
        return None

    def _upload_step(self, part: Part) -> Step[FileObject]:
        """Upload ``part``'s file once.

        An upload may be stored even when its answer never arrives; the transport does not send
        it again, and neither does the job before it has looked for the file at the service
        (after a lost answer here, and on resume after a stop mid-upload).
        """
        data = self._part_bytes(part)
        name = f"{self._state.job_id}-{part.name}.jsonl"
        for attempt in range(UPLOAD_ATTEMPTS):
            if part.upload_started:
                found = yield from self._find_file(name, len(data))
                if found is not None:
                    return found
            if not part.upload_started:
                part.upload_started = True
                self._save()
            try:
                uploaded: FileObject = yield _run.upload(data, name)
                return uploaded
            except APIError as exc:
                delay = retry_delay(attempt)
                if not maybe_acted(exc) or attempt + 1 >= UPLOAD_ATTEMPTS or delay is None:
                    raise
            yield Sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def submit_step(self) -> Step[None]:
        """Upload and create every part not created yet, saving after each answer."""
        state = self._state
        for part in state.parts:
            if part.batch_id is not None or part.done:
                continue
            if part.file_id is None:
                uploaded = yield from self._upload_step(part)
                part.file_id = uploaded.id
                self._save()
            if part.create_started:
                found = yield from self._find_batch(part)
                if found is not None:
                    self._record(part, found)
                    self._save()
                    continue
            part.create_started = True
            self._save()
            name = state.metadata.get("ds_name") or f"dashscope-embeddings-{state.job_id}"
            created = yield _run.create_batch(
                part.file_id,
                completion_window=state.completion_window,
                metadata={**state.metadata, "ds_name": f"{name}/{part.name}"},
            )
            self._record(part, created)
            self._save()

    def poll_step(self) -> Step[JobStatus]:
        """Finish any interrupted submission, then ask for every unfinished batch."""
        yield from self.submit_step()
        changed = False
        for part in self._state.parts:
            if part.batch_id is None or part.done:
                continue
            try:
                batch = yield _run.retrieve_batch(part.batch_id)
            except NotFoundError as exc:
                raise BatchStateError(
                    f"batch {part.batch_id} ({part.name} of {self._path}) is unknown to the "
                    "service: resume with a client for the region / base URL that submitted "
                    f"it ({exc})"
                ) from exc
            changed = self._record(part, batch) or changed
        if changed:  # a status is not needed to resume (it is asked again): save once
            self._save()
        return self.snapshot()

    def download_step(self) -> Step[None]:
        """Save the output and error files of every finished part not saved yet."""
        for part in self._state.parts:
            if not part.done:
                continue
            for file_id in (part.output_file_id, part.error_file_id):
                if file_id is None:
                    continue
                path = self._download_path(part, file_id)
                if not path.exists():
                    content = yield _run.download(file_id)
                    write_atomic(path, content)
            if not part.downloaded:
                part.downloaded = True
                self._save()

    def wait_step(
        self,
        poll_interval: float | None,
        timeout: float | None,
        progress: Callable[[JobStatus], object] | None,
    ) -> Step[JobStatus]:
        """Poll until every batch is final, downloading each part as it finishes."""
        if poll_interval is not None and poll_interval < 0:
            raise ValueError("poll_interval must be >= 0 (seconds)")
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = FIRST_POLL_S if poll_interval is None else poll_interval
        while True:
            status = yield from self.poll_step()
            yield from self.download_step()
            if progress is not None:
                progress(status)
            if status.done:
                return status
            pause = delay
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WaitTimeoutError(
                        f"the batch job is not finished after {timeout} s: {status}; it goes "
                        f"on at the service (resume it from {self._path})",
                        status,
                    )
                pause = min(delay, remaining)
            yield Sleep(pause)
            if poll_interval is None:
                delay = min(delay * _POLL_GROWTH, MAX_POLL_S)

    def cancel_step(self) -> Step[JobStatus]:
        """Cancel every unfinished batch; parts not created yet are never created."""
        for part in self._state.parts:
            if part.done:
                continue
            if part.batch_id is None and part.create_started and part.file_id is not None:
                found = yield from self._find_batch(part)
                if found is not None:
                    self._record(part, found)
            if part.batch_id is None:
                part.status = "cancelled"
                self._save()
                continue
            if part.done:
                self._save()
                continue
            try:
                batch = yield _run.cancel_batch(part.batch_id)
            except BadRequestError:  # it reached a final status meanwhile
                batch = yield _run.retrieve_batch(part.batch_id)
            self._record(part, batch)
            self._save()
        return self.snapshot()

    def results_step(self) -> Step[BatchResults]:
        """Poll once, download what finished, and join everything back to the inputs."""
        yield from self.poll_step()
        yield from self.download_step()
        return self.collect()

    def resubmit_step(self) -> Step[int]:
        """Send the failed inputs of finished batches again, as new parts."""
        results = yield from self.results_step()
        failed = [f.index for f in results.failed]
        if not failed:
            return 0
        texts, _ = self._load_inputs()
        state = self._state
        attempt = max(p.attempt for p in state.parts) + 1
        lines = _plan.plan_lines(_plan.ranges_of(failed), state.texts_per_line)
        new_parts = _make_parts(
            state.model,
            state.dimension,
            texts,
            lines,
            attempt,
            len(state.parts),
            state.max_lines_per_file,
            state.max_file_bytes,
        )
        failed_set = set(failed)
        for part in state.parts:
            if part.done and any(
                i in failed_set for start, stop in part.lines for i in range(start, stop)
            ):
                part.resubmitted = True
        state.parts.extend(new_parts)
        self._save()  # the new parts exist before anything of them is sent
        yield from self.submit_step()
        return len(failed)

    # --- pure -------------------------------------------------------------------------------

    def snapshot(self) -> JobStatus:
        """The job's status as last recorded (no request)."""
        return JobStatus(tuple(part_status(p) for p in self._state.parts))

    def collect(self) -> BatchResults:
        """Join the downloaded files back to the inputs (no request)."""
        texts, ids = self._load_inputs()

        def read(part: Part) -> list[tuple[str, bytes]]:
            files = []
            for kind, file_id in (("output", part.output_file_id), ("error", part.error_file_id)):
                if file_id is not None:
                    files.append((kind, self._download_path(part, file_id).read_bytes()))
            return files

        return collect(self._state, self._spec, texts, ids, read)


def _make_parts(
    model: str,
    dimension: int | None,
    texts: Sequence[str],
    lines: list[tuple[int, int]],
    attempt: int,
    first_number: int,
    max_lines: int,
    max_bytes: int,
) -> list[Part]:
    sizes = [len(_plan.line_bytes(model, texts, attempt, s, e, dimension)) for s, e in lines]
    files = _plan.split_files(sizes, max_lines=max_lines, max_bytes=max_bytes)
    return [
        Part(name=f"part-{first_number + k:04d}", attempt=attempt, lines=lines[a:b])
        for k, (a, b) in enumerate(files)
    ]


def load(state_path: str | Path) -> tuple[JobState, Path]:
    """A saved job's state.

    Raises:
        BatchStateError: If there is none at ``state_path``, or it is damaged.
    """
    path = Path(state_path)
    return JobState.load(path), path
