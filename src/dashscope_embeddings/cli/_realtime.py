"""Real-time embedding of a corpus in chunks, resumable from a state file.

The corpus is cut into chunks of ``chunk_size`` texts; :func:`embed_chunks` is the one place
that sends them (through ``client.embed_texts``, which fans each chunk out into concurrent
requests). With a state file, every finished chunk is saved as a float32 ``.npy`` in the
folder ``<state>.d`` and recorded in the state (both written atomically) before the next chunk
starts, so a run started again after Ctrl-C or a crash sends only the chunks not recorded.
"""

from __future__ import annotations

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
from dashscope_embeddings._types import EmbeddingResult, TextType, Usage
from dashscope_embeddings._usage import usage_for
from dashscope_embeddings.batch._state import write_atomic
from dashscope_embeddings.cli._io import CLIError, Corpus, Writer

if typing.TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["RealtimeRun", "embed_chunks", "run_realtime"]

_KIND = "dashscope-embeddings real-time run"


def embed_chunks(
    client: DashScopeClient,
    texts: Sequence[str],
    chunks: Sequence[tuple[int, range]],
    *,
    model: str,
    dimension: int | None,
    text_type: TextType,
) -> Iterator[tuple[int, EmbeddingResult]]:
    """Embed each chunk, in order, yielding ``(chunk number, result)`` as each one finishes.

    The only function that sends; a streaming call can take its place.
    """
    for number, span in chunks:
        result = client.embed_texts(
            texts[span.start : span.stop], model=model, dimension=dimension, text_type=text_type
        )
        yield number, result


@dataclass
class RealtimeRun:
    """A real-time run's settings and finished chunks (the state file's content)."""

    fingerprint: str
    model: str
    dimension: int | None
    text_type: str
    chunk_size: int
    count: int
    chunks: dict[int, dict[str, int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, typing.Any]:
        """The state as JSON."""
        return {
            "kind": _KIND,
            "version": 1,
            "fingerprint": self.fingerprint,
            "model": self.model,
            "dimension": self.dimension,
            "text_type": self.text_type,
            "chunk_size": self.chunk_size,
            "count": self.count,
            "chunks": {str(k): v for k, v in sorted(self.chunks.items())},
        }

    @classmethod
    def load(cls, path: Path) -> RealtimeRun:
        """Read a state written by :meth:`save`.

        Raises:
            CLIError: If it is not a real-time run's state.
        """
        try:
            raw = json.loads(path.read_bytes())
            if raw.get("kind") != _KIND:
                raise ValueError("not a real-time run's state")
            return cls(
                fingerprint=str(raw["fingerprint"]),
                model=str(raw["model"]),
                dimension=raw["dimension"],
                text_type=str(raw["text_type"]),
                chunk_size=int(raw["chunk_size"]),
                count=int(raw["count"]),
                chunks={int(k): dict(v) for k, v in raw["chunks"].items()},
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CLIError(
                f"--state {path} is not the state of a real-time run ({exc}); "
                "delete it or choose another path"
            ) from None

    def save(self, path: Path) -> None:
        """Write the state atomically."""
        write_atomic(path, json.dumps(self.to_json(), indent=1).encode() + b"\n")

    def same_run(self, other: RealtimeRun) -> str | None:
        """What differs from ``other`` (another run's settings), or ``None``."""
        for name in ("fingerprint", "model", "dimension", "text_type", "chunk_size", "count"):
            if getattr(self, name) != getattr(other, name):
                what = "inputs" if name == "fingerprint" else name.replace("_", " ")
                return what
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
) -> Usage:
    """Embed the corpus chunk by chunk and write ``out``; resume from ``state_path``.

    Returns:
        Tokens and estimated cost of every chunk, this run's and earlier runs'.

    Raises:
        CLIError: If ``state_path`` belongs to another run.
    """
    import numpy as np

    run = RealtimeRun(fingerprint, spec.name, dimension, text_type, chunk_size, len(corpus.texts))
    scratch: tempfile.TemporaryDirectory[str] | None = None
    if state_path is None:
        scratch = tempfile.TemporaryDirectory(prefix="dashscope-embeddings-")
        folder = Path(scratch.name)
    else:
        folder = state_path.with_name(state_path.name + ".d")
        if state_path.exists():
            saved = RealtimeRun.load(state_path)
            differs = saved.same_run(run)
            if differs is not None:
                raise CLIError(
                    f"--state {state_path} belongs to a run with other {differs}; delete it "
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
        todo = [(n, span) for n, span in spans if n not in run.chunks]
        bar = _progress_bar(run.count, sum(len(s) for n, s in spans if n in run.chunks))
        try:
            for number, result in embed_chunks(
                client,
                corpus.texts,
                todo,
                model=spec.name,
                dimension=dimension,
                text_type=text_type,
            ):
                vectors = np.asarray(result.embeddings, dtype=np.float32)
                _save_chunk(_chunk_path(folder, number), vectors)
                run.chunks[number] = {
                    "rows": len(vectors),
                    "tokens": result.usage.total_tokens,
                    "requests": result.usage.requests,
                }
                if state_path is not None:
                    run.save(state_path)  # after the chunk's file: a recorded chunk is on disk
                if bar is not None:
                    bar.update(len(vectors))
        finally:
            if bar is not None:
                bar.close()
        ids = corpus.id_list()
        writer = Writer(out, run.count)
        try:
            for number, span in spans:
                writer.write(ids[span.start : span.stop], np.load(_chunk_path(folder, number)))
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
    return usage_for(spec, tokens, requests, client.endpoints.region)
