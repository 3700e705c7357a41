"""Image format sniffing from the leading bytes: one pure module for the client and emulator."""

from __future__ import annotations

import struct

import pytest

from dashscope_embeddings import _imageformat
from tests.media import GIF, bmp, jpeg, png, webp


def dib_header(
    size: int = 40, width: int = 2, height: int = 2, planes: int = 1, bits: int = 24
) -> bytes:
    if size == 12:
        return struct.pack("<IHHHH", 12, width, height, planes, bits)
    head = struct.pack("<IiiHH", size, width, height, planes, bits)
    return head + bytes(size - len(head))


def bitmap(dib: bytes, pixels: bytes = b"\x7f" * 16, *, file_size: int | None = None) -> bytes:
    total = 14 + len(dib) + len(pixels)
    declared = total if file_size is None else file_size
    return b"BM" + struct.pack("<IHHI", declared, 0, 0, 14 + len(dib)) + dib + pixels


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (png(), "PNG"),
        (jpeg(), "JPEG"),
        (bmp(), "BMP"),
        (bmp(5, 3), "BMP"),
        (GIF, "GIF"),
        (webp(), "WEBP"),
        (b"II*\x00" + bytes(12), "TIFF"),
        (b"MM\x00*" + bytes(12), "TIFF"),
        (b"\x00\x00\x01\x00\x01\x00" + bytes(16), "ICO"),
        (b"icns" + bytes(12), "ICNS"),
        (b"\x01\xda" + bytes(14), "SGI"),
        (b"\x00\x00\x00\x1cftypavif" + bytes(8), "AVIF"),
        (b"\x00\x00\x00\x1cftypheic" + bytes(8), "HEIC"),
        (dib_header() + b"\x7f" * 16, "DIB"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_known_formats_are_named(data: bytes, expected: str) -> None:
    assert _imageformat.sniff(data) == expected


@pytest.mark.parametrize("size", sorted(_imageformat.DIB_HEADER_SIZES))
def test_every_known_dib_header_size_makes_a_bitmap(size: int) -> None:
    assert _imageformat.sniff(bitmap(dib_header(size))) == "BMP"


@pytest.mark.parametrize(
    "data",
    [
        b"BMdb_password=hunter2\nsmtp_user=admin\n",
        b"BM",
        b"BM" + bytes(12),
        b"BMP is a bitmap format, says this text file. " * 4,
        bitmap(dib_header(), file_size=10_000),  # the file is shorter than it says
        bitmap(dib_header(), file_size=20),  # ... or longer
        bitmap(dib_header(size=41)),  # no such DIB header
        bitmap(dib_header(size=124)[:60]),  # the DIB header is cut
        bitmap(dib_header(width=0)),
        bitmap(dib_header(height=0)),
        bitmap(dib_header(width=-4)),
        bitmap(dib_header(bits=7)),
        bitmap(dib_header(planes=2)),
        bitmap(dib_header(width=1 << 20, height=1 << 20)),
        b"(\x00\x00\x00 this text starts with an open parenthesis and three NULs",
        b"",
        b"plain text",
        b"\x89PNG",
    ],
    ids=[
        "text-starting-with-BM",
        "only-BM",
        "BM-and-zeros",
        "prose-starting-with-BMP",
        "size-field-too-big",
        "size-field-too-small",
        "unknown-dib-size",
        "dib-header-cut",
        "zero-width",
        "zero-height",
        "negative-width",
        "bit-depth-7",
        "two-planes",
        "absurd-size",
        "fake-dib",
        "empty",
        "text",
        "png-signature-cut",
    ],
)
def test_anything_else_is_not_an_image(data: bytes) -> None:
    assert _imageformat.sniff(data) is None


def test_top_down_bitmaps_and_the_bitfields_header_are_bitmaps() -> None:
    assert _imageformat.sniff(bitmap(dib_header(height=-2))) == "BMP"
    assert _imageformat.sniff(bitmap(dib_header(size=52, bits=32), b"\x00" * 16)) == "BMP"


def test_the_mime_type_of_every_format() -> None:
    assert _imageformat.MIME_TYPES["BMP"] == "image/bmp"
    assert _imageformat.MIME_TYPES["DIB"] == "image/bmp"
    assert _imageformat.MIME_TYPES["JPEG"] == "image/jpeg"
    named = {
        "PNG",
        "JPEG",
        "BMP",
        "DIB",
        "GIF",
        "WEBP",
        "TIFF",
        "ICO",
        "ICNS",
        "SGI",
        "HEIC",
        "AVIF",
    }
    assert set(_imageformat.MIME_TYPES) == named
