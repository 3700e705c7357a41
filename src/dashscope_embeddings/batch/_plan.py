"""Pure planning of a batch job: input checks, lines, files, and the JSON lines uploaded.

A line carries up to the model's texts-per-request of consecutive inputs, as one
OpenAI-compatible ``/v1/embeddings`` body (``encoding_format`` float, ``dimensions`` when
given). Its ``custom_id`` is ``t<try>-<first>-<last>``: the submission it belongs to (0 for the
first, ``n`` for the ``n``-th ``resubmit_failed``) and its first and last input index, so every
output line names the inputs it answers. Lines are cut into files by a line count and a byte
size, whichever is reached first.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from dashscope_embeddings._errors import InvalidInputError
from dashscope_embeddings._registry import MODELS, ModelSpec
from dashscope_embeddings._tokens import TokenCounter
from dashscope_embeddings.batch._state import write_atomic
from dashscope_embeddings.resources import text
from dashscope_embeddings.resources._common import dumps

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "DEFAULT_MAX_LINES_PER_FILE",
    "check_inputs",
    "custom_id",
    "fingerprint",
    "line_bytes",
    "parse_custom_id",
    "plan_lines",
    "ranges_of",
    "read_inputs",
    "split_files",
    "write_inputs",
]

# The service's limits per input file are not confirmed (a page is believed to allow 50,000
# lines and 500 MB, OpenAI's own are 50,000 / 200 MB): stay well below both.
DEFAULT_MAX_LINES_PER_FILE = 10_000
DEFAULT_MAX_FILE_BYTES = 100 * 1024 * 1024
BATCH_URL = "/v1/embeddings"
_CUSTOM_ID = re.compile(r"^t(\d+)-(\d+)-(\d+)$")


def check_inputs(
    texts: Sequence[str],
    ids: Sequence[str] | None,
    spec: ModelSpec,
    *,
    dimension: int | None,
    texts_per_line: int,
    token_counter: TokenCounter | None,
) -> None:
    """Refuse, before anything is written or sent, what the Batch API would refuse.

    Raises:
        InvalidInputError: For a model the Batch API does not serve, a bad option, or a bad
            input or id (naming its index).
    """
    if spec.known and not spec.supports_batch_api:
        served = ", ".join(name for name, s in MODELS.items() if s.supports_batch_api)
        raise InvalidInputError(
            f"{spec.name} is not served by the Batch API; models that are: {served}"
        )
    text.check_options(
        spec,
        dimension=dimension,
        text_type=None,
        output_type="dense",
        instruct=None,
        protocol="compatible",
    )
    if isinstance(texts_per_line, bool) or not 1 <= texts_per_line <= spec.max_batch_size:
        raise InvalidInputError(
            f"texts_per_line must be in 1..{spec.max_batch_size} ({spec.name}'s texts per "
            f"request), got {texts_per_line!r}"
        )
    if not texts:
        raise InvalidInputError("no texts to embed")
    text.check_texts(texts, spec, token_counter=token_counter)
    if ids is None:
        return
    if len(ids) != len(texts):
        raise InvalidInputError(f"{len(ids)} ids for {len(texts)} texts; give one id per text")
    seen: dict[str, int] = {}
    for index, value in enumerate(ids):
        if not isinstance(value, str) or not value:
            raise InvalidInputError(
                f"id {index} must be a non-empty str, got {value!r}", index=index
            )
        if value in seen:
            raise InvalidInputError(
                f"id {index} ({value!r}) repeats id {seen[value]}; ids must be unique",
                index=index,
            )
        seen[value] = index


def fingerprint(texts: Iterable[str], ids: Iterable[str] | None) -> str:
    """A SHA-256 of the inputs and ids, to tell whether a state belongs to these inputs."""
    digest = hashlib.sha256()
    for value in texts:
        digest.update(value.encode("utf-8", "surrogatepass") + b"\x00")
    digest.update(b"\x01ids" if ids is not None else b"\x01noids")
    for value in ids or ():
        digest.update(value.encode("utf-8", "surrogatepass") + b"\x00")
    return digest.hexdigest()


def ranges_of(indices: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted indices as maximal runs ``[start, stop)``.

    >>> ranges_of([1, 2, 3, 7, 9, 10])
    [(1, 4), (7, 8), (9, 11)]
    """
    runs: list[tuple[int, int]] = []
    for index in sorted(set(indices)):
        if runs and runs[-1][1] == index:
            runs[-1] = (runs[-1][0], index + 1)
        else:
            runs.append((index, index + 1))
    return runs


def plan_lines(runs: Iterable[tuple[int, int]], texts_per_line: int) -> list[tuple[int, int]]:
    """Each run of inputs cut into lines of at most ``texts_per_line``, balanced.

    >>> plan_lines([(0, 25)], 10)
    [(0, 9), (9, 17), (17, 25)]
    """
    lines: list[tuple[int, int]] = []
    for start, stop in runs:
        for r in text.plan_requests(stop - start, texts_per_line):
            lines.append((start + r.start, start + r.stop))
    return lines


def custom_id(attempt: int, start: int, stop: int) -> str:
    """The ``custom_id`` of the line holding inputs ``[start, stop)`` in submission ``attempt``."""
    return f"t{attempt}-{start}-{stop - 1}"


def parse_custom_id(value: object) -> tuple[int, int, int] | None:
    """``(attempt, start, stop)`` from a ``custom_id``; ``None`` if it is not one of ours."""
    match = _CUSTOM_ID.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    attempt, first, last = (int(g) for g in match.groups())
    return attempt, first, last + 1


def line_bytes(
    model: str, texts: Sequence[str], attempt: int, start: int, stop: int, dimension: int | None
) -> bytes:
    """One JSON line of an input file: inputs ``[start, stop)`` as an embeddings request."""
    body = text.compatible_body(model, texts[start:stop], dimension=dimension)
    line = {
        "custom_id": custom_id(attempt, start, stop),
        "method": "POST",
        "url": BATCH_URL,
        "body": body,
    }
    return dumps(line) + b"\n"


def split_files(sizes: Sequence[int], *, max_lines: int, max_bytes: int) -> list[tuple[int, int]]:
    """Consecutive lines (their byte ``sizes``) grouped into files, as ``[first, stop)`` ranges.

    A file takes lines until one more would pass ``max_lines`` or ``max_bytes``.

    Raises:
        InvalidInputError: If one line alone is larger than ``max_bytes``.
    """
    if max_lines < 1 or max_bytes < 1:
        raise InvalidInputError("max_lines_per_file and max_file_bytes must be >= 1")
    files: list[tuple[int, int]] = []
    first, size = 0, 0
    for number, line_size in enumerate(sizes):
        if line_size > max_bytes:
            raise InvalidInputError(
                f"line {number} of the job is {line_size:,} bytes, over max_file_bytes "
                f"({max_bytes:,}); raise max_file_bytes or lower texts_per_line"
            )
        if number > first and (number - first >= max_lines or size + line_size > max_bytes):
            files.append((first, number))
            first, size = number, 0
        size += line_size
    if len(sizes) > first:
        files.append((first, len(sizes)))
    return files


def write_inputs(path: Path, texts: Sequence[str], ids: Sequence[str] | None) -> None:
    """Save the inputs (and ids) as JSON lines, atomically."""
    if ids is None:
        records = (json.dumps({"text": t}, ensure_ascii=False) for t in texts)
    else:
        records = (
            json.dumps({"text": t, "id": i}, ensure_ascii=False)
            for t, i in zip(texts, ids, strict=True)
        )
    write_atomic(path, "".join(r + "\n" for r in records).encode())


def read_inputs(path: Path, count: int) -> tuple[list[str], list[str] | None]:
    """The inputs saved by :func:`write_inputs`: texts, and ids if there were any.

    Raises:
        ValueError: If the file does not hold ``count`` inputs.
    """
    texts: list[str] = []
    ids: list[str] = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            texts.append(record["text"])
            if "id" in record:
                ids.append(record["id"])
    if len(texts) != count or (ids and len(ids) != count):
        raise ValueError(f"{path} holds {len(texts)} inputs, the job has {count}")
    return texts, (ids or None)
