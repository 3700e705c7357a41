"""A tiny end-to-end RAG retrieval: embed a 20-entry handbook, answer 3 questions with top hits.

Uses the real DashScope service when DASHSCOPE_API_KEY is set (region from DASHSCOPE_REGION,
default cn-beijing), and the bundled emulator on 127.0.0.1 otherwise.

    python cookbook/quickstart.py [--model text-embedding-v4] [--top-k 2]
"""

# /// script
# requires-python = ">=3.10"
# dependencies = ["dashscope-embeddings[langchain,numpy,emulator]"]
# ///

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import sys
from collections.abc import Iterator

from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore

from dashscope_embeddings.langchain import DashScopeEmbeddings

HANDBOOK = pathlib.Path(__file__).parent / "data" / "handbook.jsonl"
QUESTIONS = (
    "How long until I get my money back after a return?",
    "Do you ship to other countries, and who pays customs?",
    "I forgot my password, how do I reset it?",
)


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="text-embedding-v4")
    parser.add_argument("--top-k", type=int, default=2)
    args = parser.parse_args(argv)

    entries = [json.loads(line) for line in HANDBOOK.read_text(encoding="utf-8").splitlines()]
    docs = [Document(page_content=e["text"], metadata={"id": e["id"]}) for e in entries]

    with embeddings_for(args.model) as (embeddings, where):
        print(f"Embedding {len(docs)} handbook entries with {args.model} on {where}.")
        store = InMemoryVectorStore(embeddings)
        store.add_documents(docs)
        for question in QUESTIONS:
            print(f"\nQ: {question}")
            for doc, score in store.similarity_search_with_score(question, k=args.top_k):
                print(f"  {score:.3f}  [{doc.metadata['id']}] {doc.page_content}")
        usage = embeddings.usage
        cost = f"{usage.cost:.6f} {usage.currency}" if usage.cost is not None else "n/a"
        print(
            f"\nUsage: {usage.total_tokens} tokens in {usage.requests} requests, "
            f"estimated cost {cost}."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
