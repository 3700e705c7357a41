"""Multimodal inputs to units: each model's formats and limits, checked before sending.

A *unit* is the content items of one vector as sent: ``{"text": ...}``, ``{"image": ...}``,
several items fused by ``enable_fusion`` (qwen3-vl-embedding), or one content object with several
keys (the ``-2026-03-06`` snapshots). Used by :mod:`dashscope_embeddings.resources.multimodal`.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dashscope_embeddings._errors import InvalidInputError
from dashscope_embeddings._images import WireImage, check_media_url, is_image_value, read_image
from dashscope_embeddings._inputs import Audio, Fused, Image, MultiImages, Text, Video
from dashscope_embeddings._registry import ModelSpec, list_models
from dashscope_embeddings._tokens import TokenCounter, estimate_tokens

__all__ = [
    "DEFAULT_MAX_IMAGE_BYTES",
    "Reader",
    "Unit",
    "image_formats",
    "models_with",
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


def models_with(feature: Callable[[ModelSpec], bool]) -> str:
    """The registered multimodal models with ``feature``, comma-separated."""
    return ", ".join(s.name for s in list_models("multimodal") if feature(s)) or "none"


# --- units -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
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


class Reader:
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

    def unit(self, value: object, index: int) -> Unit:
        where = f"input {index}"
        spec = self.spec
        parts = _parts(value, index)
        if not isinstance(value, Fused):
            key, raw = parts[0]
            wire, elements = self.part(key, raw, where, index)
            self.check_elements(elements, where, index)
            return Unit(({key: wire},), elements, solo=spec.fusion == "only", fuse=False)
        if spec.fusion == "none":
            raise InvalidInputError(
                f"{where}: {spec.name} cannot fuse inputs into one vector (it embeds each "
                f"content item on its own); models that fuse: "
                f"{models_with(lambda s: s.fusion != 'none')}",
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
            return Unit((content,), elements, solo=False, fuse=False)
        if len(wired) > spec.max_batch_size:
            raise InvalidInputError(
                f"{where}: a fused input of {len(wired)} parts, over {spec.name}'s limit of "
                f"{spec.max_batch_size} content items per request",
                index=index,
            )
        self.check_elements(elements, where, index)
        contents = tuple({key: wire} for key, wire, _ in wired)
        return Unit(contents, elements, solo=True, fuse=spec.fusion == "optional")

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
