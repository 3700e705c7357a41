"""Media the multimodal models take ([ref 3.1]): formats, URL extensions, image inspection.

The format of image bytes is sniffed by :mod:`dashscope_embeddings._imageformat` (the module
the client uses too); :func:`inspect_image` then reads the headers as a decoder would, to tell
a truncated or corrupt file from a whole one, and to find its size and embedded texts (PNG
``tEXt`` chunks, JPEG ``COM`` segments).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from dashscope_embeddings._imageformat import bitmap_dimensions, claimed_format, sniff
from dashscope_embeddings._registry import ModelSpec

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "BadImage",
    "ImageInfo",
    "image_formats",
    "inspect_image",
    "video_formats",
]

# [ref 3.1] accepted formats. qwen*-vl: JPEG PNG WEBP BMP TIFF ICO DIB ICNS SGI; every other model
# (tongyi-embedding-vision-*, multimodal-embedding-v1): JPG PNG BMP. The legacy one-peace model
# has no documented list; it gets the stricter "other models" set.
QWEN_VL_IMAGE_FORMATS = frozenset(
    {"JPEG", "PNG", "WEBP", "BMP", "TIFF", "ICO", "DIB", "ICNS", "SGI"}
)
OTHER_IMAGE_FORMATS = frozenset({"JPEG", "PNG", "BMP"})
QWEN_VL_VIDEO_FORMATS = frozenset({"MP4", "AVI", "MOV"})
OTHER_VIDEO_FORMATS = frozenset({"MP4", "MPEG", "MPG", "WEBM", "AVI", "FLV", "MKV", "MOV"})
IMAGE_EXTENSIONS = {
    "jpg": "JPEG",
    "jpeg": "JPEG",
    "jpe": "JPEG",
    "png": "PNG",
    "bmp": "BMP",
    "webp": "WEBP",
    "tif": "TIFF",
    "tiff": "TIFF",
    "ico": "ICO",
    "dib": "DIB",
    "icns": "ICNS",
    "sgi": "SGI",
    "rgb": "SGI",
    "gif": "GIF",
    "heic": "HEIC",
    "heif": "HEIC",
    "avif": "AVIF",
    "svg": "SVG",
}
VIDEO_EXTENSIONS = {
    "mp4": "MP4",
    "mpeg": "MPEG",
    "mpg": "MPG",
    "webm": "WEBM",
    "avi": "AVI",
    "flv": "FLV",
    "mkv": "MKV",
    "mov": "MOV",
    "wmv": "WMV",
    "m4v": "M4V",
    "3gp": "3GP",
}


def _is_qwen_vl(spec: ModelSpec) -> bool:
    return spec.name.startswith("qwen")


def image_formats(spec: ModelSpec) -> frozenset[str]:
    """The image formats ``spec`` accepts."""
    return QWEN_VL_IMAGE_FORMATS if _is_qwen_vl(spec) else OTHER_IMAGE_FORMATS


def video_formats(spec: ModelSpec) -> frozenset[str]:
    """The video formats ``spec`` accepts."""
    return QWEN_VL_VIDEO_FORMATS if _is_qwen_vl(spec) else OTHER_VIDEO_FORMATS


class BadImage(Exception):
    """Image bytes a decoder would refuse; the message completes "image data is invalid, "."""


def inspect_image(data: bytes, formats: frozenset[str]) -> tuple[str, ImageInfo]:
    """The format and headers of image bytes, checked as a decoder would read them.

    Args:
        data: The decoded bytes of a data URI.
        formats: The formats the model accepts.

    Returns:
        The sniffed format and what its headers say.

    Raises:
        BadImage: The bytes are no image, or a truncated or corrupt one.
        LookupError: The format (its name is the message) is not one of ``formats``.
    """
    found = sniff(data)
    if found is None:
        claimed = claimed_format(data)
        if claimed is None:
            raise BadImage("the bytes are not an image.")
        raise BadImage(f"the {claimed} file is truncated or corrupt.")
    if found not in formats:
        raise LookupError(found)
    try:
        return found, _INSPECTORS[found](data)
    except (ValueError, struct.error, IndexError):
        raise BadImage(f"the {found} file is truncated or corrupt.") from None


@dataclass(frozen=True)
class ImageInfo:
    """What decoding an image's headers tells: its size (when known) and embedded texts."""

    width: int | None
    height: int | None
    texts: tuple[str, ...] = ()


def _png(data: bytes) -> ImageInfo:
    view = memoryview(data)
    pos = 8
    width = height = 0
    texts: list[str] = []
    seen_idat = False
    first = True
    while True:
        if pos + 12 > len(data):
            raise ValueError("truncated PNG: no IEND chunk")
        length, kind = struct.unpack(">I4s", view[pos : pos + 8])
        end = pos + 12 + length
        if end > len(data):
            raise ValueError("truncated PNG chunk")
        chunk = view[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", view[end - 4 : end])
        if zlib.crc32(chunk, zlib.crc32(kind)) != crc:
            raise ValueError("PNG chunk CRC mismatch")
        if first:
            if kind != b"IHDR" or length != 13:
                raise ValueError("PNG without IHDR")
            width, height = struct.unpack(">II", chunk[:8])
            first = False
        elif kind == b"IDAT":
            seen_idat = True
        elif kind == b"tEXt":
            _keyword, _, text = bytes(chunk).partition(b"\x00")
            texts.append(text.decode("latin-1"))
        elif kind == b"IEND":
            break
        pos = end
    if not seen_idat or not width or not height:
        raise ValueError("PNG without pixels")
    return ImageInfo(width, height, tuple(texts))


_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg(data: bytes) -> ImageInfo:
    pos = 2
    size: tuple[int, int] | None = None
    texts: list[str] = []
    while True:
        if pos + 4 > len(data) or data[pos] != 0xFF:
            raise ValueError("truncated or corrupt JPEG segment")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker == 0xD9:
            raise ValueError("JPEG ends before its scan")
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if length < 2 or pos + 2 + length > len(data):
            raise ValueError("truncated JPEG segment")
        segment = data[pos + 4 : pos + 2 + length]
        if marker in _SOF_MARKERS:
            height, width = struct.unpack(">HH", segment[1:5])
            size = (width, height)
        elif marker == 0xFE:
            texts.append(segment.decode("utf-8", "replace"))
        elif marker == 0xDA:
            pos += 2 + length
            break
        pos += 2 + length
    if size is None or not size[0] or not size[1]:
        raise ValueError("JPEG without a frame header")
    if data.find(b"\xff\xd9", pos) < 0:
        raise ValueError("truncated JPEG: no end-of-image marker")
    return ImageInfo(size[0], size[1], tuple(texts))


def _bmp(data: bytes) -> ImageInfo:
    size = bitmap_dimensions(data, 14)
    if size is None:  # pragma: no cover - sniff() named it BMP only with a valid header
        raise ValueError("bad bitmap header")
    return ImageInfo(*size)


def _dib(data: bytes) -> ImageInfo:
    size = bitmap_dimensions(data)
    if size is None:  # pragma: no cover - sniff() named it DIB only with a valid header
        raise ValueError("bad bitmap header")
    return ImageInfo(*size)


def _webp(data: bytes) -> ImageInfo:
    (riff_size,) = struct.unpack("<I", data[4:8])
    if len(data) < 20 or riff_size + 8 > len(data) or data[12:15] != b"VP8":
        raise ValueError("truncated WEBP")
    return ImageInfo(None, None)


def _tiff(data: bytes) -> ImageInfo:
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", data[4:8])
    if not 8 <= ifd < len(data):
        raise ValueError("truncated TIFF")
    return ImageInfo(None, None)


def _ico(data: bytes) -> ImageInfo:
    (count,) = struct.unpack("<H", data[4:6])
    if count < 1 or len(data) < 6 + 16 * count:
        raise ValueError("truncated ICO")
    return ImageInfo(data[6] or 256, data[7] or 256)


def _icns(data: bytes) -> ImageInfo:
    (size,) = struct.unpack(">I", data[4:8])
    if size < 8 or size > len(data):
        raise ValueError("truncated ICNS")
    return ImageInfo(None, None)


def _sgi(data: bytes) -> ImageInfo:
    if len(data) < 512:
        raise ValueError("truncated SGI")
    width, height = struct.unpack(">HH", data[6:10])
    return ImageInfo(width or None, height or None)


_INSPECTORS = {
    "PNG": _png,
    "JPEG": _jpeg,
    "BMP": _bmp,
    "DIB": _dib,
    "WEBP": _webp,
    "TIFF": _tiff,
    "ICO": _ico,
    "ICNS": _icns,
    "SGI": _sgi,
}


