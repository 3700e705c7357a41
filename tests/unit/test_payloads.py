from __future__ import annotations

import base64
import struct

import pytest

from dashscope_embeddings import ResponseValidationError
from dashscope_embeddings.resources.text import (
    compatible_body,
    parse_compatible,
)
from dashscope_embeddings.resources.text import native_body as native_text_body
from dashscope_embeddings.resources.text import parse_native as parse_native_text


def test_native_body_sends_only_what_was_set() -> None:
    assert native_text_body(
        "text-embedding-v4",
        ["a"],
        dimension=None,
        text_type=None,
        output_type="dense",
        instruct=None,
    ) == {"model": "text-embedding-v4", "input": {"texts": ["a"]}}
    body = native_text_body(
        "text-embedding-v4",
        ["a", "b"],
        dimension=512,
        text_type="query",
        output_type="dense&sparse",
        instruct="Find",
    )
    assert body["parameters"] == {
        "text_type": "query",
        "dimension": 512,
        "output_type": "dense&sparse",
        "instruct": "Find",
    }


def test_compatible_body_asks_for_floats() -> None:
    assert compatible_body("text-embedding-v3", ["a"], dimension=768) == {
        "model": "text-embedding-v3",
        "input": ["a"],
        "encoding_format": "float",
        "dimensions": 768,
    }


def _native(items: list[dict[str, object]]) -> dict[str, object]:
    return {"output": {"embeddings": items}, "usage": {"total_tokens": 7}, "request_id": "r"}


def test_native_results_are_reordered_by_text_index() -> None:
    out = parse_native_text(
        _native(
            [
                {"embedding": [0.0, 1.0], "text_index": 2},
                {"embedding": [1.0, 0.0], "text_index": 0},
                {"embedding": [0.5, 0.5], "text_index": 1},
            ]
        ),
        3,
        output_type="dense",
        expected_dimension=2,
        request_id=None,
    )
    assert out.dense == [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]
    assert out.total_tokens == 7 and out.request_id == "r"


@pytest.mark.parametrize(
    ("items", "count", "message"),
    [
        ([{"embedding": [1.0], "text_index": 0}], 2, "1 embeddings for 2 inputs"),
        (
            [{"embedding": [1.0], "text_index": 0}, {"embedding": [1.0], "text_index": 0}],
            2,
            "appears twice",
        ),
        ([{"embedding": [1.0], "text_index": 5}], 1, "not in 0..0"),
        ([{"embedding": [1.0]}], 1, "text_index None"),
        ([{"embedding": "nope!", "text_index": 0}], 1, "not base64"),
        ([{"embedding": [1.0, "x"], "text_index": 0}], 1, "not a list of numbers"),
        ([{"embedding": [], "text_index": 0}], 1, "empty"),
    ],
)
def test_native_incomplete_or_malformed_results_raise(
    items: list[dict[str, object]], count: int, message: str
) -> None:
    with pytest.raises(ResponseValidationError, match=message):
        parse_native_text(
            _native(items), count, output_type="dense", expected_dimension=None, request_id=None
        )


def test_native_wrong_dimension_raises() -> None:
    with pytest.raises(ResponseValidationError, match="expected 3"):
        parse_native_text(
            _native([{"embedding": [1.0, 2.0], "text_index": 0}]),
            1,
            output_type="dense",
            expected_dimension=3,
            request_id=None,
        )


def test_native_sparse_only_tolerates_missing_or_empty_dense() -> None:
    items = [
        {
            "sparse_embedding": [
                {"index": 9, "value": 0.5, "token": "b"},
                {"index": 3, "value": 0.9, "token": "a"},
            ],
            "text_index": 0,
        },
        {"embedding": [], "sparse_embedding": [], "text_index": 1},
    ]
    out = parse_native_text(
        _native(items), 2, output_type="sparse", expected_dimension=1024, request_id=None
    )
    assert out.dense is None
    assert out.sparse is not None
    assert (
        out.sparse[0].indices == (3, 9)
        and out.sparse[0].values == (0.9, 0.5)
        and out.sparse[0].tokens == ("a", "b")
    )
    assert len(out.sparse[1]) == 0


def test_native_dense_and_sparse() -> None:
    items = [
        {
            "embedding": [0.1, 0.2],
            "sparse_embedding": [{"index": 1, "value": 1.0, "token": "x"}],
            "text_index": 0,
        }
    ]
    out = parse_native_text(
        _native(items), 1, output_type="dense&sparse", expected_dimension=2, request_id=None
    )
    assert (
        out.dense == [[0.1, 0.2]] and out.sparse is not None and out.sparse[0].as_dict() == {1: 1.0}
    )
    with pytest.raises(ResponseValidationError, match="sparse_embedding 0 is not a list"):
        parse_native_text(
            _native([{"embedding": [0.1, 0.2], "text_index": 0}]),
            1,
            output_type="dense&sparse",
            expected_dimension=2,
            request_id=None,
        )


def test_compatible_float_and_base64_results_in_index_order() -> None:
    packed = base64.b64encode(struct.pack("<2f", 0.25, -0.5)).decode()
    body = {
        "data": [
            {"embedding": packed, "index": 1, "object": "embedding"},
            {"embedding": [1.0, 0.0], "index": 0, "object": "embedding"},
        ],
        "usage": {"prompt_tokens": 4, "total_tokens": 4},
        "id": "c1",
    }
    out = parse_compatible(body, 2, expected_dimension=2, request_id=None)
    assert out.dense == [[1.0, 0.0], [0.25, -0.5]]
    assert out.total_tokens == 4 and out.request_id == "c1"


def test_body_that_is_not_an_object_raises() -> None:
    with pytest.raises(ResponseValidationError, match="not an object"):
        parse_compatible([1, 2], 1, expected_dimension=None, request_id="h")
