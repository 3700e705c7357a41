"""Multimodal models in both adapters, against the bundled emulator over loopback HTTP.

LlamaIndex: ``MultiModalEmbedding`` hooks with what ``ImageNode.resolve_image()`` gives, video,
and a ``MultiModalVectorStoreIndex`` text->image round trip. LangChain: ``embed_image`` into a
real Chroma store (ephemeral, in process). Images are tiny PNGs written here whose ``tEXt``
chunk carries words: the emulator gives an image the lexical features of those words, so
text->image retrieval can really be checked (its vectors are not model quality).
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import io
import pathlib
import typing
import uuid

import pytest
from llama_index.core.embeddings import MultiModalEmbedding
from llama_index.core.schema import BaseNode, ImageNode, TextNode

from dashscope_embeddings import InvalidInputError
from dashscope_embeddings.emulator import Emulator
from dashscope_embeddings.langchain import DashScopeEmbeddings
from dashscope_embeddings.llama_index import DashScopeEmbedding
from tests.media import png

ROOT = pathlib.Path(__file__).resolve().parents[2]
MM_PATH = "/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding"
TEXT_PATH = "/api/v1/services/embeddings/text-embedding/text-embedding"
PLUS = "tongyi-embedding-vision-plus"
QWEN3 = "qwen3-vl-embedding"
SUBJECTS = ("red running shoe", "blue sailing boat", "green pine tree", "yellow school bus")


def bodies(emulator: Emulator, path: str = MM_PATH) -> list[dict[str, typing.Any]]:
    return [r.json for r in emulator.requests if r.path == path]


def items(emulator: Emulator) -> list[dict[str, typing.Any]]:
    return [item for b in bodies(emulator) for item in b["input"]["contents"]]


@pytest.fixture
def pictures(tmp_path: pathlib.Path) -> dict[str, pathlib.Path]:
    """One small PNG per subject, its words in a tEXt chunk."""
    paths = {}
    for shade, subject in enumerate(SUBJECTS):
        path = tmp_path / f"img{shade}.png"  # the file name says nothing about the subject
        path.write_bytes(png(text=subject, shade=shade * 40))
        paths[subject] = path
    return paths


# --- LlamaIndex --------------------------------------------------------------------------------


def test_llama_index_text_model_is_a_multimodal_embedding_that_refuses_images(
    emulator_env: Emulator, pictures: dict[str, pathlib.Path]
) -> None:
    emb = DashScopeEmbedding(model_name="text-embedding-v4")
    assert isinstance(emb, MultiModalEmbedding)
    with pytest.raises(InvalidInputError, match="images need a multimodal model") as info:
        emb.get_image_embedding(str(pictures[SUBJECTS[0]]))
    assert QWEN3 in str(info.value) and PLUS in str(info.value)
    with pytest.raises(InvalidInputError, match="videos need a multimodal model"):
        emb.get_video_embedding("https://example.com/clip.mp4")
    assert len(emb.get_text_embedding("still a text model")) == 1024
    assert bodies(emulator_env) == [] and len(bodies(emulator_env, TEXT_PATH)) == 1


def test_llama_index_texts_and_queries_go_to_the_multimodal_endpoint(
    emulator_env: Emulator,
) -> None:
    emb = DashScopeEmbedding(model_name=QWEN3, instruct="Find the matching photo", dimension=512)
    assert len(emb.get_text_embedding("a red running shoe")) == 512
    emb.get_query_embedding("red shoe")
    sent = bodies(emulator_env)
    assert [b["input"]["contents"] for b in sent] == [
        [{"text": "a red running shoe"}],
        [{"text": "red shoe"}],
    ]
    # instruct goes with queries only, as on the text models
    assert [b["parameters"] for b in sent] == [
        {"dimension": 512},
        {"dimension": 512, "instruct": "Find the matching photo"},
    ]
    assert bodies(emulator_env, TEXT_PATH) == []
    assert emb.usage.requests == 2


def test_llama_index_multimodal_settings_are_checked_at_construction(
    emulator_env: Emulator,
) -> None:
    with pytest.raises(InvalidInputError, match="ignores instruct"):
        DashScopeEmbedding(model_name=PLUS, instruct="Find")
    with pytest.raises(InvalidInputError, match="dimension 100 is not offered"):
        DashScopeEmbedding(model_name=PLUS, dimension=100)
    with pytest.raises(ValueError, match="served only on the native endpoint"):
        DashScopeEmbedding(model_name=PLUS, protocol="compatible")


def test_llama_index_images_from_image_nodes_paths_urls_and_data_uris(
    emulator_env: Emulator, pictures: dict[str, pathlib.Path]
) -> None:
    emb = DashScopeEmbedding(model_name=PLUS)
    shoe = pictures[SUBJECTS[0]]
    data = shoe.read_bytes()
    by_path = ImageNode(image_path=str(shoe)).resolve_image()
    by_data = ImageNode(image=base64.b64encode(data).decode()).resolve_image()
    assert isinstance(by_path, str) and isinstance(by_data, io.BytesIO)
    from_path = emb.get_image_embedding(by_path)
    from_bytes = emb.get_image_embedding(by_data)
    assert from_path == from_bytes  # the same bytes, sent the same way
    uri = "data:image/png;base64," + base64.b64encode(data).decode()
    assert [i["image"] for i in items(emulator_env)] == [uri, uri]
    assert emb.get_image_embedding(uri) == from_path
    url = "https://example.com/photos/red-running-shoe.jpg"
    by_url = emb.get_image_embedding(url)
    assert items(emulator_env)[-1] == {"image": url}
    text = emb.get_query_embedding("red running shoe")
    other = emb.get_query_embedding("blue sailing boat")
    assert _dot(text, by_url) > _dot(other, by_url) and _dot(text, from_path) > _dot(
        other, from_path
    )


def test_llama_index_image_batches_are_re_split_to_the_model_limit(
    emulator_env: Emulator, pictures: dict[str, pathlib.Path]
) -> None:
    emb = DashScopeEmbedding(model_name=PLUS, embed_batch_size=100)
    paths = [str(p) for p in pictures.values()] * 5  # 20 images, 4 distinct
    extra = [io.BytesIO(png(shade=200 + i)) for i in range(13)]
    vectors = emb.get_image_embedding_batch([*paths, *extra])
    assert len(vectors) == 33 and vectors[0] == vectors[4]
    sizes = [len(b["input"]["contents"]) for b in bodies(emulator_env)]
    assert max(sizes) <= 8 and sum(sizes) == 17  # identical images are sent once


def test_llama_index_async_images_and_video(
    emulator_env: Emulator, pictures: dict[str, pathlib.Path]
) -> None:
    emb = DashScopeEmbedding(model_name=PLUS)
    paths: list[str | io.BytesIO] = [str(p) for p in pictures.values()]

    async def go() -> tuple[list[list[float]], list[float], list[list[float]], list[float]]:
        many = await emb.aget_image_embedding_batch(paths)
        one = await emb.aget_image_embedding(io.BytesIO(pictures[SUBJECTS[1]].read_bytes()))
        videos = await emb.aget_video_embeddings(
            ["https://example.com/v/red-shoe.mp4", "https://example.com/v/boat.mp4"], fps=0.5
        )
        video = await emb.aget_video_embedding("https://example.com/v/bus.mp4")
        return many, one, videos, video

    many, one, videos, video = asyncio.run(go())
    assert many[1] == one and len(videos) == 2 and len(video) == 1152
    assert emb.get_video_embedding("https://example.com/v/bus.mp4") == video
    fps = [b.get("parameters", {}).get("fps") for b in bodies(emulator_env)]
    assert fps.count(0.5) == 1 and [i for i in items(emulator_env) if "video" in i][:2] == [
        {"video": "https://example.com/v/red-shoe.mp4"},
        {"video": "https://example.com/v/boat.mp4"},
    ]
    with pytest.raises(InvalidInputError, match="must be a public http"):
        emb.get_video_embeddings(["/local/clip.mp4"])


def test_llama_index_multimodal_vector_store_index_text_to_image(
    emulator_env: Emulator, pictures: dict[str, pathlib.Path]
) -> None:
    from llama_index.core.indices import MultiModalVectorStoreIndex

    emb = DashScopeEmbedding(model_name=PLUS)
    nodes: list[BaseNode] = [
        ImageNode(image_path=str(p), metadata={"subject": s}) for s, p in pictures.items()
    ]
    # one image by bytes, as a loader that read it already would give it
    nodes.append(
        ImageNode(
            image=base64.b64encode(png(text="orange tabby cat")).decode(),
            metadata={"subject": "orange tabby cat"},
        )
    )
    nodes += [TextNode(text=f"A note about the {s}.") for s in SUBJECTS]
    index = MultiModalVectorStoreIndex(nodes, embed_model=emb, image_embed_model=emb)
    sent = len(bodies(emulator_env))
    assert sent >= 2 and bodies(emulator_env, TEXT_PATH) == []
    retriever = index.as_retriever(similarity_top_k=1, image_similarity_top_k=1)
    for subject in (*SUBJECTS, "orange tabby cat"):
        [hit] = retriever.text_to_image_retrieve(subject)
        assert hit.node.metadata["subject"] == subject

    async def aretrieve() -> str:
        [hit] = await retriever.atext_to_image_retrieve("green pine tree")
        return str(hit.node.metadata["subject"])

    assert asyncio.run(aretrieve()) == "green pine tree"


# --- LangChain ---------------------------------------------------------------------------------


def test_langchain_text_model_refuses_images(
    emulator_env: Emulator, pictures: dict[str, pathlib.Path]
) -> None:
    emb = DashScopeEmbeddings(model="text-embedding-v4")
    with pytest.raises(InvalidInputError, match="images need a multimodal model") as info:
        emb.embed_image([str(pictures[SUBJECTS[0]])])
    assert QWEN3 in str(info.value)
    assert bodies(emulator_env) == []


def test_langchain_embed_image_documents_and_queries_share_the_endpoint(
    emulator_env: Emulator, pictures: dict[str, pathlib.Path]
) -> None:
    emb = DashScopeEmbeddings(model=PLUS, dimension=256)
    uris = [str(p) for p in pictures.values()] + ["https://example.com/img/red-running-shoe.png"]
    images = emb.embed_image(uris)
    docs = emb.embed_documents(list(SUBJECTS))
    query = emb.embed_query("red running shoe")
    assert len(images) == 5 and all(len(v) == 256 for v in (*images, *docs, query))
    assert bodies(emulator_env, TEXT_PATH) == [] and len(bodies(emulator_env)) == 3
    best = max(range(4), key=lambda i: _dot(query, images[i]))
    assert best == 0 and _dot(query, images[4]) > _dot(query, images[1])
    assert emb.usage.requests == 3

    async def go() -> list[list[float]]:
        return await emb.aembed_image(uris[:2])

    assert asyncio.run(go()) == images[:2]
    assert emb.embed_image([]) == []
    with pytest.raises(InvalidInputError, match="uris must be a list"):
        emb.embed_image(uris[0])  # type: ignore[arg-type]


def test_langchain_embed_image_into_chroma(
    emulator_env: Emulator, pictures: dict[str, pathlib.Path]
) -> None:
    import chromadb
    from langchain_chroma import Chroma

    emb = DashScopeEmbeddings(model=PLUS)
    client = chromadb.EphemeralClient(settings=chromadb.config.Settings(anonymized_telemetry=False))
    store = Chroma(
        collection_name=f"images-{uuid.uuid4().hex[:8]}", embedding_function=emb, client=client
    )
    uris = [str(p) for p in pictures.values()]
    ids = store.add_images(uris, metadatas=[{"subject": s} for s in pictures])
    assert len(ids) == 4
    assert len(bodies(emulator_env)) == 1 and all("image" in i for i in items(emulator_env))
    for subject in SUBJECTS:
        [doc] = store.similarity_search(subject, k=1)
        assert doc.metadata["subject"] == subject
    # image -> image: the same picture finds itself
    [doc] = store.similarity_search_by_image(uris[2], k=1)
    assert doc.metadata["subject"] == SUBJECTS[2]


# --- the README's table and the cookbook ---------------------------------------------------------


def test_readme_multimodal_table_is_current() -> None:
    loader = importlib.util.spec_from_file_location(
        "readme_tables", ROOT / "scripts" / "readme_tables.py"
    )
    assert loader is not None and loader.loader is not None
    readme_tables: typing.Any = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(readme_tables)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    begin, end = readme_tables._markers("multimodal-table")
    assert begin in readme and end in readme, "README.md has no multimodal-table section"
    section = readme[readme.index(begin) + len(begin) : readme.index(end)].strip()
    assert section == readme_tables.multimodal_table(), "run scripts/readme_tables.py --write"




def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))
