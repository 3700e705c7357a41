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
from dashscope_embeddings._errors import InvalidInputError
from dashscope_embeddings._fanout import Job, UnitOutput
from dashscope_embeddings._inputs import (
    Audio,
    Fused,
    Image,
    MultiImages,
    Text,
    Video,
    WireImage,
    check_media_url,
    is_image_value,
    read_image,
)
from dashscope_embeddings._registry import ModelSpec, list_models
from dashscope_embeddings._tokens import TokenCounter, estimate_tokens
from dashscope_embeddings._transport import Answer, APIRequest
from dashscope_embeddings._types import Usage
from dashscope_embeddings._usage import usage_for
from dashscope_embeddings.resources._common import (
    as_dict,
    check_dimensions,
    dumps,
    merge_body,
    parse_vector,
    place_by_index,
)

__all__ = [
    "DEFAULT_MAX_IMAGE_BYTES",
    "MultimodalCall",
    "check_multimodal_options",
    "image_formats",
    "plan_multimodal_call",
    "video_formats",
]

# --- what each model accepts -------------------------------------------------------------
# Formats (API reference, "accepted formats"): qwen3-vl-embedding / qwen2.5-vl-embedding take
# JPEG, PNG, WEBP, BMP, TIFF, ICO, DIB, ICNS, SGI and video in MP4, AVI, MOV; every other model
# JPG, PNG, BMP and MP4, MPEG, MPG, WEBM, AVI, FLV, MKV, MOV. (The registry has no format field
# yet; the two sets are kept here, by model name.)
_WIDE_FORMAT_MODELS = frozenset({"qwen3-vl-embedding", "qwen2.5-vl-embedding"})
_WIDE_IMAGE_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "TIFF", "ICO", "DIB", "ICNS", "SGI"})
_NARROW_IMAGE_FORMATS = frozenset({"JPEG", "PNG", "BMP"})
_WIDE_VIDEO_FORMATS = frozenset({"MP4", "AVI", "MOV"})
_NARROW_VIDEO_FORMATS = frozenset({"MP4", "MPEG", "MPG", "WEBM", "AVI", "FLV", "MKV", "MOV"})
_IMAGE_EXTENSIONS = {
    "jpg": "JPEG", "jpeg": "JPEG", "jpe": "JPEG", "png": "PNG", "bmp": "BMP", "webp": "WEBP",
    "tif": "TIFF", "tiff": "TIFF", "ico": "ICO", "dib": "DIB", "icns": "ICNS", "sgi": "SGI",
    "rgb": "SGI", "gif": "GIF", "heic": "HEIC", "heif": "HEIC", "avif": "AVIF", "svg": "SVG",
}  # fmt: skip
_VIDEO_EXTENSIONS = {
    "mp4": "MP4", "mpeg": "MPEG", "mpg": "MPG", "webm": "WEBM", "avi": "AVI", "flv": "FLV",
    "mkv": "MKV", "mov": "MOV", "wmv": "WMV", "m4v": "M4V", "3gp": "3GP",
}  # fmt: skip
# The -2026-03-06 snapshots fuse these key sets when they share one content object.
_SAME_OBJECT_COMBOS = (
    frozenset({"text", "image"}),
    frozenset({"text", "video"}),
    frozenset({"text", "multi_images"}),
    frozenset({"text", "image", "video"}),
)
DEFAULT_MAX_IMAGE_BYTES = 10 * 1024 * 1024
"""Image size bound for a model whose limit the registry lacks: the largest any page states."""


def image_formats(spec: ModelSpec) -> frozenset[str] | None:
    """Image formats ``spec`` accepts (``PNG``, ``JPEG``...), ``None`` when unknown (unchecked)."""
    if not spec.known or "image" not in spec.modalities:
        return None
    return _WIDE_IMAGE_FORMATS if spec.name in _WIDE_FORMAT_MODELS else _NARROW_IMAGE_FORMATS


def video_formats(spec: ModelSpec) -> frozenset[str] | None:
    """Video formats ``spec`` accepts, ``None`` when unknown (unchecked)."""
    if not spec.known or "video" not in spec.modalities:
        return None
    return _WIDE_VIDEO_FORMATS if spec.name in _WIDE_FORMAT_MODELS else _NARROW_VIDEO_FORMATS


def _models_with(feature: Callable[[ModelSpec], bool]) -> str:
    return ", ".join(s.name for s in list_models("multimodal") if feature(s)) or "none"


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
            f"multimodal models: {_models_with(lambda _: True)} (or pass a ModelSpec with "
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
                f"{_models_with(lambda s: 'video' in s.modalities)}"
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
                f"{_models_with(lambda s: s.supports_instruct)}"
            )
        if not isinstance(instruct, str) or not instruct.strip():
            raise InvalidInputError("instruct must be a non-empty string")
    return wire_dimension


# --- units -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Unit:
    """The content items of one vector, as sent."""

    contents: tuple[dict[str, typing.Any], ...]
    elements: int  # content elements, each image of a multi_images counted
    solo: bool  # one request of its own, answered with one vector
    fuse: bool  # sent with enable_fusion


def _extension(path: str) -> str:
    last = path.rsplit("/", 1)[-1]
    return last.rsplit(".", 1)[-1].lower() if "." in last else ""


def _check_format(
    found: str | None, allowed: frozenset[str] | None, spec: ModelSpec, where: str, index: int
) -> None:
    if found is not None and allowed is not None and found not in allowed:
        raise InvalidInputError(
            f"{where}: {found} is not a format {spec.name} accepts; it takes "
            f"{', '.join(sorted(allowed))}",
            index=index,
        )


class _Reader:
    """Turns one caller input into a unit, checking it against the model's limits."""

    def __init__(self, spec: ModelSpec, token_counter: TokenCounter | None) -> None:
        self.spec = spec
        self.token_counter = token_counter
        self.max_image_bytes = spec.max_image_bytes or DEFAULT_MAX_IMAGE_BYTES
        # qwen3-vl-embedding lists no per-input image cap: its images share the request cap.
        self.max_images = spec.max_images_per_input or spec.max_batch_size

    def takes(self, key: str, where: str, index: int) -> None:
        if key not in self.spec.modalities:
            raise InvalidInputError(
                f"{where}: {self.spec.name} takes no {key.replace('_', '-')} input; it takes "
                f"{', '.join(sorted(self.spec.modalities))}",
                index=index,
            )

    def text(self, value: object, where: str, index: int) -> str:
        if not isinstance(value, str):
            raise InvalidInputError(
                f"{where}: the text is a {type(value).__name__}, not a str", index=index
            )
        if not value or value.isspace():
            raise InvalidInputError(
                f"{where}: the text is {'empty' if not value else 'only whitespace'}",
                index=index,
            )
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidInputError(
                f"{where}: the text cannot be sent as UTF-8 ({exc.reason} at character "
                f"{exc.start})",
                index=index,
            ) from None
        limit = self.spec.max_tokens_per_input
        # The estimate never exceeds the character count: only longer texts need counting.
        if self.token_counter is not None or len(value) > limit:
            tokens = (self.token_counter or estimate_tokens)(value)
            if tokens > limit:
                how = "by the given token_counter" if self.token_counter else "estimated"
                raise InvalidInputError(
                    f"{where}: the text has about {tokens} tokens ({how}), over "
                    f"{self.spec.name}'s limit of {limit} per text",
                    index=index,
                )
        return value

    def image(self, value: object, where: str, index: int) -> str:
        wire: WireImage = read_image(
            value, where, index, max_bytes=self.max_image_bytes, model=self.spec.name
        )
        found = wire.format
        if wire.url_path is not None:
            ext = _extension(wire.url_path)
            found = _IMAGE_EXTENSIONS.get(ext) or _VIDEO_EXTENSIONS.get(ext)
        _check_format(found, image_formats(self.spec), self.spec, where, index)
        return wire.value

    def images(self, value: object, where: str, index: int) -> list[str]:
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise InvalidInputError(
                f"{where}: multi_images must be a list of images, got {type(value).__name__}",
                index=index,
            )
        if not value:
            raise InvalidInputError(f"{where}: multi_images is empty", index=index)
        if len(value) > self.max_images:
            raise InvalidInputError(
                f"{where}: {len(value)} images, over {self.spec.name}'s limit of "
                f"{self.max_images} images per input",
                index=index,
            )
        return [self.image(v, f"{where}, image {j}", index) for j, v in enumerate(value)]

    def url(self, value: object, kind: str, where: str, index: int) -> str:
        wire = check_media_url(value, where, index, kind)
        if kind == "video":
            ext = _extension(wire.url_path or "")
            found = _VIDEO_EXTENSIONS.get(ext) or _IMAGE_EXTENSIONS.get(ext)
            _check_format(found, video_formats(self.spec), self.spec, where, index)
        return wire.value

    def part(self, key: str, value: object, where: str, index: int) -> tuple[object, int]:
        """The wire value of one modality key, and how many content elements it counts."""
        self.takes(key, where, index)
        if key == "text":
            return self.text(value, where, index), 1
        if key == "image":
            return self.image(value, where, index), 1
        if key == "multi_images":
            images = self.images(value, where, index)
            return images, len(images)
        return self.url(value, key, where, index), 1

    def unit(self, value: object, index: int) -> _Unit:
        where = f"input {index}"
        spec = self.spec
        parts = _parts(value, index)
        if not isinstance(value, Fused):
            key, raw = parts[0]
            wire, elements = self.part(key, raw, where, index)
            self.check_elements(elements, where, index)
            return _Unit(({key: wire},), elements, solo=spec.fusion == "only", fuse=False)
        if spec.fusion == "none":
            raise InvalidInputError(
                f"{where}: {spec.name} cannot fuse inputs into one vector (it embeds each "
                f"content item on its own); models that fuse: "
                f"{_models_with(lambda s: s.fusion != 'none')}",
                index=index,
            )
        wired = [(key, *self.part(key, raw, where, index)) for key, raw in parts]
        elements = sum(count for _, _, count in wired)
        if spec.fusion == "same_object":
            keys = frozenset(key for key, _, _ in wired)
            if keys not in _SAME_OBJECT_COMBOS:
                combos = ", ".join("+".join(sorted(c, reverse=True)) for c in _SAME_OBJECT_COMBOS)
                raise InvalidInputError(
                    f"{where}: {spec.name} cannot fuse {'+'.join(k for k, _, _ in wired)}; it "
                    f"fuses {combos}",
                    index=index,
                )
            content = {key: wire for key, wire, _ in wired}
            return _Unit((content,), elements, solo=False, fuse=False)
        if len(wired) > spec.max_batch_size:
            raise InvalidInputError(
                f"{where}: a fused input of {len(wired)} parts, over {spec.name}'s limit of "
                f"{spec.max_batch_size} content items per request",
                index=index,
            )
        self.check_elements(elements, where, index)
        contents = tuple({key: wire} for key, wire, _ in wired)
        return _Unit(contents, elements, solo=True, fuse=spec.fusion == "optional")

    def check_elements(self, elements: int, where: str, index: int) -> None:
        if self.spec.max_images_per_input is None and elements > self.spec.max_batch_size:
            raise InvalidInputError(
                f"{where}: {elements} content elements (each image counts), over "
                f"{self.spec.name}'s limit of {self.spec.max_batch_size} per request",
                index=index,
            )


def _parts(value: object, index: int) -> list[tuple[str, object]]:
    """The modality parts of one caller input (the bare-string rule: a str is text)."""
    if isinstance(value, str):
        return [("text", value)]
    if isinstance(value, Text):
        return [("text", value.text)]
    if isinstance(value, Image):
        return [("image", value.source)]
    if isinstance(value, Video):
        return [("video", value.url)]
    if isinstance(value, Audio):
        return [("audio", value.url)]
    if isinstance(value, MultiImages):
        return [("multi_images", value.images)]
    if isinstance(value, Fused):
        return value.parts()
    if is_image_value(value):
        return [("image", value)]
    raise InvalidInputError(
        f"input {index} is a {type(value).__name__}, not a multimodal input; pass a str "
        "(text), Text, Image, Video, MultiImages, Audio or Fused",
        index=index,
    )


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
    units: list[_Unit]
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
            return UnitOutput(units, dense, None, tokens, request_id)

        return parse

    def usage(self, output: UnitOutput) -> Usage:
        """What one request billed. Every token is priced at the model's text rate."""
        return usage_for(self.spec, output.total_tokens, 1, self.endpoints.region)


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


def _pack(units: Sequence[_Unit], spec: ModelSpec) -> list[list[int]]:
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
    reader = _Reader(spec, token_counter)
    units: list[_Unit] = []
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
