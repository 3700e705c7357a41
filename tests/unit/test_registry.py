from __future__ import annotations

import dataclasses

import pytest

from dashscope_embeddings import MODELS, ModelSpec, get_model_spec, list_models
from dashscope_embeddings._registry import (
    DEFAULT_UNKNOWN_MAX_BATCH_SIZE,
    DEFAULT_UNKNOWN_MAX_TOKENS,
    describe_unknown,
)


@pytest.mark.parametrize("spec", list(MODELS.values()), ids=lambda s: s.name)
def test_every_spec_is_self_consistent(spec: ModelSpec) -> None:
    assert spec.known
    assert spec.max_batch_size >= 1 and spec.max_tokens_per_input >= 1
    if spec.dimensions:
        assert spec.default_dimension in spec.dimensions
        assert len(set(spec.dimensions)) == len(spec.dimensions)
    assert "text" in spec.modalities or spec.endpoint == "multimodal"
    if spec.endpoint != "multimodal":
        assert spec.modalities == {"text"}
        assert spec.fusion == "none"
    if spec.batch_price_cny_per_1k is not None:
        assert spec.price_cny_per_1k is not None
        assert spec.batch_price_cny_per_1k == pytest.approx(spec.price_cny_per_1k / 2)


@pytest.mark.parametrize(
    ("name", "batch", "tokens", "sparse", "instruct", "default_dim"),
    [
        ("text-embedding-v4", 10, 8192, True, True, 1024),
        ("text-embedding-v3", 10, 8192, True, False, 1024),
        ("text-embedding-v2", 25, 2048, False, False, 1536),
        ("text-embedding-v1", 25, 2048, False, False, 1536),
    ],
)
def test_text_models_match_the_reference(
    name: str, batch: int, tokens: int, sparse: bool, instruct: bool, default_dim: int
) -> None:
    spec = get_model_spec(name)
    assert (spec.max_batch_size, spec.max_tokens_per_input) == (batch, tokens)
    assert (spec.supports_sparse, spec.supports_instruct) == (sparse, instruct)
    assert spec.default_dimension == default_dim
    assert spec.endpoint == "text"


def test_v4_dimensions_and_v3_safe_set() -> None:
    assert get_model_spec("text-embedding-v4").dimensions == (
        2048,
        1536,
        1024,
        768,
        512,
        256,
        128,
        64,
    )
    assert set(get_model_spec("text-embedding-v3").dimensions) == {1024, 768, 512}
    assert get_model_spec("text-embedding-v2").fixed_dimension


def test_unknown_model_gets_conservative_defaults() -> None:
    spec = get_model_spec("my-private-model")
    assert not spec.known
    assert spec.max_batch_size == DEFAULT_UNKNOWN_MAX_BATCH_SIZE == 10
    assert spec.max_tokens_per_input == DEFAULT_UNKNOWN_MAX_TOKENS == 2048
    assert not spec.supports_sparse and not spec.supports_instruct
    assert spec.dimensions == ()


def test_overrides_apply_and_do_not_touch_the_registry() -> None:
    bigger = get_model_spec("text-embedding-v4", max_batch_size=25)
    assert bigger.max_batch_size == 25
    assert get_model_spec("text-embedding-v4").max_batch_size == 10
    with pytest.raises(ValueError, match="max_batch_size"):
        get_model_spec("x", max_batch_size=0)


def test_specs_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        MODELS["text-embedding-v4"].max_batch_size = 99  # type: ignore[misc]


def test_bad_lookups() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        get_model_spec("  ")
    with pytest.raises(TypeError, match="str or ModelSpec"):
        get_model_spec(42)  # type: ignore[arg-type]


def test_list_models_by_endpoint() -> None:
    text = {s.name for s in list_models("text")}
    assert {"text-embedding-v1", "text-embedding-v4"} <= text
    assert all(s.endpoint == "multimodal" for s in list_models("multimodal"))
    assert "qwen3-vl-embedding" in {s.name for s in list_models("multimodal")}
    assert len(list_models()) == len(MODELS)


def test_a_typo_names_only_the_closest_models() -> None:
    with pytest.warns(UserWarning) as caught:
        get_model_spec("text-embeding-v3")
    for message in (str(caught[0].message), describe_unknown("text-embeding-v3")):
        assert "did you mean 'text-embedding-v3'" in message
        assert "multimodal-embedding-one-peace-v1" not in message  # not the whole registry
        assert len(message) < 400, message


def test_a_name_like_no_model_points_at_the_list_without_dumping_it() -> None:
    message = describe_unknown("my-own-model")
    assert "did you mean" not in message
    assert "dashscope-embeddings models" in message and "list_models()" in message
    assert "tongyi-embedding-vision-flash-2026-03-06" not in message
    assert len(message) < 400, message
