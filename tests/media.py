"""Tiny PNG / JPEG / BMP / GIF / WEBP files written byte by byte, shared by the test layers."""

from __future__ import annotations

import base64
import struct
import zlib


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(
    width: int = 2, height: int = 2, *, text: str | None = None, pad: int = 0, shade: int = 0
) -> bytes:
    rows = b"".join(
        b"\x00" + bytes((shade + x + y) % 256 for x in range(width * 3)) for y in range(height)
    )
    chunks = [_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))]
    if text is not None:
        chunks.append(_chunk(b"tEXt", b"Description\x00" + text.encode("latin-1")))
    if pad:
        chunks.append(_chunk(b"prVt", b"\x00" * pad))  # private ancillary chunk: padding
    chunks += [_chunk(b"IDAT", zlib.compress(rows)), _chunk(b"IEND", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


def png_of_size(size: int) -> bytes:
    base = len(png())
    data = png(pad=size - base - 12)
    assert len(data) == size
    return data


def jpeg(width: int = 8, height: int = 8, comment: str | None = None) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    com = b""
    if comment is not None:
        body = comment.encode()
        com = b"\xff\xfe" + struct.pack(">H", len(body) + 2) + body
    sof = (
        b"\xff\xc0"
        + struct.pack(">HBHHB", 17, 8, height, width, 3)
        + bytes([1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1])
    )
    sos = b"\xff\xda" + struct.pack(">HB", 12, 3) + bytes([1, 0, 2, 0x11, 3, 0x11, 0, 0x3F, 0])
    return b"\xff\xd8" + app0 + com + sof + sos + b"\x12\x34\x56" + b"\xff\xd9"


def bmp(width: int = 2, height: int = 2) -> bytes:
    row = (width * 3 + 3) // 4 * 4
    pixels = b"\x7f" * (row * height)
    dib = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    size = 14 + len(dib) + len(pixels)
    return b"BM" + struct.pack("<IHHI", size, 0, 0, 54) + dib + pixels


GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


def webp() -> bytes:
    payload = b"VP8L" + struct.pack("<I", 5) + b"\x2f\x00\x00\x00\x00" + b"\x00"
    return b"RIFF" + struct.pack("<I", 4 + len(payload)) + b"WEBP" + payload


def flipped(data: bytes, position: int) -> bytes:
    changed = bytearray(data)
    changed[position] ^= 0xFF
    return bytes(changed)


def data_uri(data: bytes, fmt: str = "png") -> str:
    return f"data:image/{fmt};base64,{base64.b64encode(data).decode('ascii')}"
