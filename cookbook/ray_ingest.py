"""Ray Data ingest: ~5,000 texts from Parquet, embedded by 2 actors, to Parquet, into FAISS.

A local Ray cluster (``ray.init()`` on this machine) reads a generated corpus from Parquet,
embeds it with ``dashscope_embeddings.ray.DashScopeEmbedder`` on a pool of 2 actors that share
one account quota (``max_concurrency`` requests in flight for the whole fleet), writes Parquet
with a vector column, then loads the vectors into a FAISS index and answers one query.

Uses the real DashScope service when DASHSCOPE_API_KEY is set. Without a key it starts the
bundled emulator on 127.0.0.1 (a cap of 8 requests in flight, like an account's), which Ray's
worker processes on this machine reach over loopback.

    pip install "dashscope-embeddings[ray,faiss,emulator]"
    python cookbook/ray_ingest.py [--count 5000] [--actors 2] [--out DIR]
"""

# /// script
# requires-python = ">=3.10"
# dependencies = ["dashscope-embeddings[ray,faiss,emulator]"]
# ///

from __future__ import annotations

import argparse
import contextlib
import os
import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

# A one-machine Ray cluster on 127.0.0.1 (read by Ray when imported; on a real cluster,
# ray.init() joins it as usual).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import ray
import ray.data

from dashscope_embeddings import DashScopeClient
from dashscope_embeddings.ray import DashScopeEmbedder, fleet_quota_stats

MODEL = "text-embedding-v4"
TOPICS = ["refund", "shipping", "warranty", "invoice", "password", "delivery", "coupon"]
ASPECTS = ["policy", "delay", "form", "deadline", "reset", "tracking", "limit", "exception"]
CHANNELS = ["web shop", "mobile app", "call centre", "partner store", "marketplace"]
QUERY = "how do I track a late delivery from the mobile app"


def write_corpus(folder: Path, count: int, *, files: int = 10) -> None:
    """``count`` generated support notes with an id, in ``files`` Parquet files (deterministic).

    A corpus in several files is read as several blocks, which the actors share.
    """
    rng = random.Random(11)
    texts = []
    for i in range(count):
        topic, aspect, channel = rng.choice(TOPICS), rng.choice(ASPECTS), rng.choice(CHANNELS)
        texts.append(f"Note {i}: {topic} {aspect} for orders placed in the {channel}.")
    table = pa.table({"id": pa.array(range(count), pa.int64()), "text": texts})
    folder.mkdir(parents=True, exist_ok=True)
    step = -(-count // files)
    for part, start in enumerate(range(0, count, step)):
        pq.write_table(table.slice(start, step), folder / f"part-{part:03d}.parquet")


@contextlib.contextmanager
def service() -> Iterator[tuple[str, object | None]]:
    """The real service (the key is in the environment), or the emulator, started here.

    Ray's workers read ``DASHSCOPE_API_KEY`` / ``DASHSCOPE_BASE_URL`` from the environment they
    start with, so both are set before ``ray.init()``; the key never travels in a pickle.
    """
    if os.environ.get("DASHSCOPE_API_KEY"):
        yield "the DashScope service", None
        return
    from dashscope_embeddings.emulator import Emulator

    with Emulator(api_key="emulator-key", latency=0.02, max_in_flight=8) as emu:
        os.environ["DASHSCOPE_API_KEY"] = "emulator-key"
        os.environ["DASHSCOPE_BASE_URL"] = emu.url
        yield f"the bundled emulator at {emu.url} (lexical vectors, not model quality)", emu


def vectors_of(table: pa.Table, column: str) -> np.ndarray:
    """A ``fixed_size_list<float>`` column as one float32 matrix (its rows must all be set)."""
    array = table.column(column).combine_chunks()
    return array.values.to_numpy(zero_copy_only=False).reshape(len(array), -1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--dimension", type=int, default=256)
    parser.add_argument("--max-concurrency", type=int, default=8, help="for the whole fleet")
    parser.add_argument(
        "--out", type=Path, default=None, help="keep the Parquet files here (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        out = args.out or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        return run(args, out)


def run(args: argparse.Namespace, out: Path) -> int:
    """Write the corpus under ``out``, embed it on Ray, index the vectors, answer a query."""
    out.mkdir(parents=True, exist_ok=True)
    corpus, vectors_dir = out / "corpus", out / "vectors"
    write_corpus(corpus, args.count)

    with service() as (where, emulator):
        print(f"Embedding {args.count:,} texts from {corpus}/ with {args.actors} actors on {where}")
        ray.init(include_dashboard=False, logging_level="WARNING")
        ray.data.DataContext.get_current().enable_progress_bars = False
        try:
            started = time.monotonic()
            ds = ray.data.read_parquet(str(corpus))
            # A corpus this small is read as one block, which only one actor would get; cut it
            # so that every actor has work (a large corpus is read in many blocks anyway).
            ds = ds.repartition(args.actors * 5).map_batches(
                DashScopeEmbedder,
                fn_constructor_kwargs={
                    "model": MODEL,
                    "dimension": args.dimension,
                    "key_column": "id",
                    "on_error": "skip",  # a rejected text: null vector, reason in embedding_error
                    "max_concurrency": args.max_concurrency,  # the account's, shared by the fleet
                    "quota_name": "ray-ingest",
                },
                compute=ray.data.ActorPoolStrategy(size=args.actors),
                batch_size=200,
                batch_format="pyarrow",
                num_cpus=0.25,  # it waits on the network: leave CPUs to read and write
            )
            ds.write_parquet(str(vectors_dir))
            elapsed = time.monotonic() - started
            quota = fleet_quota_stats("ray-ingest")
        finally:
            ray.shutdown()
        print(f"Wrote {vectors_dir}/ in {elapsed:.1f}s ({args.count / elapsed:,.0f} rows/s)")
        if quota is not None:
            print(
                f"Fleet quota: {quota.processes} actors, {quota.permits_granted} requests, at "
                f"most {quota.peak_in_flight} in flight (cap {args.max_concurrency}), "
                f"{quota.permit_waits} waited for a permit"
            )
        if emulator is not None:
            stats = emulator.stats  # type: ignore[attr-defined]
            print(f"Emulator: {stats.requests} requests, {stats.throttled} answered 429")

        table = pq.read_table(vectors_dir).sort_by("id")
        failed = table.filter(table.column("embedding").is_null())
        if failed.num_rows:
            print(f"{failed.num_rows} rows got no vector, e.g.: {failed.slice(0, 1).to_pylist()}")
        table = table.filter(table.column("embedding").is_valid())
        vectors = vectors_of(table, "embedding")
        assert table.num_rows == args.count - failed.num_rows
        index = faiss.IndexIDMap(faiss.IndexFlatIP(vectors.shape[1]))
        index.add_with_ids(vectors, table.column("id").to_numpy())
        print(f"FAISS index: {index.ntotal:,} vectors of {vectors.shape[1]} dimensions")

        with DashScopeClient() as client:
            query = client.embed_texts(
                [QUERY], model=MODEL, dimension=args.dimension, text_type="query"
            ).to_numpy()
        scores, ids = index.search(query, 3)
        texts = dict(
            zip(table.column("id").to_pylist(), table.column("text").to_pylist(), strict=True)
        )
        print(f"Query: {QUERY!r}")
        for score, row in zip(scores[0], ids[0], strict=True):
            print(f"  {score:.3f}  {texts[int(row)]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
