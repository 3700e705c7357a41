"""Per-model limits, capabilities and prices: data only, no I/O.

This module is the single place where facts about DashScope embedding models live. The core
client, both framework adapters and the bundled emulator read it; none of them keeps a limit of
its own.

>>> spec = get_model_spec("text-embedding-v4")
>>> spec.max_batch_size, spec.default_dimension, spec.supports_sparse
(10, 1024, True)
>>> get_model_spec("my-finetune").known   # unknown names get conservative limits
False
>>> get_model_spec("my-finetune", max_batch_size=25).max_batch_size
25
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
import warnings
from dataclasses import dataclass

__all__ = [
    "DEFAULT_UNKNOWN_MAX_BATCH_SIZE",
    "DEFAULT_UNKNOWN_MAX_TOKENS",
    "MODELS",
    "Endpoint",
    "FusionMode",
    "Modality",
    "ModelSpec",
    "closest_models",
    "describe_unknown",
    "get_model_spec",
    "list_models",
]

Endpoint = typing.Literal["text", "multimodal", "async_task"]
"""Which API a model is served on: the native text endpoint, the multimodal endpoint, or the
asynchronous file-task endpoint (``X-DashScope-Async``)."""

Modality = typing.Literal["text", "image", "video", "multi_images", "audio"]

FusionMode = typing.Literal["none", "optional", "only", "same_object"]
"""How a multimodal model fuses inputs into one vector.

* ``none``: one vector per content item, never fused.
* ``optional``: fused when the request sets ``enable_fusion``.
* ``only``: every request yields one fused vector.
* ``same_object``: fused when several modality keys share one content object.
"""

REGIONS: tuple[str, ...] = ("cn-beijing", "ap-southeast-1", "cn-hongkong")

# Conservative defaults for a model name the registry does not know (issue: 10 inputs, 2,048
# tokens, no sparse). Both can be raised per call with get_model_spec(name, **overrides).
DEFAULT_UNKNOWN_MAX_BATCH_SIZE = 10
DEFAULT_UNKNOWN_MAX_TOKENS = 2048


@dataclass(frozen=True)
class ModelSpec:
    """Everything the client needs to know about one model.

    Attributes:
        name: Model name as sent on the wire.
        endpoint: Which API serves it.
        modalities: Input kinds the model accepts.
        dimensions: Allowed output sizes; empty means "not known, not checked".
        default_dimension: Size returned when no ``dimension`` is sent (``None`` if unknown).
        max_batch_size: Inputs (texts, or multimodal content items) per request.
        max_tokens_per_request: Tokens of all inputs of one request together, where the
            service has such a limit (``None``: only the per-input limit applies).
        max_tokens_per_input: Tokens per text. The text endpoints reject longer input rather
            than truncating (an older page says multimodal-embedding-v1 truncates).
        supports_sparse: Accepts ``output_type`` ``sparse`` / ``dense&sparse``.
        supports_instruct: Applies ``instruct`` (text models: only with ``text_type=query``).
        supports_compatible_mode: Served on the OpenAI-compatible ``/embeddings`` endpoint.
        supports_batch_api: Accepted by the OpenAI-compatible Batch (file) API.
        fusion: How multimodal inputs are fused; see :data:`FusionMode`.
        max_image_bytes: Largest image accepted, in bytes.
        max_images_per_input: Most images in one ``multi_images`` item.
        max_video_bytes: Largest video accepted, in bytes.
        price_cny_per_1k: Real-time price, CNY per 1,000 tokens (mainland site).
        batch_price_cny_per_1k: Batch API price, CNY per 1,000 tokens.
        price_usd_per_1m: Real-time price, USD per 1,000,000 tokens (international site).
        image_price_cny_per_1k: Price of image/video tokens where it differs from text.
        regions: Regions whose hosts serve the model.
        known: ``False`` for a name the registry does not list (conservative defaults).
    """

    name: str
    endpoint: Endpoint = "text"
    modalities: frozenset[Modality] = frozenset({"text"})
    dimensions: tuple[int, ...] = ()
    default_dimension: int | None = None
    max_batch_size: int = DEFAULT_UNKNOWN_MAX_BATCH_SIZE
    max_tokens_per_input: int = DEFAULT_UNKNOWN_MAX_TOKENS
    max_tokens_per_request: int | None = None
    supports_sparse: bool = False
    supports_instruct: bool = False
    supports_compatible_mode: bool = False
    supports_batch_api: bool = False
    fusion: FusionMode = "none"
    max_image_bytes: int | None = None
    max_images_per_input: int | None = None
    max_video_bytes: int | None = None
    price_cny_per_1k: float | None = None
    batch_price_cny_per_1k: float | None = None
    price_usd_per_1m: float | None = None
    image_price_cny_per_1k: float | None = None
    regions: frozenset[str] = frozenset({"cn-beijing"})
    known: bool = True

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError(f"{self.name}: max_batch_size must be >= 1")
        if self.max_tokens_per_input < 1:
            raise ValueError(f"{self.name}: max_tokens_per_input must be >= 1")
        if self.dimensions and self.default_dimension not in self.dimensions:
            raise ValueError(f"{self.name}: default_dimension must be one of {self.dimensions}")

    @property
    def fixed_dimension(self) -> bool:
        """True when the model has exactly one output size (no ``dimension`` parameter)."""
        return len(self.dimensions) == 1

    def replace(self, **changes: typing.Any) -> ModelSpec:
        """Return a copy with some fields changed, e.g. ``spec.replace(max_batch_size=25)``."""
        return dataclasses.replace(self, **changes)


_MB = 1024 * 1024
_V4_DIMS = (2048, 1536, 1024, 768, 512, 256, 128, 64)
_TONGYI_DIMS = (1152, 1024, 512, 256, 128, 64)
_TEXT_ONLY: frozenset[Modality] = frozenset({"text"})
_VISION: frozenset[Modality] = frozenset({"text", "image", "video", "multi_images"})

_SPECS: tuple[ModelSpec, ...] = (
    # --- text, native + compatible endpoints ---
    # https://www.alibabacloud.com/help/en/model-studio/text-embedding-synchronous-api
    ModelSpec(
        name="text-embedding-v4",
        dimensions=_V4_DIMS,
        default_dimension=1024,
        max_batch_size=10,
        max_tokens_per_input=8192,
        supports_sparse=True,
        supports_instruct=True,
        supports_compatible_mode=True,
        supports_batch_api=True,
        price_cny_per_1k=0.0005,
        batch_price_cny_per_1k=0.00025,
        price_usd_per_1m=0.07,
        regions=frozenset(REGIONS),
    ),
    ModelSpec(
        name="text-embedding-v3",
        # Pages disagree on 256/128/64 for v3; only the set every page accepts.
        dimensions=(1024, 768, 512),
        default_dimension=1024,
        # An older page said 20; every current page and server message says 10.
        max_batch_size=10,
        max_tokens_per_input=8192,
        supports_sparse=True,
        supports_compatible_mode=True,
        supports_batch_api=True,
        price_cny_per_1k=0.0005,
        batch_price_cny_per_1k=0.00025,
        price_usd_per_1m=0.07,
        regions=frozenset({"cn-beijing", "ap-southeast-1"}),
    ),
    ModelSpec(
        name="text-embedding-v2",
        dimensions=(1536,),
        default_dimension=1536,
        max_batch_size=25,
        max_tokens_per_input=2048,
        supports_compatible_mode=True,
        supports_batch_api=True,
        price_cny_per_1k=0.0007,
        batch_price_cny_per_1k=0.00035,
    ),
    ModelSpec(
        name="text-embedding-v1",
        dimensions=(1536,),
        default_dimension=1536,
        max_batch_size=25,
        max_tokens_per_input=2048,
        supports_compatible_mode=True,
        supports_batch_api=True,
        price_cny_per_1k=0.0007,
        batch_price_cny_per_1k=0.00035,
    ),
    # Only the names are documented (the SDK's model list, the Batch API page): conservative
    # limits of an unknown model, dimensions unchecked, no sparse or instruct until a page says
    # otherwise. The Batch API lists them, and its lines are OpenAI-compatible /v1/embeddings
    # bodies, so the compatible endpoint is taken to serve them too (inferred, not stated).
    ModelSpec(
        name="qwen3.7-text-embedding", supports_compatible_mode=True, supports_batch_api=True
    ),
    ModelSpec(
        name="qwen3.7-text-embedding-flash", supports_compatible_mode=True, supports_batch_api=True
    ),
    # --- asynchronous file tasks: max_batch_size counts lines of one input file ---
    # https://help.aliyun.com/zh/model-studio/text-embedding-batch-api
    ModelSpec(
        name="text-embedding-async-v2",
        endpoint="async_task",
        dimensions=(1536,),
        default_dimension=1536,
        max_batch_size=100_000,
        max_tokens_per_input=2048,
        price_cny_per_1k=0.0007,
    ),
    ModelSpec(
        name="text-embedding-async-v1",
        endpoint="async_task",
        dimensions=(1536,),
        default_dimension=1536,
        max_batch_size=100_000,
        max_tokens_per_input=2048,
        price_cny_per_1k=0.0007,
    ),
    # --- multimodal. Where page versions disagree, the smaller limit is kept. ---
    # https://www.alibabacloud.com/help/en/model-studio/multimodal-embedding-api-reference
    ModelSpec(
        name="qwen3-vl-embedding",
        endpoint="multimodal",
        modalities=_VISION,
        dimensions=(2560, 2048, 1536, 1024, 768, 512, 256),
        default_dimension=2560,
        max_batch_size=20,  # all content elements of a request share this cap
        max_tokens_per_input=32_000,
        supports_instruct=True,
        fusion="optional",
        max_image_bytes=5 * _MB,  # one page says 10 MB
        max_video_bytes=50 * _MB,
        price_cny_per_1k=0.0007,
        image_price_cny_per_1k=0.0018,
        price_usd_per_1m=0.10,
    ),
    ModelSpec(
        name="qwen2.5-vl-embedding",
        endpoint="multimodal",
        modalities=frozenset({"text", "image", "video"}),
        dimensions=(2048, 1024, 768, 512),
        default_dimension=1024,
        max_batch_size=3,  # each modality at most once, fused into one vector
        max_tokens_per_input=32_000,
        fusion="only",
        max_image_bytes=5 * _MB,
        max_video_bytes=50 * _MB,
        price_cny_per_1k=0.0007,
        image_price_cny_per_1k=0.0018,
    ),
    ModelSpec(
        name="tongyi-embedding-vision-plus",
        endpoint="multimodal",
        modalities=_VISION,
        dimensions=_TONGYI_DIMS,
        default_dimension=1152,
        # No per-request cap is documented; 8 keeps requests small until one is.
        max_batch_size=8,
        max_tokens_per_input=1024,
        max_image_bytes=3 * _MB,  # S6 says 10 MB; S5 says 3 MB
        max_images_per_input=8,
        max_video_bytes=10 * _MB,
        price_cny_per_1k=0.0005,
        price_usd_per_1m=0.09,
        regions=frozenset({"cn-beijing", "ap-southeast-1"}),
    ),
    ModelSpec(
        name="tongyi-embedding-vision-flash",
        endpoint="multimodal",
        modalities=_VISION,
        dimensions=(768, 512, 256, 128, 64),
        default_dimension=768,
        max_batch_size=8,  # undocumented, as for -plus
        max_tokens_per_input=1024,
        max_image_bytes=3 * _MB,  # S6 says 5 MB
        max_images_per_input=8,
        max_video_bytes=10 * _MB,
        price_cny_per_1k=0.00015,
        price_usd_per_1m=0.09,  # text; image/video is $0.03 per 1M
        regions=frozenset({"cn-beijing", "ap-southeast-1"}),
    ),
    ModelSpec(
        name="tongyi-embedding-vision-plus-2026-03-06",
        endpoint="multimodal",
        modalities=_VISION,
        dimensions=_TONGYI_DIMS,
        default_dimension=1152,
        max_batch_size=8,  # undocumented
        max_tokens_per_input=1024,
        fusion="same_object",
        max_image_bytes=5 * _MB,  # recommended 5 MB, max 10 MB
        max_images_per_input=64,
        max_video_bytes=50 * _MB,
    ),
    ModelSpec(
        name="tongyi-embedding-vision-flash-2026-03-06",
        endpoint="multimodal",
        modalities=_VISION,
        # Only the -plus snapshot's dimensions are documented; the -flash set is assumed to
        # match tongyi-embedding-vision-flash.
        dimensions=(768, 512, 256, 128, 64),
        default_dimension=768,
        max_batch_size=8,  # undocumented
        max_tokens_per_input=1024,
        fusion="same_object",
        max_image_bytes=5 * _MB,
        max_images_per_input=64,
        max_video_bytes=50 * _MB,
    ),
    ModelSpec(
        name="multimodal-embedding-v1",
        endpoint="multimodal",
        modalities=frozenset({"text", "image", "video"}),
        dimensions=(1024,),
        default_dimension=1024,
        max_batch_size=1,  # "one combination per call"
        max_tokens_per_input=512,
        max_image_bytes=3 * _MB,
        max_images_per_input=1,  # one page version says 8
        max_video_bytes=10 * _MB,
        price_cny_per_1k=0.0007,
        image_price_cny_per_1k=0.0009,
    ),
    ModelSpec(
        name="multimodal-embedding-one-peace-v1",
        endpoint="multimodal",
        modalities=frozenset({"text", "image", "audio"}),
        dimensions=(1536,),  # per older docs, unconfirmed
        default_dimension=1536,
        max_batch_size=1,  # returns a single fused vector
        max_tokens_per_input=70,  # "text > 70 words" fails without auto_truncation
        fusion="only",
    ),
)

MODELS: typing.Mapping[str, ModelSpec] = {spec.name: spec for spec in _SPECS}
"""Every model the registry knows, by name."""


def get_model_spec(model: str | ModelSpec, **overrides: typing.Any) -> ModelSpec:
    """Look a model up, falling back to conservative limits for a name the registry lacks.

    Args:
        model: A model name, or a spec (returned as it is, with ``overrides`` applied).
        **overrides: Fields to change, e.g. ``max_batch_size=25`` for a model the registry
            does not know.

    Raises:
        TypeError: If ``model`` is neither a string nor a spec.
        ValueError: If the name is empty or an override is out of range.
    """
    if isinstance(model, ModelSpec):
        spec = model
    elif isinstance(model, str):
        if not model.strip():
            raise ValueError("model name must be a non-empty string")
        spec = MODELS.get(model) or _unknown(model)
    else:
        raise TypeError(f"model must be a str or ModelSpec, got {type(model).__name__}")
    return spec.replace(**overrides) if overrides else spec


_WARNED: set[str] = set()


def _unknown(name: str) -> ModelSpec:
    close = closest_models(name)
    if close and name not in _WARNED:
        _WARNED.add(name)
        warnings.warn(
            f"{describe_unknown(name)}",
            UserWarning,
            stacklevel=4,
        )
    return ModelSpec(name=name, known=False)


def closest_models(name: str) -> list[str]:
    """Registry names that look like ``name`` (a typo, another case), best first."""
    lowered = {spec.name.lower(): spec.name for spec in _SPECS}
    if name.lower() in lowered:
        return [lowered[name.lower()]]
    return [lowered[m] for m in difflib.get_close_matches(name.lower(), lowered, n=3, cutoff=0.8)]


def describe_unknown(name: str) -> str:
    """What to tell a user about a model name the registry does not know.

    Only the closest registry names, or when none is close the first model of each endpoint;
    ``list_models()`` and ``dashscope-embeddings models`` show them all.
    """
    close = closest_models(name) or difflib.get_close_matches(
        name, [spec.name for spec in _SPECS], n=3, cutoff=0.6
    )
    if close:
        guess = f"did you mean {' or '.join(repr(c) for c in close)}? "
    else:
        firsts = "; ".join(
            f"{endpoint}: {models[0].name}"
            for endpoint in ("text", "multimodal", "async_task")
            if (models := list_models(endpoint))
        )
        guess = (
            f"e.g. {firsts} (all of them: list_models() or `dashscope-embeddings models`). "
        )
    return (
        f"{name!r} is not a model this package knows; {guess}It is sent as given, with "
        f"conservative limits ({DEFAULT_UNKNOWN_MAX_BATCH_SIZE} inputs per request, "
        f"{DEFAULT_UNKNOWN_MAX_TOKENS:,} tokens per input)"
    )


def list_models(endpoint: Endpoint | None = None) -> list[ModelSpec]:
    """All registered models, optionally only those of one endpoint, in registry order."""
    return [spec for spec in _SPECS if endpoint is None or spec.endpoint == endpoint]
