"""Hybrid (dense + sparse) search in Qdrant, one DashScope request per text for both halves.

Uses the real DashScope service when DASHSCOPE_API_KEY is set (region from DASHSCOPE_REGION,
default cn-beijing), and the bundled emulator on 127.0.0.1 otherwise.

    python cookbook/hybrid_search.py [--model text-embedding-v4]
    bash scripts/quickstart.sh hybrid_search      # from a fresh clone

The handbook (cookbook/data/handbook.jsonl) plus a few product sheets go into an in-memory
Qdrant collection (langchain-qdrant, ``RetrievalMode.HYBRID``) through a dense
``DashScopeEmbeddings`` and its sparse sibling ``DashScopeSparseEmbeddings.from_dense``: each
text is sent once, with ``output_type="dense&sparse"``. Each question is then answered by the
dense half alone, the sparse half alone and both fused. A question naming a product code is
where the sparse (lexical) half earns its place: dense vectors blur codes and rare names.
"""

# /// script
# requires-python = ">=3.10"
# dependencies = ["dashscope-embeddings[langchain,qdrant,emulator]"]
# ///

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import sys
from collections.abc import Iterator

from langchain_qdrant import QdrantVectorStore, RetrievalMode
from qdrant_client import QdrantClient
from qdrant_client.models import Distance, SparseVectorParams, VectorParams

from dashscope_embeddings.langchain import DashScopeEmbeddings, DashScopeSparseEmbeddings

HANDBOOK = pathlib.Path(__file__).parent / "data" / "handbook.jsonl"
PRODUCTS = {
    "kx9": "The KX-9 blender has a 2 litre jar, five speeds and a pulse mode.",
    "tr220": "The TR-220 toaster browns four slices and has a defrost setting.",
    "ml40": "The ML-40 kettle boils 1.7 litres and switches off when dry.",
    "home-setup": "Help at home: our team can come to your home to set up a new appliance.",
    "vz3": "The VZ-3 vacuum runs for forty minutes on one charge.",
}
QUESTIONS = {
    "how do i use the KX-9 at home": "kx9",
    "I forgot my password, how do I reset it?": None,
}


@contextlib.contextmanager
def embeddings_for(model: str) -> Iterator[tuple[DashScopeEmbeddings, str]]:
    """The real service if a key is set, else the emulator started on a free loopback port."""
    if os.environ.get("DASHSCOPE_API_KEY"):
        region = os.environ.get("DASHSCOPE_REGION")
        yield DashScopeEmbeddings(model=model, region=region), "the DashScope service"
        return
    from dashscope_embeddings.emulator import Emulator

    with Emulator() as emulator:
        emb = DashScopeEmbeddings(model=model, api_key="emulator", base_url=emulator.url)
        yield emb, f"the bundled emulator at {emulator.url} (lexical vectors, not model quality)"


def load() -> tuple[list[str], list[dict[str, str]]]:
    """The texts and their ids: the handbook entries, then the product sheets."""
    entries = [json.loads(line) for line in HANDBOOK.read_text(encoding="utf-8").splitlines()]
    entries += [{"id": key, "text": text} for key, text in PRODUCTS.items()]
    return [e["text"] for e in entries], [{"id": e["id"]} for e in entries]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="text-embedding-v4", help="text-embedding-v3 or v4")
    args = parser.parse_args(argv)
    texts, metadatas = load()

    with embeddings_for(args.model) as (dense, where):
        sparse = DashScopeSparseEmbeddings.from_dense(dense)
        dimension = len(dense.embed_query("dimension probe"))
        client = QdrantClient(location=":memory:")
        client.create_collection(
            "shop",
            vectors_config={"dense": VectorParams(size=dimension, distance=Distance.COSINE)},
            sparse_vectors_config={"sparse": SparseVectorParams()},
        )
        stores = {
            mode: QdrantVectorStore(
                client=client,
                collection_name="shop",
                embedding=dense,
                sparse_embedding=sparse,
                retrieval_mode=mode,
                vector_name="dense",
                sparse_vector_name="sparse",
            )
            for mode in (RetrievalMode.DENSE, RetrievalMode.SPARSE, RetrievalMode.HYBRID)
        }
        before = dense.usage.requests
        stores[RetrievalMode.HYBRID].add_texts(texts, metadatas=metadatas)
        requests = dense.usage.requests - before
        print(f"Indexed {len(texts)} texts with {args.model} on {where}:")
        print(f"  {requests} requests for both halves (dense&sparse), not {2 * requests}.")

        for question, expected in QUESTIONS.items():
            print(f"\nQ: {question}")
            hits = {}
            for mode, store in stores.items():
                docs = store.similarity_search(question, k=2)
                hits[mode] = docs[0].metadata["id"]
                ranked = ", ".join(f"[{d.metadata['id']}]" for d in docs)
                print(f"  {mode.value:>6} top 2: {ranked}  {docs[0].page_content}")
            if expected is not None:
                dense_ok = hits[RetrievalMode.DENSE] == expected
                sparse_ok = hits[RetrievalMode.SPARSE] == expected
                if sparse_ok and not dense_ok:
                    print(f"  -> only the sparse half ranks [{expected}] first: a code is rare.")
                else:
                    print(f"  -> dense found it: {dense_ok}, sparse found it: {sparse_ok}.")

        usage = dense.usage
        cost = f"{usage.cost:.6f} {usage.currency}" if usage.cost is not None else "n/a"
        print(
            f"\nUsage: {usage.total_tokens} tokens in {usage.requests} requests, "
            f"estimated cost {cost}."
        )
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
