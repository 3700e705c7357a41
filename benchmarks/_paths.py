"""One embedding path, run in a fresh process: ``python benchmarks/_paths.py --child '<json>'``.

The parent (``throughput.py``) starts one child per measured run, so every client starts cold
in its own interpreter (own GIL, no threads or pools left by an earlier run), and the emulator
runs in yet another process. The child builds the corpus itself (deterministic), builds the
client outside the timer, times the one call that embeds everything (wall and process CPU
time, every thread), saves the vectors as ``.npy`` (``NaN`` rows where a path returned
``None`` or an empty vector) and prints one JSON line.

Spec keys: ``path``, ``native``, ``compatible`` (emulator bases), ``texts`` (N), ``out``
(``.npy`` file or ``""``), ``options`` (extra client settings, e.g. ``{"max_concurrency": 64}``).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import math
import os
import resource
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import _harness as h

Vectors = Any  # list[list[float] | None] or a numpy array


# --- the reference: a bare httpx asyncio loop, 8 workers, 10-text native requests ----------


def reference(spec: dict[str, Any], texts: list[str]) -> Callable[[], Vectors]:
    import httpx

    url = f"{spec['native']}/services/embeddings/text-embedding/text-embedding"
    workers = int(spec.get("workers", 8))
    headers = {"Authorization": f"Bearer {h.KEY}"}

    async def run() -> Vectors:
        out: list[Any] = [None] * len(texts)
        starts = iter(range(0, len(texts), h.TEXTS_PER_REQUEST))
        limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
        async with httpx.AsyncClient(timeout=60, limits=limits, trust_env=False) as http:

            async def worker() -> None:
                for start in starts:  # a shared iterator: each start is taken once
                    chunk = texts[start : start + h.TEXTS_PER_REQUEST]
                    body = {
                        "model": h.MODEL,
                        "input": {"texts": chunk},
                        "parameters": {"text_type": "document"},
                    }
                    while True:
                        response = await http.post(url, json=body, headers=headers)
                        if response.status_code != 429:  # only throttling is waited out
                            break
                        await asyncio.sleep(0.01)
                    response.raise_for_status()
                    for item in response.json()["output"]["embeddings"]:
                        out[start + item["text_index"]] = item["embedding"]

            await asyncio.gather(*(worker() for _ in range(workers)))
        return out

    return lambda: asyncio.run(run())


# --- ours ------------------------------------------------------------------------------------


def core_sync(spec: dict[str, Any], texts: list[str]) -> Callable[[], Vectors]:
    from dashscope_embeddings import DashScopeClient

    client = DashScopeClient(h.KEY, base_url=spec["native"], **spec.get("options", {}))
    return lambda: client.embed_texts(texts, model=h.MODEL).embeddings


def core_async(spec: dict[str, Any], texts: list[str]) -> Callable[[], Vectors]:
    from dashscope_embeddings import AsyncDashScopeClient

    async def run() -> Vectors:
        client = AsyncDashScopeClient(h.KEY, base_url=spec["native"], **spec.get("options", {}))
        async with client:
            return (await client.embed_texts(texts, model=h.MODEL)).embeddings

    return lambda: asyncio.run(run())


def _ours_langchain(spec: dict[str, Any]) -> Any:
    from dashscope_embeddings.langchain import DashScopeEmbeddings

    return DashScopeEmbeddings(
        model=h.MODEL, api_key=h.KEY, base_url=spec["native"], **spec.get("options", {})
    )


def _ours_llama_index(spec: dict[str, Any]) -> Any:
    from dashscope_embeddings.llama_index import DashScopeEmbedding

    fields = getattr(DashScopeEmbedding, "model_fields", {})
    model_arg = "model_name" if "model_name" in fields else "model"
    options = {model_arg: h.MODEL, "api_key": h.KEY, "base_url": spec["native"]}
    return DashScopeEmbedding(**options, **spec.get("options", {}))


def langchain_sync(spec: dict[str, Any], texts: list[str]) -> Callable[[], Vectors]:
    embeddings = _ours_langchain(spec)
    return lambda: embeddings.embed_documents(texts)


def langchain_async(spec: dict[str, Any], texts: list[str]) -> Callable[[], Vectors]:
    embeddings = _ours_langchain(spec)
    return lambda: asyncio.run(embeddings.aembed_documents(texts))


def llama_index_sync(spec: dict[str, Any], texts: list[str]) -> Callable[[], Vectors]:
    embedding = _ours_llama_index(spec)
    return lambda: embedding.get_text_embedding_batch(texts)


def llama_index_async(spec: dict[str, Any], texts: list[str]) -> Callable[[], Vectors]:
    embedding = _ours_llama_index(spec)
    return lambda: asyncio.run(embedding.aget_text_embedding_batch(texts))


# --- the old integrations (peers) -------------------------------------------------------------
# The dashscope SDK reads DASHSCOPE_HTTP_BASE_URL when it is imported: the parent sets it to the
# emulator's native base in this child's environment.


def _community() -> Any:
    from langchain_community.embeddings import DashScopeEmbeddings

    return DashScopeEmbeddings(model=h.MODEL, dashscope_api_key=h.KEY)


def community_sync(_spec: dict[str, Any], texts: list[str]) -> Callable[[], Vectors]:
    embeddings = _community()
    return lambda: embeddings.embed_documents(texts)


def community_async(_spec: dict[str, Any], texts: list[str]) -> Callable[[], Vectors]:
    embeddings = _community()
    return lambda: asyncio.run(embeddings.aembed_documents(texts))


def _llama_peer() -> Any:
    from llama_index.embeddings.dashscope import DashScopeEmbedding

    # embed_batch_size=10: its default of 25 is over text-embedding-v4's 10 texts per request.
    return DashScopeEmbedding(model_name=h.MODEL, api_key=h.KEY, embed_batch_size=10)


def llama_peer_sync(_spec: dict[str, Any], texts: list[str]) -> Callable[[], Vectors]:
    embedding = _llama_peer()
    return lambda: embedding.get_text_embedding_batch(texts)


def llama_peer_async(_spec: dict[str, Any], texts: list[str]) -> Callable[[], Vectors]:
    embedding = _llama_peer()
    return lambda: asyncio.run(embedding.aget_text_embedding_batch(texts))


def _openai(spec: dict[str, Any]) -> Any:
    from langchain_openai import OpenAIEmbeddings

    return OpenAIEmbeddings(
        model=h.MODEL,
        base_url=spec["compatible"],
        api_key=h.KEY,
        check_embedding_ctx_length=False,  # no tiktoken (and no download) for a non-OpenAI model
        chunk_size=10,
    )


def openai_sync(spec: dict[str, Any], texts: list[str]) -> Callable[[], Vectors]:
    embeddings = _openai(spec)
    return lambda: embeddings.embed_documents(texts)


def openai_async(spec: dict[str, Any], texts: list[str]) -> Callable[[], Vectors]:
    embeddings = _openai(spec)
    return lambda: asyncio.run(embeddings.aembed_documents(texts))


PATHS: dict[str, Callable[[dict[str, Any], list[str]], Callable[[], Vectors]]] = {
    "reference": reference,
    "core_sync": core_sync,
    "core_async": core_async,
    "langchain_sync": langchain_sync,
    "langchain_async": langchain_async,
    "llama_index_sync": llama_index_sync,
    "llama_index_async": llama_index_async,
    "community_sync": community_sync,
    "community_async": community_async,
    "llama_peer_sync": llama_peer_sync,
    "llama_peer_async": llama_peer_async,
    "openai_sync": openai_sync,
    "openai_async": openai_async,
}


def save_vectors(vectors: Vectors, out: str) -> tuple[int, int]:
    """Write ``vectors`` as an (N, D) float64 ``.npy``; NaN rows for missing ones."""
    import numpy as np

    rows = list(vectors)
    dims = {len(v) for v in rows if v is not None and len(v)}
    dim = max(dims, default=0)
    array = np.full((len(rows), dim), np.nan)
    for i, v in enumerate(rows):
        if v is not None and len(v) == dim:
            array[i] = v
    if out:
        np.save(out, array)
    return len(rows), dim


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- streaming: peak RSS over a big input -----------------------------------------------------

_NUMPY_OPTIONS = (
    ("output", "numpy"),
    ("output_format", "numpy"),
    ("format", "numpy"),
    ("as_numpy", True),
    ("numpy", True),
    ("return_numpy", True),
    ("dtype", "float32"),
)


def _stream_rows(item: Any) -> Iterator[Any]:
    """The vectors in one item the stream yielded (a vector, a batch, a result, a pair)."""
    for name in ("embeddings", "vectors", "embedding", "vector"):
        if hasattr(item, name) and not isinstance(item, (list, tuple)):
            item = getattr(item, name)
            break
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], int):
        item = item[1]  # (index, vector)
    shape = getattr(item, "shape", None)
    if shape is not None and len(shape) == 2:
        yield from item
    elif shape is not None or (isinstance(item, list) and item and isinstance(item[0], float)):
        yield item
    else:
        for row in item:
            yield from _stream_rows(row)


def stream(spec: dict[str, Any]) -> dict[str, Any]:
    """Peak RSS of ``DashScopeClient.embed_stream`` over N texts, numpy output when offered."""
    import numpy as np

    from dashscope_embeddings import DashScopeClient

    if not hasattr(DashScopeClient, "embed_stream"):
        return {"available": False}
    n = int(spec["texts"])
    words = (8, 24)  # shorter texts than the throughput corpus: the emulator computes 100k
    params = inspect.signature(DashScopeClient.embed_stream).parameters
    kwargs: dict[str, Any] = {"model": h.MODEL}
    numpy_option = next(((k, v) for k, v in _NUMPY_OPTIONS if k in params), None)
    if numpy_option is not None:
        kwargs[numpy_option[0]] = numpy_option[1]
    sample_every = 997
    samples: dict[int, Any] = {}
    count = 0
    dims: set[int] = set()
    kinds: set[str] = set()
    contiguous = True  # each part's ``start`` (when it has one) is where the last one ended
    with DashScopeClient(h.KEY, base_url=spec["native"]) as client:
        texts = (h.document(i, words=words) for i in range(n))  # never held as a list
        baseline = rss_mb()
        start, start_cpu = time.perf_counter(), time.process_time()
        for item in client.embed_stream(texts, **kwargs):
            start_at = getattr(item, "start", count)
            contiguous = contiguous and start_at == count
            for row in _stream_rows(item):
                kinds.add(f"{type(row).__name__} {getattr(row, 'dtype', '')}".strip())
                dims.add(len(row))
                if count % sample_every == 0:
                    samples[count] = np.asarray(row, dtype=np.float64)
                count += 1
        elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        peak = rss_mb()
        # In order: the sampled positions match a plain embed_texts of the same texts.
        indices = sorted(samples)
        check = client.embed_texts([h.document(i, words=words) for i in indices], model=h.MODEL)
        in_order = all(
            np.allclose(samples[i], np.asarray(v, dtype=np.float64), rtol=0, atol=1e-6)
            for i, v in zip(indices, check.embeddings, strict=True)
        )
    return {
        "available": True,
        "numpy_option": f"{numpy_option[0]}={numpy_option[1]!r}" if numpy_option else None,
        "texts": count,
        "dims": sorted(dims),
        "row_types": sorted(kinds),
        "elapsed_s": elapsed,
        "cpu_s": cpu,
        "baseline_rss_mb": baseline,
        "peak_rss_mb": peak,
        "sampled_in_order": in_order,
        "parts_contiguous": contiguous,
        "samples": len(indices),
        "check_requests": math.ceil(len(indices) / h.TEXTS_PER_REQUEST),
    }


def child(spec: dict[str, Any]) -> dict[str, Any]:
    if spec["path"] == "stream":
        return stream(spec)
    texts = h.corpus(int(spec["texts"]))
    call = PATHS[spec["path"]](spec, texts)
    start_cpu, start = time.process_time(), time.perf_counter()
    vectors = call()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    count, dim = save_vectors(vectors, spec.get("out", ""))
    return {"elapsed_s": elapsed, "cpu_s": cpu, "count": count, "dim": dim, "rss_mb": rss_mb()}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", required=True)
    spec = json.loads(parser.parse_args().child)
    result = child(spec)
    sys.stdout.flush()
    print(json.dumps(result), flush=True)
    os._exit(0)  # a path may leave non-daemon threads behind: the figures are already out


if __name__ == "__main__":
    sys.exit(main())
