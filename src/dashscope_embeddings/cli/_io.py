"""Reading corpora (.txt, .jsonl, .csv, .parquet) and writing vectors (.npy, .jsonl, .parquet).

Every problem a user can fix (a missing file, a missing column, a malformed line, an output
that cannot be written) is a :class:`CLIError` naming the file and the line or column.
numpy and pyarrow are imported only when a format needs them.
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import io
import json
import os
import tempfile
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

if typing.TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "INPUT_SUFFIXES",
    "OUTPUT_SUFFIXES",
    "CLIError",
    "Corpus",
    "Writer",
    "check_output",
    "read_corpus",
    "require",
]

INPUT_SUFFIXES = (".txt", ".jsonl", ".csv", ".parquet")
OUTPUT_SUFFIXES = (".npy", ".jsonl", ".parquet")


class CLIError(Exception):
    """A mistake the user can fix; printed as one line, exit status ``code``."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def require(module: str, what: str) -> types.ModuleType:
    """Import an optional dependency, or say which extra brings it.

    Raises:
        CLIError: If it is not installed.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        raise CLIError(f"{what} needs {top}: pip install 'dashscope-embeddings[cli]'") from None


@dataclass(frozen=True)
class Corpus:
    """Texts read from a file, with their ids and where each came from.

    Attributes:
        texts: The texts, in file order.
        ids: One id per text from the id field, or ``None`` (ids are then ``"0"``, ``"1"``, ...).
        source: The file's name, for messages.
        rows: The line (or data row) number of each text, for messages.
        row_word: ``line`` or ``row``.
    """

    texts: list[str]
    ids: list[str] | None
    source: str
    rows: list[int]
    row_word: str = "line"

    def id_list(self) -> list[str]:
        """The ids, or row positions as strings when the input has none."""
        return self.ids if self.ids is not None else [str(i) for i in range(len(self.texts))]

    def where(self, index: int) -> str:
        """``"line 8 of corpus.txt (id 'doc-7')"`` for input ``index``."""
        if not 0 <= index < len(self.rows):
            return f"input {index} of {self.source}"
        where = f"{self.row_word} {self.rows[index]} of {self.source}"
        return where + (f" (id {self.ids[index]!r})" if self.ids is not None else "")


def _id_value(value: object, where: str, field: str) -> str:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise CLIError(f"{where}: id field {field!r} must be a non-empty string or an integer")


def _text_value(value: object, where: str, field: str) -> str:
    if isinstance(value, str):
        return value
    kind = "null" if value is None else type(value).__name__
    raise CLIError(f"{where}: text field {field!r} is {kind}, not a string")


def _unique(ids: list[str], rows: list[int], source: str, word: str) -> None:
    seen: dict[str, int] = {}
    for value, row in zip(ids, rows, strict=True):
        if value in seen:
            raise CLIError(
                f"{word} {row} of {source}: id {value!r} repeats the id of {word} {seen[value]}"
            )
        seen[value] = row


def _decode(path: Path) -> str:
    """The file's text (without a UTF-8 byte order mark).

    Raises:
        CLIError: Naming the first byte that is not UTF-8, by its offset in the file and its
            line.
    """
    data = path.read_bytes()
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CLIError(
            f"{path} is not UTF-8 text: byte {exc.start:,} (line {line:,}) is "
            f"0x{data[exc.start]:02x} ({exc.reason})"
        ) from None


def _lines(content: str) -> list[str]:
    """Lines split at line feeds only (a JSON string may hold U+2028 and other separators)."""
    lines = content.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # a final line break ends the last line
    return [line.removesuffix("\r") for line in lines]


def _read_txt(path: Path) -> Corpus:
    texts = _lines(_decode(path))
    return Corpus(texts, None, path.name, list(range(1, len(texts) + 1)))


def _read_jsonl(path: Path, text_field: str, id_field: str | None) -> Corpus:
    texts: list[str] = []
    ids: list[str] = []
    rows: list[int] = []
    use_ids: str | None = id_field
    for number, line in enumerate(_lines(_decode(path)), start=1):
        if not line.strip():
            continue
        where = f"line {number} of {path.name}"
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise CLIError(f"{where} is not valid JSON ({exc})") from None
        if not isinstance(record, dict):
            raise CLIError(f"{where} is not a JSON object")
        if text_field not in record:
            fields = ", ".join(map(repr, record)) or "none"
            raise CLIError(f"{where} has no field {text_field!r} (fields: {fields})")
        if not rows and id_field is None and "id" in record:
            use_ids = "id"
        if use_ids is not None:
            if use_ids not in record:
                raise CLIError(f"{where} has no id field {use_ids!r}")
            ids.append(_id_value(record[use_ids], where, use_ids))
        texts.append(_text_value(record[text_field], where, text_field))
        rows.append(number)
    if use_ids is not None:
        _unique(ids, rows, path.name, "line")
    return Corpus(texts, ids if use_ids is not None else None, path.name, rows)


def _columns(names: Sequence[str], path: Path, text_field: str, id_field: str | None) -> str | None:
    if text_field not in names:
        raise CLIError(
            f"{path.name} has no column {text_field!r} (columns: {', '.join(map(repr, names))}); "
            "choose one with --text-field"
        )
    if id_field is not None and id_field not in names:
        raise CLIError(
            f"{path.name} has no id column {id_field!r} (columns: {', '.join(map(repr, names))})"
        )
    return id_field if id_field is not None else ("id" if "id" in names else None)


def _read_csv(path: Path, text_field: str, id_field: str | None) -> Corpus:
    content = _decode(path)
    try:
        with io.StringIO(content, newline="") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None:
                raise CLIError(f"{path.name} is empty (a CSV needs a header row)")
            id_column = _columns(list(reader.fieldnames), path, text_field, id_field)
            texts, ids, rows = [], [], []
            for record in reader:
                row = reader.line_num
                value = record.get(text_field)
                if value is None:
                    raise CLIError(f"line {row} of {path.name} has no value for {text_field!r}")
                texts.append(value)
                rows.append(row)
                if id_column is not None:
                    ids.append(
                        _id_value(record.get(id_column), f"line {row} of {path.name}", id_column)
                    )
    except csv.Error as exc:
        raise CLIError(f"{path.name} is not valid CSV: {exc}") from None
    if id_column is not None:
        _unique(ids, rows, path.name, "line")
    return Corpus(texts, ids if id_column is not None else None, path.name, rows)


def _read_parquet(path: Path, text_field: str, id_field: str | None) -> Corpus:
    pq = require("pyarrow.parquet", "reading .parquet")
    try:
        names = list(pq.read_schema(path).names)
    except Exception as exc:  # pyarrow raises its own error types for a bad file
        raise CLIError(f"{path.name} is not a readable Parquet file ({exc})") from None
    id_column = _columns(names, path, text_field, id_field)
    columns = [text_field] + ([id_column] if id_column and id_column != text_field else [])
    table = pq.read_table(path, columns=columns)
    values = table.column(text_field).to_pylist()
    rows = list(range(1, len(values) + 1))
    texts = [
        _text_value(value, f"row {row} of {path.name}", text_field)
        for row, value in zip(rows, values, strict=True)
    ]
    ids: list[str] | None = None
    if id_column is not None:
        ids = [
            _id_value(value, f"row {row} of {path.name}", id_column)
            for row, value in zip(rows, table.column(id_column).to_pylist(), strict=True)
        ]
        _unique(ids, rows, path.name, "row")
    return Corpus(texts, ids, path.name, rows, row_word="row")


def read_corpus(path: Path, *, text_field: str, id_field: str | None) -> Corpus:
    """Read the texts (and ids) of ``path``, by its suffix.

    ``.txt``: one text per line, ids are line positions. ``.jsonl`` / ``.csv`` /
    ``.parquet``: the ``text_field`` field or column; ids from ``id_field``, or from an ``id``
    field when there is one.

    Raises:
        CLIError: For a missing or unreadable file, an unknown suffix, a missing field.
    """
    suffix = path.suffix.lower()
    if suffix not in INPUT_SUFFIXES:
        raise CLIError(
            f"cannot read {path.name}: the input must end in {', '.join(INPUT_SUFFIXES)}"
        )
    if not path.is_file():
        problem = "does not exist" if not path.exists() else "is not a file"
        raise CLIError(f"input file {path} {problem}")
    try:
        if suffix == ".txt":
            if id_field is not None:
                raise CLIError("--id-field needs a .jsonl, .csv or .parquet input")
            corpus = _read_txt(path)
        elif suffix == ".jsonl":
            corpus = _read_jsonl(path, text_field, id_field)
        elif suffix == ".csv":
            corpus = _read_csv(path, text_field, id_field)
        else:
            corpus = _read_parquet(path, text_field, id_field)
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not corpus.texts:
        raise CLIError(f"{path.name} holds no texts")
    return corpus


# --- output --------------------------------------------------------------------------------


def check_output(path: Path, *, source: Path | None = None, overwrite: bool = False) -> None:
    """Refuse, before any work, an output that could not be written or must not be.

    Args:
        path: The output file.
        source: The input file, which the output must not be (by any name or link).
        overwrite: Whether an existing ``path`` may be replaced.

    Raises:
        CLIError: For an unknown suffix, the input file, an existing file without
            ``overwrite``, a missing folder, a folder in the way, or a folder that refuses a
            new file.
    """
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise CLIError(
            f"cannot write {path.name}: the output must end in {', '.join(OUTPUT_SUFFIXES)}"
        )
    if path.is_dir():
        raise CLIError(f"cannot write {path}: it is a directory")
    if source is not None and _same_file(path, source):
        raise CLIError(f"cannot write {path}: it is the input file; choose another --out")
    if path.exists() and not overwrite:
        raise CLIError(f"{path} exists; pass --overwrite to replace it")
    folder = path.parent
    if not folder.is_dir():
        problem = "is not a directory" if folder.exists() else "does not exist"
        raise CLIError(f"cannot write {path}: {folder} {problem}")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".dashscope-embeddings-check-"):
            pass
    except OSError as exc:
        raise CLIError(f"cannot write {path}: {exc.strerror or exc}") from None
    if suffix == ".parquet":
        require("pyarrow", "writing .parquet")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


class Writer:
    """Writes vectors chunk by chunk to a temporary file, moved into place by :meth:`close`.

    An interrupted or failed write leaves no partial output behind (:meth:`abort`); a process
    killed outright leaves at most a hidden ``.NAME.partial-PID`` beside the output, which no
    reader takes for an output.
    """

    def __init__(self, path: Path, rows: int) -> None:
        self.path = path
        self.rows = rows
        self.tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
        self.written = 0
        self._npy: typing.Any = None
        self._jsonl: typing.IO[str] | None = None
        self._parquet: typing.Any = None
        self._pa: types.ModuleType | None = None

    def write(self, ids: Sequence[str], vectors: npt.NDArray[np.float32]) -> None:
        """Append rows (``ids`` and a float32 matrix with one row per id)."""
        import numpy as np

        suffix = self.path.suffix.lower()
        count = len(ids)
        if suffix == ".npy":
            if self._npy is None:
                self._npy = np.lib.format.open_memmap(
                    self.tmp, mode="w+", dtype=np.float32, shape=(self.rows, vectors.shape[1])
                )
            self._npy[self.written : self.written + count] = vectors
        elif suffix == ".jsonl":
            if self._jsonl is None:
                self._jsonl = open(self.tmp, "w", encoding="utf-8")  # noqa: SIM115
            for row_id, row in zip(ids, vectors, strict=True):
                values = ",".join(np.char.mod("%.9g", row).tolist())
                self._jsonl.write(f'{{"id":{json.dumps(row_id)},"embedding":[{values}]}}\n')
        else:
            pa = self._pa or require("pyarrow", "writing .parquet")
            self._pa = pa
            if self._parquet is None:
                pq = require("pyarrow.parquet", "writing .parquet")
                schema = pa.schema([("id", pa.string()), ("embedding", pa.list_(pa.float32()))])
                self._parquet = pq.ParquetWriter(self.tmp, schema)
            dim = vectors.shape[1]
            offsets = pa.array(np.arange(0, (count + 1) * dim, dim, dtype=np.int32))
            lists = pa.ListArray.from_arrays(offsets, pa.array(vectors.reshape(-1)))
            self._parquet.write_table(
                pa.Table.from_arrays(
                    [pa.array(list(ids), pa.string()), lists], names=["id", "embedding"]
                )
            )
        self.written += count

    def close(self) -> None:
        """Finish the file and move it into place."""
        if self.written != self.rows:
            raise RuntimeError(f"wrote {self.written} rows of {self.rows}")
        if self._npy is not None:
            self._npy.flush()
            self._npy = None
        if self._jsonl is not None:
            self._jsonl.close()
        if self._parquet is not None:
            self._parquet.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        """Drop the temporary file."""
        self._npy = None
        if self._jsonl is not None:
            self._jsonl.close()
        if self._parquet is not None:
            with contextlib.suppress(Exception):  # already broken: the file is dropped anyway
                self._parquet.close()
        self.tmp.unlink(missing_ok=True)
