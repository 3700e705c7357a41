"""Text -> image search: index a few generated pictures, find each one from a description.

Uses the real DashScope service when DASHSCOPE_API_KEY is set (region from DASHSCOPE_REGION,
default cn-beijing), and the bundled emulator on 127.0.0.1 otherwise.

    python cookbook/image_search.py [--model tongyi-embedding-vision-plus]

The pictures are plain-colour PNGs written by this script (no download, no Pillow), each with a
PNG ``tEXt`` caption. The real service sees the colours; the emulator, whose vectors are
lexical and not model quality, reads the caption, so the same search works on both. They go
into a LlamaIndex ``MultiModalVectorStoreIndex`` with one ``DashScopeEmbedding`` as text and
image model: texts and images share one vector space.
"""

# /// script
# requires-python = ">=3.10"
# dependencies = ["dashscope-embeddings[llama-index,emulator]"]
# ///

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import struct
import sys
import tempfile
import zlib
from collections.abc import Iterator

from llama_index.core.indices import MultiModalVectorStoreIndex
from llama_index.core.schema import ImageNode

from dashscope_embeddings.llama_index import DashScopeEmbedding

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 170, 60),
    "blue": (30, 60, 220),
    "yellow": (240, 220, 30),
}
QUERIES = {
    "a plain red picture": "red",
    "something blue": "blue",
    "a green square": "green",
    "yellow colour": "yellow",
}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def solid_png(rgb: tuple[int, int, int], caption: str, size: int = 64) -> bytes:
    """A ``size`` x ``size`` PNG of one colour, with ``caption`` in a tEXt chunk."""
    row = b"\x00" + bytes(rgb) * size  # filter byte 0, then RGB pixels
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)),
            _chunk(b"tEXt", b"Description\x00" + caption.encode("latin-1")),
            _chunk(b"IDAT", zlib.compress(row * size)),
            _chunk(b"IEND", b""),
        ]
    )


@contextlib.contextmanager
def embed_model_for(model: str) -> Iterator[tuple[DashScopeEmbedding, str]]:
    """The real service if a key is set, else the emulator started on a free loopback port."""
    if os.environ.get("DASHSCOPE_API_KEY"):
        region = os.environ.get("DASHSCOPE_REGION")
        yield DashScopeEmbedding(model_name=model, region=region), "the DashScope service"
        return
    from dashscope_embeddings.emulator import Emulator

    with Emulator() as emulator:
        emb = DashScopeEmbedding(model_name=model, api_key="emulator", base_url=emulator.url)
        yield emb, f"the bundled emulator at {emulator.url} (lexical vectors, not model quality)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tongyi-embedding-vision-plus")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as folder, embed_model_for(args.model) as (emb, where):
        nodes = []
        for name, rgb in COLOURS.items():
            path = pathlib.Path(folder) / f"{name}.png"
            path.write_bytes(solid_png(rgb, f"a plain {name} square"))
            nodes.append(ImageNode(image_path=str(path), metadata={"file": path.name}))
        print(f"Indexing {len(nodes)} pictures with {args.model} on {where}.")
        index = MultiModalVectorStoreIndex(nodes, embed_model=emb, image_embed_model=emb)
        retriever = index.as_retriever(image_similarity_top_k=1)
        misses = 0
        for query, expected in QUERIES.items():
            [hit] = retriever.text_to_image_retrieve(query)
            found = hit.node.metadata["file"]
            ok = found == f"{expected}.png"
            misses += not ok
            print(f"{query!r:24} -> top hit: {found} ({hit.score:.3f}){'' if ok else '  MISS'}")
        usage = emb.usage
        cost = f"{usage.cost:.6f} {usage.currency}" if usage.cost is not None else "n/a"
        print(
            f"\nUsage: {usage.total_tokens} tokens in {usage.requests} requests, "
            f"estimated cost {cost}."
        )
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
