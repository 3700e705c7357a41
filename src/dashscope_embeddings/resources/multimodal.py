"""The multimodal embedding endpoint: input checks, request planning, bodies and answer parsing.

``POST {native}/services/embeddings/multimodal-embedding/multimodal-embedding`` with
``{"model", "input": {"contents": [{"text" | "image" | "video" | "multi_images" | "audio": ...},
...]}, "parameters": {"dimension", "fps", "instruct", "enable_fusion"}}``; answers carry
``output.embeddings[].index`` (``multimodal-embedding-one-peace-v1``: one ``output.embedding``).
Reference: https://www.alibabacloud.com/help/en/model-studio/multimodal-embedding-api-reference

What the caller passes (see :mod:`dashscope_embeddings._inputs`) becomes *units*: one unit per
distinct input, each the content items of one vector. Independent inputs share requests up to
the model's items-per-request limit; a fused input of qwen3-vl-embedding (``enable_fusion``)
and every input of a model that always fuses (qwen2.5-vl-embedding, one-peace) is a request of
its own, since such a request yields one vector.

Everything here is pure apart from reading local image files (only regular files within the
model's size limit, checked before reading). Bad input fails before a request is sent, naming
the caller's index and the limit.
"""

from __future__ import annotations

import hashlib
import math
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from dashscope_embeddings._config import Endpoints
from dashscope_embeddings._constants import MULTIMODAL_EMBEDDING_PATH
from dashscope_embeddings._errors import InvalidInputError, ResponseValidationError
from dashscope_embeddings._fanout import Job, UnitOutput
from dashscope_embeddings._registry import ModelSpec
from dashscope_embeddings._tokens import TokenCounter
from dashscope_embeddings._transport import Answer, APIRequest, note_billed
from dashscope_embeddings._types import Usage
from dashscope_embeddings._usage import usage_for
from dashscope_embeddings.resources._common import (
    as_dict,
    check_dimensions,
    dumps,
    merge_body,
    parse_vector,
    place_by_index,
    readable_tokens,
)
from dashscope_embeddings.resources._multimodal_units import (
    DEFAULT_MAX_IMAGE_BYTES,
    Reader,
    Unit,
    image_formats,
    models_with,
    video_formats,
)

__all__ = [
    "DEFAULT_MAX_IMAGE_BYTES",
    "MultimodalCall",
    "check_multimodal_options",
    "image_formats",
    "plan_multimodal_call",
    "video_formats",
]


# --- options -----------------------------------------------------------------------------


def check_multimodal_options(
    spec: ModelSpec, *, dimension: int | None, fps: float | None, instruct: str | None
) -> int | None:
    """Refuse options the model cannot honour, before anything is sent.

    Returns:
        The ``dimension`` to send: ``None`` when not given, or when the model has a single
        output size (it takes no ``dimension`` parameter; asking for that size is a no-op).

    Raises:
        InvalidInputError: With ``index=None``, naming the option and the models that have it.
    """
    if spec.endpoint != "multimodal":
        raise InvalidInputError(
            f"{spec.name} is a {spec.endpoint.replace('_', ' ')} model, not a multimodal one; "
            f"multimodal models: {models_with(lambda _: True)} (or pass a ModelSpec with "
            "endpoint='multimodal' for a model the registry lacks)"
        )
    wire_dimension: int | None = None
    if dimension is not None:
        if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension < 1:
            raise InvalidInputError(f"dimension must be a positive int, got {dimension!r}")
        if spec.dimensions and dimension not in spec.dimensions:
            allowed = ", ".join(str(d) for d in spec.dimensions)
            raise InvalidInputError(
                f"dimension {dimension} is not offered by {spec.name}; allowed: {allowed}"
            )
        wire_dimension = None if spec.fixed_dimension else dimension
    if fps is not None:
        if "video" not in spec.modalities:
            raise InvalidInputError(
                f"{spec.name} takes no video, so no fps; models with video: "
                f"{models_with(lambda s: 'video' in s.modalities)}"
            )
        if (
            isinstance(fps, bool)
            or not isinstance(fps, (int, float))
            or not math.isfinite(fps)
            or not 0 <= fps <= 1
        ):
            raise InvalidInputError(f"fps must be a number in [0, 1] (frames sampled), got {fps!r}")
    if instruct is not None:
        if not spec.supports_instruct:
            raise InvalidInputError(
                f"{spec.name} ignores instruct; leave it unset, or use a model that applies it: "
                f"{models_with(lambda s: s.supports_instruct)}"
            )
        if not isinstance(instruct, str) or not instruct.strip():
            raise InvalidInputError("instruct must be a non-empty string")
    return wire_dimension


# --- the call ----------------------------------------------------------------------------


@dataclass
class MultimodalCall:
    """One ``embed_multimodal`` call, planned: what is sent (units) and how it maps back.

    ``refs[i]`` is the unit (weight 1) that carries the caller's input ``i``; identical inputs
    share a unit and are sent once.
    """

    spec: ModelSpec
    endpoints: Endpoints
    dimension: int | None
    fps: float | None
    instruct: str | None
    extra_body: Mapping[str, typing.Any] | None
    units: list[Unit]
    refs: list[list[tuple[int, float]]]
    jobs: list[Job] = field(default_factory=list)

    @property
    def unit_count(self) -> int:
        """How many distinct inputs are sent."""
        return len(self.units)

    @property
    def expected_dimension(self) -> int | None:
        """Length every vector must have, where known."""
        return self.dimension or self.spec.default_dimension

    def build(self, units: Sequence[int]) -> Job:
        """The request carrying exactly ``units``."""
        chosen = [self.units[u] for u in units]
        if len(chosen) > 1 and any(u.solo for u in chosen):  # pragma: no cover - a bug
            raise ValueError("a request of several units cannot carry one that must be alone")
        contents = [item for unit in chosen for item in unit.contents]
        parameters: dict[str, typing.Any] = {}
        if self.dimension is not None:
            parameters["dimension"] = self.dimension
        if self.fps is not None:
            parameters["fps"] = self.fps
        if self.instruct is not None:
            parameters["instruct"] = self.instruct
        if any(u.fuse for u in chosen):
            parameters["enable_fusion"] = True
        body: dict[str, typing.Any] = {"model": self.spec.name, "input": {"contents": contents}}
        if parameters:
            body["parameters"] = parameters
        label = f"{self.spec.name} {len(contents)} item{'s' if len(contents) != 1 else ''}"
        url = self.endpoints.native_base + MULTIMODAL_EMBEDDING_PATH
        request = APIRequest(
            "POST", url, content=dumps(merge_body(body, self.extra_body)), label=label
        )
        return Job(request, tuple(units))

    def parser(self, job: Job) -> Callable[[Answer], UnitOutput]:
        """The parser of one request's answer: one vector per unit, by ``index``."""
        units = job.units
        solo = len(units) == 1 and self.units[units[0]].solo

        def parse(answer: Answer) -> UnitOutput:
            try:
                return read(answer)
            except ResponseValidationError as error:
                # Billed all the same: the running usage counts it before the retry.
                payload = answer.payload
                tokens = readable_tokens(payload, ("total_tokens", "input_tokens"))
                if tokens is not None and isinstance(payload, dict):
                    media = min(_image_tokens(payload.get("usage")), tokens)
                    billed = UnitOutput(units, None, None, tokens, answer.request_id, media)
                    note_billed(error, billed)
                raise

        def read(answer: Answer) -> UnitOutput:
            body = as_dict(answer.payload, "the body", answer.request_id)
            request_id = body.get("request_id") or answer.request_id
            output = as_dict(body.get("output"), "output", request_id)
            raw = output.get("embeddings")
            if solo and raw is None and "embedding" in output:
                # one-peace answers with one fused vector at output.embedding, not a list.
                dense = [parse_vector(output["embedding"], 0, request_id)]
            else:
                items = place_by_index(raw, len(units), "index", request_id)
                dense = [
                    parse_vector(item.get("embedding"), i, request_id)
                    for i, item in enumerate(items)
                ]
            check_dimensions(dense, self.expected_dimension, request_id)
            tokens = _billed_tokens(body.get("usage"), request_id)
            media = _image_tokens(body.get("usage"))
            return UnitOutput(units, dense, None, tokens, request_id, min(media, tokens))

        return parse

    def usage(self, output: UnitOutput) -> Usage:
        """What one request billed.

        Image and video tokens at the model's image rate, where the registry has one and the
        answer names them; the rest at the text rate.
        """
        usage = usage_for(self.spec, output.total_tokens, 1, self.endpoints.region)
        rate = self.spec.image_price_cny_per_1k
        if not output.image_tokens or rate is None or usage.currency != "CNY":
            return usage
        text_tokens = output.total_tokens - output.image_tokens
        text_cost = usage_for(self.spec, text_tokens, 1, self.endpoints.region).cost or 0.0
        cost = text_cost + output.image_tokens * rate / 1000
        return Usage(output.total_tokens, 1, cost, "CNY")


def _image_tokens(usage: object) -> int:
    """Image and video tokens, where the answer names them; else 0.

    ``image_tokens`` or ``input_tokens_details.image_tokens``: field names differ per model.
    """
    if not isinstance(usage, dict):
        return 0
    details = usage.get("input_tokens_details")
    for value in (
        usage.get("image_tokens"),
        details.get("image_tokens") if isinstance(details, dict) else None,
    ):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 0


def _billed_tokens(usage: object, request_id: str | None) -> int:
    """``total_tokens`` (tongyi-embedding-vision-*) or ``input_tokens`` (the others), else 0."""
    if usage is None:
        return 0
    fields = as_dict(usage, "usage", request_id)
    for name in ("total_tokens", "input_tokens"):
        value = fields.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return 0


def _pack(units: Sequence[Unit], spec: ModelSpec) -> list[list[int]]:
    """Consecutive units grouped into requests within the model's per-request limits."""
    cap_elements = spec.max_batch_size if spec.max_images_per_input is None else None
    requests: list[list[int]] = []
    current: list[int] = []
    items = elements = 0
    for position, unit in enumerate(units):
        if unit.solo:
            requests.append([position])
            continue
        fits = items + 1 <= spec.max_batch_size and (
            cap_elements is None or elements + unit.elements <= cap_elements
        )
        if current and not fits:
            requests.append(current)
            current, items, elements = [], 0, 0
        current.append(position)
        items += 1
        elements += unit.elements
    if current:
        requests.append(current)
    return requests


def plan_multimodal_call(
    inputs: Sequence[object],
    *,
    spec: ModelSpec,
    endpoints: Endpoints,
    dimension: int | None,
    fps: float | None,
    instruct: str | None,
    token_counter: TokenCounter | None,
    extra_body: Mapping[str, typing.Any] | None = None,
) -> MultimodalCall:
    """Check every input against the model's limits, read local images, plan the requests.

    Raises:
        InvalidInputError: Before anything is sent, for a bad input (its index and the limit)
            or option.
    """
    if isinstance(inputs, (str, bytes)):
        raise InvalidInputError(
            f"inputs must be a list, got a single {type(inputs).__name__}; wrap it in a list"
        )
    wire_dimension = check_multimodal_options(spec, dimension=dimension, fps=fps, instruct=instruct)
    reader = Reader(spec, token_counter)
    units: list[Unit] = []
    seen: dict[bytes, int] = {}
    refs: list[list[tuple[int, float]]] = []
    for index, value in enumerate(inputs):
        unit = reader.unit(value, index)
        key = hashlib.sha256(dumps({"c": list(unit.contents), "f": unit.fuse})).digest()
        position = seen.get(key)
        if position is None:
            position = seen[key] = len(units)
            units.append(unit)
        refs.append([(position, 1.0)])
    call = MultimodalCall(
        spec=spec,
        endpoints=endpoints,
        dimension=wire_dimension,
        fps=fps,
        instruct=instruct,
        extra_body=extra_body,
        units=units,
        refs=refs,
    )
    call.jobs = [call.build(group) for group in _pack(units, spec)]
    return call
