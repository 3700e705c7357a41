"""Reading image sources for the multimodal endpoint: sniffing, size bounds, data URIs, URLs.

A local image (path, bytes, binary file object, PIL image) becomes a ``data:`` URI of its exact
bytes, the MIME type sniffed from its headers (:mod:`._imageformat`: bytes that are no image,
such as a text starting with ``BM``, are refused, nothing sent); a path is read only when it is
a regular file within the size bound, checked before reading. ``http(s)`` URLs and ``data:``
URIs pass as given (a data URI is decoded to check it); every other scheme is refused. Pillow
is never imported: an object is taken for a PIL image only when ``PIL.Image`` is loaded already.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import stat
import sys
import typing
from dataclasses import dataclass

from dashscope_embeddings._errors import InvalidInputError
from dashscope_embeddings._imageformat import MIME_TYPES
from dashscope_embeddings._imageformat import sniff as sniff_image

__all__ = [
    "SupportsPILSave",
    "WireImage",
    "check_media_url",
    "describe",
    "is_image_value",
    "is_pil_image",
    "read_image",
    "sniff_image",
]


@typing.runtime_checkable
class SupportsPILSave(typing.Protocol):
    """What this package uses of a ``PIL.Image.Image``: its ``format`` and ``save``."""

    @property
    def format(self) -> str | None:
        """The format the image was read in (``PNG``, ``JPEG``...), or ``None``."""

    def save(self, fp: typing.IO[bytes], format: str | None = None) -> None:
        """Write the image to ``fp`` in ``format``."""


def describe(source: object) -> str:
    """A short, safe rendering of an image source for error messages."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    if isinstance(source, str):
        shown = source if len(source) <= 60 else source[:57] + "..."
        return repr(shown)
    if isinstance(source, os.PathLike):
        return repr(os.fspath(source))
    return f"<{type(source).__name__}>"


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_DATA_URI = re.compile(r"^data:(image/[A-Za-z0-9.+\-]+)((?:;[^,;]*)*);base64,", re.IGNORECASE)


@dataclass(frozen=True)
class WireImage:
    """An image as it goes on the wire.

    Attributes:
        value: The URL, or the ``data:`` URI.
        format: The sniffed format of local bytes (``None`` for a URL).
        size: The byte count of local bytes (``None`` for a URL).
        url_path: The path of a URL (to check its extension), else ``None``.
    """

    value: str
    format: str | None
    size: int | None
    url_path: str | None = None


def _mb(limit: int) -> str:
    mb = 1024 * 1024
    return f"{limit // mb} MB" if limit % mb == 0 else f"{limit:,} bytes"


def _too_big(where: str, size: int, limit: int, model: str, index: int) -> InvalidInputError:
    return InvalidInputError(
        f"{where}: the image has {size:,} bytes, over {model}'s limit of {_mb(limit)} per image",
        index=index,
    )


def _encode(data: bytes, where: str, index: int, *, max_bytes: int, model: str) -> WireImage:
    if not data:
        raise InvalidInputError(f"{where}: the image is empty (0 bytes)", index=index)
    if len(data) > max_bytes:
        raise _too_big(where, len(data), max_bytes, model, index)
    found = sniff_image(data)
    if found is None:
        raise InvalidInputError(
            f"{where}: the bytes are not an image of a known format (PNG, JPEG, BMP, WEBP, "
            "TIFF, ...): the type is read from the content, not the file name",
            index=index,
        )
    encoded = base64.b64encode(data).decode("ascii")
    return WireImage(f"data:{MIME_TYPES[found]};base64,{encoded}", found, len(data))


def _read_path(path: str, where: str, index: int, *, max_bytes: int, model: str) -> WireImage:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InvalidInputError(f"{where}: no such image file: {path!r}", index=index) from None
    except OSError as exc:
        raise InvalidInputError(
            f"{where}: cannot read image file {path!r}: {exc.strerror}", index=index
        ) from None
    if not stat.S_ISREG(info.st_mode):
        what = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise InvalidInputError(f"{where}: {path!r} is {what}, not an image file", index=index)
    if info.st_size > max_bytes:  # checked before a byte is read
        raise _too_big(where, info.st_size, max_bytes, model, index)
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)  # a file growing meanwhile is still bounded
    except OSError as exc:
        raise InvalidInputError(
            f"{where}: cannot read image file {path!r}: {exc.strerror}", index=index
        ) from None
    return _encode(data, where, index, max_bytes=max_bytes, model=model)


def _read_stream(
    stream: typing.IO[bytes], where: str, index: int, *, max_bytes: int, model: str
) -> WireImage:
    remaining: int | None = None
    try:
        if stream.seekable():
            start = stream.tell()
            remaining = stream.seek(0, io.SEEK_END) - start
            stream.seek(start)
    except (OSError, ValueError, AttributeError):
        remaining = None
    if remaining is not None and remaining > max_bytes:  # known before reading
        raise _too_big(where, remaining, max_bytes, model, index)
    data = stream.read(max_bytes + 1)
    if not isinstance(data, (bytes, bytearray)):
        raise InvalidInputError(
            f"{where}: the file object gave {type(data).__name__}, not bytes; open it in "
            "binary mode ('rb')",
            index=index,
        )
    return _encode(bytes(data), where, index, max_bytes=max_bytes, model=model)


def _check_data_uri(value: str, where: str, index: int, *, max_bytes: int, model: str) -> WireImage:
    match = _DATA_URI.match(value)
    if match is None:
        raise InvalidInputError(
            f"{where}: a data URI must read data:image/<format>;base64,<data>", index=index
        )
    payload = value[match.end() :]
    if len(payload) > (max_bytes + 2) // 3 * 4 + 4:  # over the limit before decoding it
        raise _too_big(where, len(payload) * 3 // 4, max_bytes, model, index)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError(f"{where}: the data URI is not valid base64", index=index) from None
    checked = _encode(data, where, index, max_bytes=max_bytes, model=model)
    return WireImage(value, checked.format, checked.size)  # the caller's URI, unchanged


def _check_url(value: str, where: str, index: int) -> WireImage:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    if parts is None or not parts.netloc or any(c.isspace() for c in value):
        raise InvalidInputError(f"{where}: {describe(value)} is not a valid URL", index=index)
    return WireImage(value, None, None, url_path=parts.path)


def _pil_image_type() -> type | None:
    # Never imports Pillow: an object can only be a PIL image if PIL.Image is loaded already.
    module = sys.modules.get("PIL.Image")
    image_type = getattr(module, "Image", None)
    return image_type if isinstance(image_type, type) else None


def is_pil_image(value: object) -> bool:
    """Whether ``value`` is a ``PIL.Image.Image`` (without importing Pillow)."""
    image_type = _pil_image_type()
    return image_type is not None and isinstance(value, image_type)


def is_image_value(value: object) -> bool:
    """Whether a bare (unwrapped) input is unambiguously an image: see the bare-string rule."""
    return (
        isinstance(value, (os.PathLike, bytes, bytearray, memoryview, io.IOBase))
        or is_pil_image(value)
        or (hasattr(value, "read") and not isinstance(value, str))
    )


def read_image(source: object, where: str, index: int, *, max_bytes: int, model: str) -> WireImage:
    """Turn an image source into what goes on the wire, checking its size before reading.

    Args:
        source: Any :data:`ImageSource`.
        where: How to name the input in errors (``"input 3"``, ``"input 3, image 2"``).
        index: The caller's input index, carried by the error.
        max_bytes: The model's largest image, in bytes.
        model: The model's name, for errors.

    Raises:
        InvalidInputError: A missing, unreadable, oversized or non-image source, a refused URL
            scheme, or a value that is no image source at all.
    """
    if isinstance(source, str):
        if not source.strip():
            raise InvalidInputError(f"{where}: the image is an empty string", index=index)
        scheme_match = _SCHEME.match(source)
        scheme = scheme_match.group(1).lower() if scheme_match else ""
        if scheme in ("http", "https"):
            return _check_url(source, where, index)
        if scheme == "data":
            return _check_data_uri(source, where, index, max_bytes=max_bytes, model=model)
        if len(scheme) > 1:  # one letter is a Windows drive ("C:\\photos\\a.png")
            hint = " pass the local path itself" if scheme == "file" else ""
            raise InvalidInputError(
                f"{where}: {scheme}:// URLs are refused; images are local paths, http(s) URLs "
                f"or data: URIs;{hint or ' download it first'}",
                index=index,
            )
        return _read_path(source, where, index, max_bytes=max_bytes, model=model)
    if isinstance(source, os.PathLike):
        path = os.fspath(source)
        if not isinstance(path, str):
            path = os.fsdecode(path)
        return _read_path(path, where, index, max_bytes=max_bytes, model=model)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _encode(bytes(source), where, index, max_bytes=max_bytes, model=model)
    if is_pil_image(source):
        pil = typing.cast("SupportsPILSave", source)
        buffer = io.BytesIO()
        pil.save(buffer, format=pil.format or "PNG")
        return _encode(buffer.getvalue(), where, index, max_bytes=max_bytes, model=model)
    if hasattr(source, "read"):
        stream = typing.cast("typing.IO[bytes]", source)
        return _read_stream(stream, where, index, max_bytes=max_bytes, model=model)
    raise InvalidInputError(
        f"{where}: {type(source).__name__} is not an image source; pass a path, an http(s) "
        "URL, a data: URI, bytes, a binary file object or a PIL image",
        index=index,
    )


def check_media_url(value: object, where: str, index: int, kind: str) -> WireImage:
    """A video or audio URL: ``http(s)`` only, since the service takes no uploaded video.

    Raises:
        InvalidInputError: For anything but an ``http(s)`` URL string.
    """
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(
            f"{where}: a {kind} must be an http(s) URL string, got {describe(value)}",
            index=index,
        )
    scheme_match = _SCHEME.match(value)
    scheme = scheme_match.group(1).lower() if scheme_match else ""
    if scheme not in ("http", "https"):
        raise InvalidInputError(
            f"{where}: a {kind} must be a public http(s) URL (the service takes no uploaded "
            f"{kind}, and file:// or local paths cannot be sent); got {describe(value)}",
            index=index,
        )
    return _check_url(value, where, index)
