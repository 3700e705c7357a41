"""Bulk load: ~5,000 texts through the Batch API into a FAISS index, then one query.

Uses the real DashScope service when DASHSCOPE_API_KEY is set (the Batch API costs half the
real-time price and finishes within its 24 h window; this script waits, and can be stopped
and started again: it resumes its job from --state). Without a key it starts the bundled
emulator on 127.0.0.1, where the job takes a few seconds.

    pip install "dashscope-embeddings[faiss,emulator]"   # the emulator only without a key
    python cookbook/bulk_load.py [--count 5000] [--model text-embedding-v4] [--dimension 256]
"""

# /// script
# requires-python = ">=3.10"
# dependencies = ["dashscope-embeddings[faiss,emulator]"]
# ///

from __future__ import annotations

import argparse
import contextlib
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import faiss
import numpy as np

from dashscope_embeddings import DashScopeClient
from dashscope_embeddings.batch import BatchJob, JobStatus

ITEMS = ["boots", "jacket", "tent", "backpack", "gloves", "lamp", "stove", "bottle", "map"]
TRAITS = ["waterproof", "lightweight", "insulated", "foldable", "solar", "rugged", "compact"]
USERS = ["kids", "climbers", "runners", "campers", "cyclists", "families", "hikers"]
NOTES = [
    "ships in two days",
    "lifetime warranty",
    "recycled materials",
    "fits in a pocket",
    "tested in the Alps",
    "machine washable",
]
QUERY = "waterproof boots for hikers"


def catalogue(count: int) -> tuple[list[str], list[str]]:
    """``count`` generated product descriptions and their SKUs (deterministic)."""
    rng = random.Random(7)
    texts, skus = [], []
    for i in range(count):
        item, trait, user, note = (rng.choice(x) for x in (ITEMS, TRAITS, USERS, NOTES))
        texts.append(f"{trait.capitalize()} {item} for {user}: {note}.")
        skus.append(f"SKU-{i:05d}")
    return texts, skus


@contextlib.contextmanager
def client_and_state(state: str | None) -> Iterator[tuple[DashScopeClient, Path, str]]:
    """The real service and a state file here, or the emulator and a throw-away one."""
    if os.environ.get("DASHSCOPE_API_KEY"):
        with DashScopeClient() as client:
            yield client, Path(state or "bulk_load.job.json"), "the DashScope Batch API"
        return
    from dashscope_embeddings.emulator import Emulator

    with (
        Emulator() as emu,
        DashScopeClient("emulator", base_url=emu.url) as client,
        tempfile.TemporaryDirectory() as folder,
    ):
        where = f"the bundled emulator at {emu.url} (lexical vectors, not model quality)"
        yield client, Path(state or Path(folder) / "job.json"), where


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--model", default="text-embedding-v4")
    parser.add_argument("--dimension", type=int, default=256)
    parser.add_argument("--state", default=None, help="job state file (resumed if it exists)")
    args = parser.parse_args(argv)
    texts, skus = catalogue(args.count)
    started = time.monotonic()

    with client_and_state(args.state) as (client, state, where):
        print(f"Embedding {len(texts):,} texts with {args.model} through {where}.")
        if state.exists():
            job = BatchJob.resume(state, client)
            print(f"Resumed the job in {state}.")
        else:
            job = BatchJob.submit(
                texts,
                model=args.model,
                dimension=args.dimension,
                ids=skus,
                state_path=state,
                client=client,
            )
        print(f"{len(job.batch_ids)} batch(es); state in {state}")

        last = ""

        def show(status: JobStatus) -> None:
            nonlocal last
            if str(status) != last:
                last = str(status)
                print(f"  {last}")

        job.wait(progress=show)
        results = job.results()
        if results.failed:
            print(f"{len(results.failed)} inputs failed (first: {results.failed[0]}); resending")
            job.resubmit_failed()
            job.wait(progress=show)
            results = job.results()

        vectors = np.asarray(results.embeddings, dtype=np.float32)  # raises if any is missing
        faiss.normalize_L2(vectors)
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors)
        usage = results.usage
        cost = "no list price" if usage.cost is None else f"{usage.currency} {usage.cost:.4f}"
        print(
            f"Loaded {index.ntotal:,} vectors of {vectors.shape[1]} dimensions into FAISS; "
            f"{usage.total_tokens:,} tokens, est. {cost} at the Batch API rate."
        )

        query = client.embed_texts(
            [QUERY], model=args.model, dimension=args.dimension, text_type="query"
        )
        q = np.asarray(query.embeddings, dtype=np.float32)
        faiss.normalize_L2(q)
        scores, rows = index.search(q, 3)
        print(f"\nQ: {QUERY}")
        for score, row in zip(scores[0], rows[0], strict=True):
            print(f"  {score:.3f}  {results.ids[row]}  {results.texts[row]}")
    print(f"\nDone in {time.monotonic() - started:.1f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
