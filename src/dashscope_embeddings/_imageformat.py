"""Image formats named from their leading bytes: pure functions, no I/O, stdlib only.

One source for the client (which refuses what is not an image before sending it) and the
emulator (which answers what the service answers for a bad image). The magic bytes name most
formats; a bitmap (BMP, or a DIB without its file header) has no real magic number, so its
header must be consistent: a known DIB header size, the file size field equal to the data's
length, a pixel offset inside the file, one plane, a known bit depth and a sane width and
height. So a text file that happens to start with ``BM`` is not an image.
"""

from __future__ import annotations

import struct
from types import MappingProxyType

__all__ = [
    "DIB_HEADER_SIZES",
    "MIME_TYPES",
    "bitmap_dimensions",
    "claimed_format",
    "sniff",
]

MIME_TYPES = MappingProxyType(
    {
        "PNG": "image/png",
        "JPEG": "image/jpeg",
        "BMP": "image/bmp",
        "DIB": "image/bmp",
        "GIF": "image/gif",
        "WEBP": "image/webp",
        "TIFF": "image/tiff",
        "ICO": "image/x-icon",
        "ICNS": "image/icns",
        "SGI": "image/sgi",
        "HEIC": "image/heic",
        "AVIF": "image/avif",
    }
)
"""The MIME type of every format :func:`sniff` names."""

DIB_HEADER_SIZES = frozenset({12, 40, 52, 56, 64, 108, 124})
"""Sizes of the bitmap (DIB) headers decoders know: core, info, v2, v3, OS/2 v2, v4, v5."""

_BITMAP_FILE_HEADER = 14
_CORE_BIT_DEPTHS = frozenset({1, 4, 8, 24})
_BIT_DEPTHS = frozenset({1, 2, 4, 8, 16, 24, 32})
_MAX_BITMAP_SIDE = 65_535


def bitmap_dimensions(data: bytes, offset: int = 0) -> tuple[int, int] | None:
    """Width and height of the DIB header at ``offset``, or ``None`` when it is not one.

    The header must have a known size and fit in ``data``, one colour plane, a known bit
    depth, and a width and height in [1, 65535] (a negative height, a top-down bitmap,
    counts by its magnitude).

    >>> bitmap_dimensions(struct.pack("<IHHHH", 12, 3, 2, 1, 24))
    (3, 2)
    """
    if len(data) < offset + 4:
        return None
    (size,) = struct.unpack_from("<I", data, offset)
    if size not in DIB_HEADER_SIZES or len(data) < offset + size:
        return None
    if size == 12:
        width, height, planes, bits = struct.unpack_from("<HHHH", data, offset + 4)
        depths = _CORE_BIT_DEPTHS
    else:
        width, height, planes, bits = struct.unpack_from("<iiHH", data, offset + 4)
        depths = _BIT_DEPTHS
    height = abs(height)
    if planes != 1 or bits not in depths:
        return None
    if not (1 <= width <= _MAX_BITMAP_SIDE and 1 <= height <= _MAX_BITMAP_SIDE):
        return None
    return width, height


def _is_bitmap_file(data: bytes) -> bool:
    if len(data) < _BITMAP_FILE_HEADER + 12 or not data.startswith(b"BM"):
        return False
    file_size, pixel_offset = struct.unpack_from("<I4xI", data, 2)
    (dib_size,) = struct.unpack_from("<I", data, _BITMAP_FILE_HEADER)
    if file_size != len(data) or not _BITMAP_FILE_HEADER + dib_size <= pixel_offset < len(data):
        return False
    return bitmap_dimensions(data, _BITMAP_FILE_HEADER) is not None


def _by_magic(head: bytes) -> str | None:
    """The format the first 16 bytes announce, bitmaps aside."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "WEBP"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "TIFF"
    if head.startswith(b"\x00\x00\x01\x00"):
        return "ICO"
    if head.startswith(b"icns"):
        return "ICNS"
    if head.startswith(b"\x01\xda"):
        return "SGI"
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"):
        return "AVIF"
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"msf1"):
        return "HEIC"
    return None


def sniff(data: bytes) -> str | None:
    """The image format of ``data`` (``"PNG"``, ``"JPEG"``, ``"BMP"``...), or ``None``.

    Named from the magic bytes, except bitmaps, whose headers must be consistent (see the
    module's docstring). Nothing beyond the headers is decoded: a named format can still be
    truncated or corrupt further on.

    >>> sniff(b"BMdb_password=hunter2") is None
    True
    """
    found = _by_magic(data[:16])
    if found is not None:
        return found
    if _is_bitmap_file(data):
        return "BMP"
    if bitmap_dimensions(data) is not None:
        return "DIB"  # a bitmap without its 14-byte file header
    return None


def claimed_format(data: bytes) -> str | None:
    """The format the leading bytes claim, even when the header is not consistent.

    For messages only (a corrupt BMP, as against bytes that are no image at all); whether the
    data is an image is :func:`sniff`'s answer.
    """
    found = sniff(data)
    if found is not None:
        return found
    if data.startswith(b"BM"):
        return "BMP"
    return None
