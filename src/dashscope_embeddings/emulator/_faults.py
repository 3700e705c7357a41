"""The faults the emulator can be told to produce, and how they change an answer.

* :class:`StatusFault` (:meth:`Emulator.inject`): a status code and error body, answered before
  authentication.
* :class:`ScriptedFault` (:meth:`Emulator.inject_fault`), of a :data:`FaultKind`: gateway kinds
  (``reset``, ``html``) answer at once; delivery kinds (``truncated``, ``slow_body``) change
  how the answer is sent (:func:`._responses.finish_response`); data kinds change a success
  body (:func:`apply_data_fault`).

Both wait in one FIFO queue (:attr:`._state.ServerState.faults`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Literal

from dashscope_embeddings.emulator import _lexical
from dashscope_embeddings.emulator._errors import Json
from dashscope_embeddings.emulator._vectors import DenseVector

__all__ = [
    "DATA_FAULTS",
    "DEFAULT_TRICKLE_PIECES",
    "FAULT_KINDS",
    "FAULT_OPTIONS",
    "GATEWAY_FAULTS",
    "NON_FINITE",
    "FaultKind",
    "ScriptedFault",
    "StatusFault",
    "apply_data_fault",
    "html_page",
]

FaultKind = Literal[
    "reset",
    "truncated",
    "html",
    "duplicate_index",
    "missing_index",
    "wrong_dimension",
    "nan",
    "slow_body",
]
FAULT_KINDS: tuple[FaultKind, ...] = (
    "reset",
    "truncated",
    "html",
    "duplicate_index",
    "missing_index",
    "wrong_dimension",
    "nan",
    "slow_body",
)
"""Kinds of :meth:`Emulator.inject_fault <dashscope_embeddings.emulator.Emulator.inject_fault>`."""

FAULT_OPTIONS: dict[str, frozenset[str]] = {
    "reset": frozenset(),
    "html": frozenset({"status"}),
    "truncated": frozenset({"at", "full_length"}),
    "slow_body": frozenset({"ms", "pieces"}),
    "duplicate_index": frozenset(),
    "missing_index": frozenset(),
    "wrong_dimension": frozenset(),
    "nan": frozenset({"value"}),
}
"""The options each kind takes."""

NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
"""The values of the ``nan`` fault's ``value`` option."""

DATA_FAULTS = frozenset({"duplicate_index", "missing_index", "wrong_dimension", "nan"})
GATEWAY_FAULTS = frozenset({"reset", "html"})
DEFAULT_TRICKLE_PIECES = 20
"""Parts of a trickled body (``slow_body`` fault, ``slow_body_ms``)."""


@dataclass(frozen=True)
class StatusFault:
    """A fault of :meth:`Emulator.inject`: this status and error (or whole ``body``)."""

    status: int
    code: str | None
    message: str
    headers: dict[str, str]
    body: dict[str, Any] | None


@dataclass(frozen=True)
class ScriptedFault:
    """A fault of :meth:`Emulator.inject_fault`, beyond a status code (see :data:`FaultKind`)."""

    kind: FaultKind
    status: int = 502  # html
    ms: float = 2000.0  # slow_body
    pieces: int = DEFAULT_TRICKLE_PIECES  # slow_body
    at: float = 0.5  # truncated: fraction of the body kept
    full_length: bool = False  # truncated: declare the whole length, then reset
    value: float = math.nan  # nan: the number put into a vector


def html_page(status: int) -> bytes:
    """The HTML error page a gateway sends for ``status``."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    title = f"{status} {phrase}"
    return (
        "<html>\r\n"
        f"<head><title>{title}</title></head>\r\n"
        "<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n"
        "<hr><center>gateway</center>\r\n"
        "</body>\r\n"
        "</html>\r\n"
    ).encode("ascii")


def _vector_values(value: Any) -> tuple[list[float], bool] | None:
    """The floats of one ``embedding`` value (cached vector, list, base64) and whether base64."""
    if isinstance(value, DenseVector):
        return list(value.values), False
    if isinstance(value, list):
        return [float(v) for v in value], False
    if isinstance(value, str):
        raw = _lexical.decode_base64(value)
        return (raw, True) if raw is not None else None
    return None


def apply_data_fault(payload: Json, fault: ScriptedFault) -> bool:
    """Apply a data fault to a success body in place; ``True`` when it uses NaN / Infinity."""
    output = payload.get("output")
    items: Any = None
    if isinstance(output, dict):
        items = output.get("embeddings")
    if items is None:
        items = payload.get("data")
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        return False
    key = "text_index" if "text_index" in items[0] else "index"
    if fault.kind == "duplicate_index":
        if len(items) >= 2:  # same count, one index twice and one missing
            items[-1][key] = items[0][key]
        else:
            items.append(dict(items[0]))
        return False
    if fault.kind == "missing_index":
        items.pop()
        return False
    for item in items:
        found = _vector_values(item.get("embedding"))
        if found is None:
            continue
        values, as_base64 = found
        if fault.kind == "wrong_dimension":
            values.pop()
        else:
            values[len(values) // 2] = fault.value
        item["embedding"] = _lexical.encode_base64(values) if as_base64 else values
        return fault.kind == "nan" and not as_base64
    if fault.kind == "nan":  # sparse only: spoil a sparse weight
        for item in items:
            sparse = item.get("sparse_embedding")
            if isinstance(sparse, list) and sparse and isinstance(sparse[0], dict):
                sparse[0]["value"] = fault.value
                return True
    return False
