"""Ray Data batches in and out: read a column, add columns, in each of Ray's batch formats.

A batch is ``numpy`` (a dict of arrays), ``pandas`` (a DataFrame) or ``pyarrow`` (a Table); the
answer has the same format, the same rows in the same order, every column it came with, and
the new ones. A new column's Arrow type never changes from one batch to the next (Ray writes
each batch's block as it is, and Parquet files of one dataset must agree):

=========================  ====================================  ===============================
column                     ``numpy`` / ``pandas``                ``pyarrow``
=========================  ====================================  ===============================
dense, no missing row      2-D float32 array / float32 arrays    ``fixed_size_list<float>[dim]``
dense, rows may be null    ``fixed_size_list<float>[dim]`` (an Arrow array / ``pd.ArrowDtype``)
sparse                     ``struct<indices: list<int32>, values: list<float>>`` (Arrow, as above)
error                      ``string`` (Arrow, as above)
=========================  ====================================  ===============================

A 2-D array cannot hold a missing row, so with ``on_error="skip"`` the dense column is always
the nullable Arrow type, in every batch, whether or not one failed.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]

from dashscope_embeddings._types import SparseVector

__all__ = [
    "SPARSE_TYPE",
    "BatchFormat",
    "add_columns",
    "batch_format",
    "column_names",
    "column_values",
    "dense_column",
    "num_rows",
    "sparse_column",
    "string_column",
]

BatchFormat = typing.Literal["numpy", "pandas", "pyarrow"]

SPARSE_TYPE = pa.struct([("indices", pa.list_(pa.int32())), ("values", pa.list_(pa.float32()))])


def _is_dataframe(batch: object) -> bool:
    if not type(batch).__module__.startswith("pandas"):
        return False
    import pandas as pd  # type: ignore[import-untyped]

    return isinstance(batch, pd.DataFrame)


def batch_format(batch: object) -> BatchFormat:
    """Which of Ray's batch formats ``batch`` is in.

    Raises:
        TypeError: For anything else, naming what was given.
    """
    if isinstance(batch, pa.Table):
        return "pyarrow"
    if isinstance(batch, Mapping):
        return "numpy"
    if _is_dataframe(batch):
        return "pandas"
    raise TypeError(
        f"a Ray Data batch must be a dict of numpy arrays, a pandas DataFrame or a pyarrow "
        f"Table (batch_format='numpy', 'pandas' or 'pyarrow'), got {type(batch).__name__}"
    )


def column_names(batch: typing.Any, fmt: BatchFormat) -> list[str]:
    """The batch's column names, in order."""
    if fmt == "pyarrow":
        return list(batch.column_names)
    return [str(name) for name in (batch.keys() if fmt == "numpy" else batch.columns)]


def num_rows(batch: typing.Any, fmt: BatchFormat, column: str) -> int:
    """Rows in ``batch`` (counted on ``column``)."""
    if fmt == "pyarrow":
        return int(batch.num_rows)
    if fmt == "pandas":
        return len(batch)
    return len(batch[column])


def column_values(batch: typing.Any, fmt: BatchFormat, column: str) -> list[object]:
    """The values of ``column`` as Python objects, in row order (a missing value: ``None``).

    Raises:
        KeyError: ``column`` is not in the batch; the message lists the columns there are.
    """
    names = column_names(batch, fmt)
    if column not in names:
        raise KeyError(
            f"column {column!r} is not in this Ray batch (columns: {', '.join(names) or 'none'})"
        )
    if fmt == "pyarrow":
        return list(batch.column(column).to_pylist())
    values = batch[column]
    items = values.tolist() if hasattr(values, "tolist") else list(values)
    return [None if _missing(v) else v for v in items]


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value) or _is_na(value)


def _is_na(value: object) -> bool:
    return type(value).__name__ in ("NAType", "NaTType")


def dense_column(
    vectors: Sequence[Sequence[float] | None], dimension: int, *, arrow: bool
) -> np.ndarray[typing.Any, np.dtype[np.float32]] | pa.FixedSizeListArray:
    """The vectors as a 2-D float32 array, or (``arrow``) a nullable fixed-size list array.

    Raises:
        ValueError: A vector is not ``dimension`` long (never written under another row), or
            a row has no vector and ``arrow`` is false (a 2-D array cannot say so).
    """
    rows = len(vectors)
    matrix = np.zeros((rows, dimension), dtype=np.float32)
    missing = np.zeros(rows, dtype=bool)
    for row, vector in enumerate(vectors):
        if vector is None:
            missing[row] = True
            continue
        if len(vector) != dimension:
            raise ValueError(
                f"row {row}: a vector of {len(vector)} numbers where {dimension} were expected"
            )
        matrix[row] = vector
    if not arrow:
        if missing.any():
            raise ValueError(f"row {int(np.argmax(missing))} has no vector")
        return matrix
    return pa.FixedSizeListArray.from_arrays(
        pa.array(matrix.reshape(-1)), dimension, mask=pa.array(missing)
    )


def sparse_column(vectors: Sequence[SparseVector | None]) -> pa.Array:
    """Sparse vectors as ``struct<indices, values>`` (the shape Qdrant and Milvus take)."""
    return pa.array(
        [
            None if v is None else {"indices": list(v.indices), "values": list(v.values)}
            for v in vectors
        ],
        type=SPARSE_TYPE,
    )


def string_column(values: Sequence[str | None]) -> pa.Array:
    """Nullable strings."""
    return pa.array(list(values), type=pa.string())


def add_columns(
    batch: typing.Any, fmt: BatchFormat, columns: Mapping[str, typing.Any]
) -> typing.Any:
    """A new batch of the same format with ``columns`` added (or replaced, in place).

    ``batch`` itself is not changed; its columns come first, in their order.

    In the ``numpy`` and ``pandas`` formats an Arrow array stays Arrow (a dict value, or a
    ``pd.ArrowDtype`` column), so Ray stores exactly that type.
    """
    if fmt == "pyarrow":
        table: pa.Table = batch
        for name, values in columns.items():
            array = values if isinstance(values, pa.Array) else pa.array(list(values))
            if name in table.column_names:
                table = table.set_column(table.column_names.index(name), name, array)
            else:
                table = table.append_column(name, array)
        return table
    if fmt == "numpy":
        out = dict(batch)
        out.update(columns)
        return out
    import pandas as pd

    new: dict[str, typing.Any] = {}
    for name, values in columns.items():
        if isinstance(values, pa.Array):
            new[name] = pd.Series(pd.arrays.ArrowExtensionArray(values), index=batch.index)
        elif isinstance(values, np.ndarray) and values.ndim == 2:
            column = np.empty(len(values), dtype=object)
            for row, vector in enumerate(values):
                column[row] = vector
            new[name] = pd.Series(column, index=batch.index, dtype=object)
        else:
            new[name] = pd.Series(values, index=batch.index)
    return batch.assign(**new)
