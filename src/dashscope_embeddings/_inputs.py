"""Input kinds of the multimodal endpoint, and how each is sent (the reading: ``_images``).

The kinds say what an input *is*, so nothing is guessed from a string:

>>> from dashscope_embeddings import Fused, Image, MultiImages, Text, Video
>>> inputs = [
...     "a red running shoe",                        # a bare str is ALWAYS text
...     Text("https://example.com/cat.jpg"),         # text too, said explicitly
...     Image("photos/shoe.png"),                    # a local file, sent as a data URI
...     Image("https://example.com/shoe.jpg"),       # a URL, passed through, never fetched
...     Video("https://example.com/clip.mp4"),       # video: public URLs only
...     MultiImages(["a.png", "b.png"]),             # several images, one vector
...     Fused(text="red shoe", image="shoe.png"),    # one vector of text + image
... ]

**The bare-string rule.** A plain ``str`` is text, always, even when it happens to name an
existing file or looks like an image URL: a caller embedding the text ``"cat.jpg"`` or a
caption that is a URL must get a text vector, not a silent image upload. Say ``Image(...)``
for an image; inside ``Image``, ``MultiImages`` and ``Fused(image=...)`` a string is an image
source (a path, URL or data URI). Other bare values are unambiguous and taken as images: a
``pathlib.Path``, ``bytes`` / ``bytearray`` / ``memoryview``, a binary file object
(``BytesIO``, ``open(p, "rb")``) and a PIL image.

Image sources and how they are sent (checked and read when the call is planned, so errors name
the caller's input index and the model's limit):

* ``http://`` / ``https://`` URL: passed to the service as is; never fetched here.
* ``data:image/...;base64,...`` URI: passed as is, after decoding it to check its size and
  format.
* a local path (``str`` or ``os.PathLike``): read only if it is a regular file no larger than
  the model's limit (checked before reading), then sent byte for byte as
  ``data:<sniffed MIME type>;base64,...``. The type comes from the file's magic bytes, never
  its name: a text file named ``.png`` is refused.
* ``bytes`` or a binary file object (read from its current position): as a local file.
* a PIL image (only when Pillow is installed; it is never imported here): saved in its own
  format (PNG when it has none) and sent as above. This is the one case that re-encodes.
* ``file://`` and every other scheme are refused: pass the path itself.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Sequence
from dataclasses import dataclass

from dashscope_embeddings._errors import InvalidInputError
from dashscope_embeddings._images import SupportsPILSave, describe

__all__ = [
    "Audio",
    "Fused",
    "Image",
    "ImageSource",
    "MultiImages",
    "MultimodalInput",
    "SupportsPILSave",
    "Text",
    "Video",
]

ImageSource: typing.TypeAlias = typing.Union[  # a runtime alias on 3.10
    str, "os.PathLike[str]", bytes, bytearray, memoryview, typing.IO[bytes], SupportsPILSave
]
"""Anything :class:`Image` takes: a path, URL or data URI string, a path object, raw bytes, a
binary file object, or a PIL image."""


@dataclass(frozen=True, eq=False)
class Text:
    """A text input: ``Text("a red shoe")``. A bare ``str`` means the same."""

    text: str


@dataclass(frozen=True, eq=False)
class Image:
    """An image input: a path, URL, data URI, bytes, binary file object or PIL image.

    >>> Image("photos/shoe.png"), Image(pathlib.Path("shoe.png")), Image(png_bytes)
    ... # doctest: +SKIP
    """

    source: ImageSource

    def __repr__(self) -> str:
        return f"Image({describe(self.source)})"


@dataclass(frozen=True, eq=False)
class Video:
    """A video input, as a public ``http(s)`` URL (the service takes no uploaded video).

    >>> Video("https://example.com/clip.mp4")
    Video(url='https://example.com/clip.mp4')
    """

    url: str


@dataclass(frozen=True, eq=False)
class Audio:
    """An audio clip, as a public ``http(s)`` URL (``multimodal-embedding-one-peace-v1``)."""

    url: str


@dataclass(frozen=True, eq=False)
class MultiImages:
    """Several images embedded as one input (``multi_images``), e.g. views of one product.

    >>> MultiImages(["front.png", "back.png"])  # doctest: +SKIP
    """

    images: Sequence[ImageSource]

    def __repr__(self) -> str:
        return f"MultiImages(<{len(self.images)} images>)"


@dataclass(frozen=True, eq=False)
class Fused:
    """One fused vector of several parts: text with an image, a video or several images.

    Models fuse differently; the client sends what each one needs: qwen2.5-vl-embedding always
    fuses a request, qwen3-vl-embedding fuses with ``enable_fusion``, the
    ``tongyi-embedding-vision-*-2026-03-06`` snapshots fuse the keys of one content object.
    Other models cannot fuse, and a ``Fused`` input to them raises before anything is sent.

    >>> Fused(text="red running shoe", image="https://example.com/shoe.jpg")  # doctest: +SKIP

    Args:
        text: The text part.
        image: One image (any :data:`ImageSource`).
        video: A video URL.
        multi_images: Several images.
    """

    text: str | None = None
    image: ImageSource | None = None
    video: str | None = None
    multi_images: Sequence[ImageSource] | None = None

    def __post_init__(self) -> None:
        if len(self.parts()) < 2:
            raise InvalidInputError(
                "a Fused input needs at least two parts (text, image, video, multi_images); "
                "for one, pass Text, Image, Video or MultiImages"
            )

    def parts(self) -> list[tuple[str, object]]:
        """The parts that are set, as ``(wire key, value)`` in wire order."""
        named = (
            ("text", self.text),
            ("image", self.image),
            ("video", self.video),
            ("multi_images", self.multi_images),
        )
        return [(key, value) for key, value in named if value is not None]

    def __repr__(self) -> str:
        return f"Fused({', '.join(key for key, _ in self.parts())})"


MultimodalInput: typing.TypeAlias = typing.Union[  # a runtime alias on 3.10
    str,
    Text,
    Image,
    Video,
    Audio,
    MultiImages,
    Fused,
    "os.PathLike[str]",
    bytes,
    bytearray,
    memoryview,
    typing.IO[bytes],
    SupportsPILSave,
]
"""One input of ``embed_multimodal``. A bare ``str`` is text (see the module docstring)."""
