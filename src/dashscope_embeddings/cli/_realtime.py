"""Real-time embedding of a corpus in chunks, resumable from a state file.

The corpus is cut into chunks of ``chunk_size`` texts; :func:`embed_chunks` is the one place
that sends them (through ``client.embed_texts``, which fans each chunk out into concurrent
requests). With a state file, every finished chunk is saved as a float32 ``.npy`` in the
folder ``<state>.d`` and recorded in the state (both written atomically) before the next chunk
starts, so a run started again after Ctrl-C or a crash sends only the chunks not recorded.

A text the service rejects (content inspection) does not cost its chunk: the chunk's other
vectors are kept, and the state records the rejected texts. Each chunk is recorded with a
digest of its ids and texts, so a run started again after the user fixed a line sends that
line only (and a chunk whose lines changed in any other way is embedded again whole).
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import shutil
import tempfile
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dashscope_embeddings._client import DashScopeClient
from dashscope_embeddings._registry import ModelSpec
from dashscope_embeddings._types import FailedInput, PartialResult, TextType, Usage
from dashscope_embeddings._usage import usage_for
from dashscope_embeddings.batch._state import write_atomic
from dashscope_embeddings.cli._io import CLIError, Corpus, Writer
from dashscope_embeddings.resources.text import LongText

if typing.TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["RealtimeRun", "embed_chunks", "run_realtime"]

_KIND = "dashscope-embeddings real-time run"
_VERSION = 2
_SHOWN = 10  # rejected texts named one per line before the summary


def embed_chunks(
    client: DashScopeClient,
    texts: Sequence[str],
    chunks: Sequence[tuple[int, Sequence[int]]],
    *,
    model: str,
    dimension: int | None,
    text_type: TextType,
    long_text: LongText = "error",
) -> Iterator[tuple[int, PartialResult]]:
    """Embed the texts at each chunk's positions, in order, yielding ``(chunk, result)``.

    Texts the service rejects are ``None`` in the result and named in its ``failed`` (by
    position in the chunk's list). The only function that sends; a streaming call can take
    its place.
    """
    for number, positions in chunks:
        result = client.embed_texts(
            [texts[i] for i in positions],
            model=model,
            dimension=dimension,
            text_type=text_type,
            long_text=long_text,
            on_error="skip",
        )
        yield number, result


def _digest(ids: Sequence[str], texts: Sequence[str], positions: Sequence[int]) -> str:
    """SHA-256 of the ids and texts at ``positions``."""
    digest = hashlib.sha256()
    for i in positions:
        digest.update(ids[i].encode("utf-8", "surrogatepass") + b"\x00")
        digest.update(texts[i].encode("utf-8", "surrogatepass") + b"\x01")
    return digest.hexdigest()


@dataclass
class RealtimeRun:
    """A real-time run's settings and finished chunks (the state file's content).

    ``chunks`` maps a chunk number to its record: ``rows``, ``tokens``, ``requests``,
    ``digest`` (of the ids and texts of its embedded rows) and ``rejected`` (position in the
    chunk -> the service's ``code``, ``message``, ``request_id`` and the text's ``digest``).
    """

    model: str
    dimension: int | None
    text_type: str
    long_text: str
    chunk_size: int
    count: int
    chunks: dict[int, dict[str, typing.Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, typing.Any]:
        """The state as JSON."""
        return {
            "kind": _KIND,
            "version": _VERSION,
            "model": self.model,
            "dimension": self.dimension,
            "text_type": self.text_type,
            "long_text": self.long_text,
            "chunk_size": self.chunk_size,
            "count": self.count,
            "chunks": {str(k): v for k, v in sorted(self.chunks.items())},
        }

    @classmethod
    def load(cls, path: Path, corpus: Corpus, fingerprint: str, chunk_size: int) -> RealtimeRun:
        """Read a state written by :meth:`save` (or by an earlier version, for these inputs).

        Raises:
            CLIError: If it is not a real-time run's state, or an earlier version's state for
                other inputs.
        """
        try:
            raw = json.loads(path.read_bytes())
            if raw.get("kind") != _KIND:
                raise ValueError("not a real-time run's state")
            run = cls(
                model=str(raw["model"]),
                dimension=raw["dimension"],
                text_type=str(raw["text_type"]),
                long_text=str(raw.get("long_text", "error")),
                chunk_size=int(raw["chunk_size"]),
                count=int(raw["count"]),
                chunks={int(k): dict(v) for k, v in raw["chunks"].items()},
            )
            version = raw.get("version")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CLIError(
                f"--state {path} is not the state of a real-time run ({exc}); "
                "delete it or choose another path"
            ) from None
        if version == 1:  # one fingerprint of all inputs: the chunks hold these texts, or none
            if raw.get("fingerprint") != fingerprint:
                raise CLIError(
                    f"--state {path} belongs to a run with other inputs; delete it (and "
                    f"{path.name}.d) or choose another path"
                )
            ids = corpus.id_list()
            for number, record in run.chunks.items():
                start = number * chunk_size
                span = range(start, min(start + chunk_size, len(corpus.texts)))
                record.update(digest=_digest(ids, corpus.texts, span), rejected={})
        return run

    def save(self, path: Path) -> None:
        """Write the state atomically."""
        write_atomic(path, json.dumps(self.to_json(), indent=1).encode() + b"\n")

    def same_run(self, other: RealtimeRun) -> str | None:
        """Which setting differs from ``other`` (another run's settings), or ``None``."""
        for name in ("model", "dimension", "text_type", "long_text", "chunk_size", "count"):
            if getattr(self, name) != getattr(other, name):
                return "number of texts" if name == "count" else name.replace("_", " ")
        return None


def _chunk_path(folder: Path, number: int) -> Path:
    return folder / f"chunk-{number:06d}.npy"


def _save_chunk(path: Path, vectors: npt.NDArray[np.float32]) -> None:
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, vectors, allow_pickle=False)
    write_atomic(path, buffer.getvalue())


def _progress_bar(total: int, initial: int) -> typing.Any:
    """A tqdm bar on stderr, or ``None`` when tqdm is not installed."""
    try:
        tqdm = importlib.import_module("tqdm")
    except ImportError:
        return None
    return tqdm.tqdm(
        total=total, initial=initial, unit="text", desc="embedding", leave=False, disable=None
    )


def _reason(failure: FailedInput | dict[str, typing.Any]) -> str:
    if isinstance(failure, FailedInput):
        code, message, rid = failure.code, failure.message, failure.request_id
    else:
        code, message, rid = failure.get("code"), failure["message"], failure.get("request_id")
    text = f"{code}: {message}" if code else str(message)
    return text + (f" (request_id={rid})" if rid else "")


def rejection_error(
    corpus: Corpus,
    rejected: Sequence[tuple[int, dict[str, typing.Any]]],
    state_path: Path | None,
    log: Callable[[str], None],
) -> CLIError:
    """The error ending a run whose texts the service rejected (exit status 1).

    One rejected text makes one line; more are named one per line (through ``log``) before
    the summary the caller prints.
    """
    lines = [
        f"{corpus.where(i)}: the service rejected this text ({_reason(f)})" for i, f in rejected
    ]
    what = "the line" if len(lines) == 1 else "those lines"
    if state_path is None:
        hint = (
            f"nothing was written. Fix {what} and run again, or pass --skip-rejected to write "
            "the rest (add --state PATH to keep what was embedded)"
        )
    else:
        hint = (
            f"the other vectors are kept. Fix {what} and run the same command again to embed "
            f"only what is left (state: {state_path}), or add --skip-rejected"
        )
    if len(lines) == 1:
        return CLIError(f"{lines[0]}; {hint}", code=1)
    for line in lines[:_SHOWN]:
        log(f"  {line}")
    shown = "above" if len(lines) <= _SHOWN else f"the first {_SHOWN} above"
    return CLIError(f"{len(lines):,} texts were rejected by the service ({shown}); {hint}", code=1)


def _write_report(path: Path, corpus: Corpus, rejected: Sequence[tuple[int, typing.Any]]) -> None:
    ids = corpus.id_list()
    lines = [
        json.dumps(
            {
                "line": corpus.rows[i],
                "id": ids[i],
                "code": f.get("code"),
                "message": f["message"],
                "request_id": f.get("request_id"),
            },
            ensure_ascii=False,
        )
        + "\n"
        for i, f in rejected
    ]
    write_atomic(path, "".join(lines).encode("utf-8"))


def _merge(
    old: npt.NDArray[np.float32] | None,
    rows: int,
    positions: Sequence[int],
    result: PartialResult,
) -> npt.NDArray[np.float32]:
    """The chunk's vectors with ``result``'s put at ``positions`` (NaN where none yet)."""
    import numpy as np

    got = [(p, v) for p, v in zip(positions, result.embeddings, strict=True) if v is not None]
    dim = len(got[0][1]) if got else (old.shape[1] if old is not None else 0)
    if old is None or old.shape[1] != dim:  # no vector yet, or only rejected rows so far
        vectors = np.full((rows, dim), np.nan, dtype=np.float32)
    else:
        vectors = old.copy()
    for position, vector in got:
        vectors[position] = np.asarray(vector, dtype=np.float32)
    return vectors


def run_realtime(
    client: DashScopeClient,
    corpus: Corpus,
    out: Path,
    *,
    spec: ModelSpec,
    dimension: int | None,
    text_type: TextType,
    chunk_size: int,
    state_path: Path | None,
    fingerprint: str,
    log: Callable[[str], None],
    long_text: LongText = "error",
    rejected_report: Path | None = None,
) -> tuple[Usage, int]:
    """Embed the corpus chunk by chunk and write ``out``; resume from ``state_path``.

    Texts the service rejects end the run (exit 1) naming their lines, after the chunks
    still to do when there is a state to keep them; with ``rejected_report``, the other
    vectors are written and the rejected lines listed there (a JSONL file) instead.

    Returns:
        Tokens and estimated cost of every chunk, this run's and earlier runs', and the
        number of vectors written.

    Raises:
        CLIError: If ``state_path`` belongs to another run, or texts were rejected.
    """
    import numpy as np

    run = RealtimeRun(spec.name, dimension, text_type, long_text, chunk_size, len(corpus.texts))
    ids = corpus.id_list()
    scratch: tempfile.TemporaryDirectory[str] | None = None
    if state_path is None:
        scratch = tempfile.TemporaryDirectory(prefix="dashscope-embeddings-")
        folder = Path(scratch.name)
    else:
        folder = state_path.with_name(state_path.name + ".d")
        if state_path.exists():
            saved = RealtimeRun.load(state_path, corpus, fingerprint, chunk_size)
            differs = saved.same_run(run)
            if differs is not None:
                raise CLIError(
                    f"--state {state_path} belongs to a run with another {differs}; delete it "
                    f"(and {folder}) or choose another path"
                )
            run = saved
            log(f"resuming: {len(run.chunks)} chunk(s) already done, recorded in {state_path}")
        folder.mkdir(parents=True, exist_ok=True)
        run.save(state_path)
    try:
        spans = [
            (number, range(start, min(start + chunk_size, run.count)))
            for number, start in enumerate(range(0, run.count, chunk_size))
        ]
        todo: list[tuple[int, list[int]]] = []
        done = 0
        for number, span in spans:
            record = run.chunks.get(number)
            if record is not None:
                earlier = {int(p): f for p, f in record["rejected"].items()}
                kept = [p for p in range(len(span)) if p not in earlier]
                if record["digest"] == _digest(ids, corpus.texts, [span[p] for p in kept]):
                    changed = [
                        p
                        for p, f in earlier.items()
                        if f["digest"] != _digest(ids, corpus.texts, [span[p]])
                    ]
                    done += len(span) - len(changed)
                    if changed:
                        todo.append((number, sorted(changed)))
                    continue
                log(
                    f"{corpus.row_word}s {corpus.rows[span.start]}-{corpus.rows[span.stop - 1]} "
                    f"changed since {state_path} was saved: embedding them again"
                )
                del run.chunks[number]
            todo.append((number, list(range(len(span)))))
        bar = _progress_bar(run.count, done)
        stop = rejected_report is None and state_path is None
        todo_positions = dict(todo)
        try:
            for number, result in embed_chunks(
                client,
                corpus.texts,
                [(n, [spans[n][1][p] for p in positions]) for n, positions in todo],
                model=spec.name,
                dimension=dimension,
                text_type=text_type,
                long_text=long_text,
            ):
                span = spans[number][1]
                positions = todo_positions[number]
                record = run.chunks.get(number)
                old = np.load(_chunk_path(folder, number)) if record is not None else None
                vectors = _merge(old, len(span), positions, result)
                rejected: dict[str, typing.Any] = (
                    dict(record["rejected"]) if record is not None else {}
                )
                for p in positions:
                    rejected.pop(str(p), None)
                for k, failure in result.failed.items():
                    rejected[str(positions[k])] = {
                        "code": failure.code,
                        "message": failure.message,
                        "request_id": failure.request_id,
                        "digest": _digest(ids, corpus.texts, [span[positions[k]]]),
                    }
                kept = [p for p in range(len(span)) if str(p) not in rejected]
                _save_chunk(_chunk_path(folder, number), vectors)
                run.chunks[number] = {
                    "rows": len(span),
                    "tokens": (record or {}).get("tokens", 0) + result.usage.total_tokens,
                    "requests": (record or {}).get("requests", 0) + result.usage.requests,
                    "digest": _digest(ids, corpus.texts, [span[p] for p in kept]),
                    "rejected": rejected,
                }
                if state_path is not None:
                    run.save(state_path)  # after the chunk's file: a recorded chunk is on disk
                if bar is not None:
                    bar.update(len(positions) - len(result.failed))
                if stop and result.failed:
                    break  # nothing can be kept: no more spending
        finally:
            if bar is not None:
                bar.close()
        rejected_all = [
            (spans[n][1][int(p)], f)
            for n in sorted(run.chunks)
            for p, f in sorted(run.chunks[n]["rejected"].items(), key=lambda kv: int(kv[0]))
        ]
        if rejected_all and rejected_report is None:
            raise rejection_error(corpus, rejected_all, state_path, log)
        skipped = {i for i, _ in rejected_all}
        if len(skipped) == run.count:
            raise CLIError("the service rejected every text; nothing to write", code=1)
        if rejected_report is not None:
            if rejected_all:
                _write_report(rejected_report, corpus, rejected_all)
                log(f"skipped {len(skipped):,} rejected text(s), listed in {rejected_report}")
            else:
                rejected_report.unlink(missing_ok=True)  # an earlier run's list would mislead
        writer = Writer(out, run.count - len(skipped))
        try:
            for number, span in spans:
                vectors = np.load(_chunk_path(folder, number))
                keep = [p for p in range(len(span)) if span[p] not in skipped]
                if keep:
                    writer.write([ids[span[p]] for p in keep], vectors[keep])
            writer.close()
        except BaseException:
            writer.abort()
            raise
    finally:
        if scratch is not None:
            scratch.cleanup()
    if state_path is not None:  # the output is written: the state has done its job
        state_path.unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
    tokens = sum(c["tokens"] for c in run.chunks.values())
    requests = sum(c["requests"] for c in run.chunks.values())
    return usage_for(spec, tokens, requests, client.endpoints.region), run.count - len(skipped)
