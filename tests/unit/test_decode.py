"""Answers decode to the same values with orjson (the ``fast`` extra) as with the standard library.

Every answer goes through ``_transport.decode_json``; these tests compare its two decoders
number by number (bit patterns, not ``==``, so ``-0.0`` and ``0.0`` differ), check that what
orjson refuses is still read, or refused, as the standard library does, and that the decoder is
imported only when an answer is decoded.
"""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashscope_embeddings import ResponseValidationError, _transport
from dashscope_embeddings.resources.text import parse_native

orjson = pytest.importorskip("orjson")

TRICKY = [
    "1e-300",
    "-0.0",
    "0.0",
    "-0",
    "0.1",
    "0.30000000000000004",  # 17 significant digits
    "0.12345678901234568",
    "-0.017452406437283513",
    "1.0000000000000002",
    "2.2250738585072014e-308",  # smallest normal
    "2.225073858507201e-308",  # largest subnormal
    "4.9e-324",  # smallest subnormal
    "5e-325",  # rounds to 0.0
    "1.7976931348623157e308",
    "9007199254740993",  # 2**53 + 1: an integer, exact
    "9223372036854775807",
    "-9223372036854775808",
    "1E5",
    "1.5e+2",
    "123456789.123456789e-20",
]


@pytest.fixture
def stdlib_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(_transport, "_fast_loads", None)
    yield


@pytest.fixture
def with_orjson(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(_transport, "_fast_loads", orjson.loads)
    yield


def bits(value: object) -> object:
    """``value`` with every float replaced by its bit pattern (and type), for exact comparison."""
    if isinstance(value, float):
        return ("float", struct.pack("<d", value))
    if isinstance(value, list):
        return [bits(v) for v in value]
    if isinstance(value, dict):
        return {k: bits(v) for k, v in value.items()}
    return (type(value).__name__, value)


def both(
    content: bytes, monkeypatch: pytest.MonkeyPatch
) -> tuple[tuple[bool, object], tuple[bool, object]]:
    monkeypatch.setattr(_transport, "_fast_loads", orjson.loads)
    fast = _transport.decode_json(content)
    monkeypatch.setattr(_transport, "_fast_loads", None)
    slow = _transport.decode_json(content)
    return fast, slow


@pytest.mark.parametrize("number", TRICKY)
def test_tricky_numbers_decode_bit_for_bit_alike(
    number: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = f'{{"output":{{"embeddings":[{{"embedding":[{number}],"text_index":0}}]}}}}'.encode()
    fast, slow = both(body, monkeypatch)
    assert fast[0] and slow[0]
    assert bits(fast[1]) == bits(slow[1]) == bits(json.loads(body))


def test_negative_zero_keeps_its_sign(with_orjson: None) -> None:
    ok, value = _transport.decode_json(b"[-0.0, 1e-300]")
    assert ok and isinstance(value, list)
    assert math.copysign(1.0, value[0]) == -1.0 and value[1] == 1e-300


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=64))
def test_any_finite_double_decodes_alike(values: list[float]) -> None:
    for text in (json.dumps(values), "[" + ",".join(f"{v:.17g}" for v in values) + "]"):
        content = text.encode()
        assert bits(orjson.loads(content)) == bits(json.loads(content))
        # and through the one decoder, whichever it picks
        assert bits(_transport.decode_json(content)[1]) == bits(json.loads(content))


@pytest.mark.parametrize(
    "content",
    [
        b"[NaN]",
        b"[Infinity, -Infinity]",
        b"[1e400]",  # overflows to inf under the standard library
        b'"\\ud800"',  # a lone surrogate
        b"\xef\xbb\xbf[1.5]",  # a byte order mark
        '[1.5, "é"]'.encode("utf-16"),
        b'{"a": 1, "a": 2}',
        b"[1,]",  # not JSON for either
        b"<html>bad gateway</html>",
        b'{"cut": [0.1, 0.2',
        b'"\xff"',
    ],
)
def test_what_orjson_refuses_is_read_or_refused_as_the_standard_library_does(
    content: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, slow = both(content, monkeypatch)
    assert fast[0] == slow[0]
    if fast[0]:
        assert repr(bits(fast[1])) == repr(bits(slow[1]))  # repr: NaN != NaN


def _nan_answer() -> bytes:
    items = [{"embedding": [0.25, float("nan")], "text_index": 0}]
    return json.dumps({"output": {"embeddings": items}, "usage": {"total_tokens": 3}}).encode()


@pytest.mark.parametrize("decoder", ["with_orjson", "stdlib_only"])
def test_nan_and_infinity_answers_are_refused_by_either_decoder(
    decoder: str, request: pytest.FixtureRequest
) -> None:
    request.getfixturevalue(decoder)
    for content in (_nan_answer(), _nan_answer().replace(b"NaN", b"-Infinity")):
        ok, payload = _transport.decode_json(content)
        assert ok  # read as JSON, as the standard library reads it ...
        with pytest.raises(ResponseValidationError, match="embedding 0 holds NaN or Infinity"):
            parse_native(  # ... and refused by the parser, as today
                payload, 1, output_type="dense", expected_dimension=None, request_id="r"
            )


def test_the_core_imports_neither_orjson_nor_numpy_until_an_answer_is_decoded() -> None:
    code = (
        "import sys\n"
        "import dashscope_embeddings\n"
        "from dashscope_embeddings import DashScopeClient, AsyncDashScopeClient\n"
        "from dashscope_embeddings import _transport\n"
        "before = sorted(m for m in ('orjson', 'numpy') if m in sys.modules)\n"
        "_transport.decode_json(b'[1.5]')\n"
        "print(before, 'orjson' in sys.modules, 'numpy' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split("\n")[0] == "[] True False"


def test_numpy_parts_hold_the_float32_values_numpy_asarray_gives() -> None:
    np = pytest.importorskip("numpy")
    from dashscope_embeddings._stream import _as_numpy

    tricky = [1e-300, -0.0, 0.30000000000000004, 1.4e-45, 3.4028235e38, -3.4e38, 5e-46, 0.1, 1e-7]
    ints: list[float] = [1, 0, -2, 3, 4, 5, 6, 7, 8]
    rows = [tricky, [float(i) / 7 for i in range(len(tricky))], ints]
    array = _as_numpy(rows)
    assert array.dtype == np.float32 and array.shape == (3, len(tricky))
    assert array.tobytes() == np.asarray(rows, dtype=np.float32).tobytes()
    assert np.signbit(array[0, 1])  # -0.0 stays negative
    for way in (_as_numpy, lambda rows: np.asarray(rows, dtype=np.float32)):
        with pytest.warns(RuntimeWarning, match="overflow"):  # past float32: warned alike
            assert np.isinf(way([[1e39, -1e39]])).all()


def test_numpy_parts_of_unequal_vectors_are_refused_not_cut() -> None:
    pytest.importorskip("numpy")
    from dashscope_embeddings._stream import _as_numpy

    with pytest.raises(ValueError):
        _as_numpy([[0.1, 0.2], [0.1, 0.2, 0.3]])
    assert _as_numpy([]).shape == (0,)
