"""Rows that got no vector: why, named by key or position, as an error or a reason column."""

from __future__ import annotations

import typing
from collections.abc import Mapping

from dashscope_embeddings._errors import DashScopeError
from dashscope_embeddings._types import FailedInput

__all__ = ["RejectedRowsError", "reason", "rejected_rows_error", "text_problem"]

_SHOWN = 5  # failed rows named in an error message


class RejectedRowsError(DashScopeError):
    """Rows of one Ray batch got no vector (``on_error="raise"``), named by key or position.

    The service rejected them (content inspection, length) or they had no text to send; every
    other row of the batch was embedded, but the batch is not returned, so nothing is written
    with a hole in it. Pass ``on_error="skip"`` to keep them with a null vector and the reason
    in an error column instead.

    Attributes:
        failed: Position in the Ray batch -> why that row has no vector.
        keys: Position in the Ray batch -> the row's ``key_column`` value (empty without one).
        key_column: The column that names rows, or ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        failed: Mapping[int, FailedInput],
        keys: Mapping[int, object] | None = None,
        key_column: str | None = None,
    ) -> None:
        super().__init__(message)
        self.failed = dict(failed)
        self.keys = dict(keys or {})
        self.key_column = key_column

    @property
    def rows(self) -> list[object]:
        """The failed rows' keys (or their positions in the batch, without a key column)."""
        return [self.keys.get(p, p) for p in sorted(self.failed)]

    def __reduce__(self) -> tuple[typing.Any, tuple[typing.Any, ...]]:
        # Ray sends the error from the actor to the driver as a pickle.
        return (_rebuild_rejected, (str(self), self.failed, self.keys, self.key_column))


def _rebuild_rejected(
    message: str,
    failed: Mapping[int, FailedInput],
    keys: Mapping[int, object],
    key_column: str | None,
) -> RejectedRowsError:
    return RejectedRowsError(message, failed=failed, keys=keys, key_column=key_column)


def reason(failure: FailedInput) -> str:
    status = f"HTTP {failure.status_code} " if failure.status_code else ""
    code = f"{failure.code}: " if failure.code else ""
    rid = f" (request_id={failure.request_id})" if failure.request_id else ""
    return f"{status}{code}{failure.message}{rid}"


def text_problem(value: object) -> str | None:
    if value is None:
        return "no text (null)"
    if not isinstance(value, str):
        return f"not a text: a {type(value).__name__}"
    if not value or value.isspace():
        return "empty text" if not value else "only whitespace"
    return None


def rejected_rows_error(
    failed: Mapping[int, FailedInput],
    *,
    rows: int,
    keys: Mapping[int, object],
    key_column: str | None,
    columns: tuple[str, str],
) -> RejectedRowsError:
    """The error for ``failed`` rows of a Ray batch of ``rows``, naming the first few.

    ``columns`` are the vector and error columns ``on_error="skip"`` would write.
    """
    named = []
    for row in sorted(failed)[:_SHOWN]:
        label = f"{key_column}={keys[row]!r}" if key_column is not None else f"row {row}"
        named.append(f"{label}: {reason(failed[row])}")
    more = f"; and {len(failed) - _SHOWN} more" if len(failed) > _SHOWN else ""
    where = (
        ""
        if key_column is not None
        else " (rows counted within this Ray batch; pass key_column= to name them by a column "
        "such as an id)"
    )
    vector, error = columns
    message = (
        f"{len(failed)} of {rows} rows of a Ray batch got no vector{where}: "
        f"{'; '.join(named)}{more}. The batch is not returned; pass on_error='skip' to keep "
        f"those rows with a null {vector!r} and the reason in {error!r}"
    )
    return RejectedRowsError(message, failed=failed, keys=keys, key_column=key_column)
