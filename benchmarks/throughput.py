"""Throughput of the core client against the emulator, as a ratio to the physical bound.

The emulator runs in its own process on 127.0.0.1 with a fixed latency per request. With
``max_concurrency`` C, R requests and latency L, no client can finish faster than
``ceil(R / C) * L`` seconds: that is the bound. The figure reported is ``bound / measured``
(1.0 = the client adds nothing; 0.5 = it takes twice the bound). A second figure is the client's
own overhead per request with zero latency, in milliseconds.

    python benchmarks/throughput.py [--texts N] [--latency S] [--concurrency C] [--dimension D]

The default dimension is small so that the emulator's own vector arithmetic (pure Python, one
core) does not become the bottleneck being measured; the figure is about scheduling.

Not a test: machines are noisy. Read the ratios, compare runs on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import subprocess
import sys
import time
from collections.abc import Iterator

from dashscope_embeddings import AsyncDashScopeClient, DashScopeClient

KEY = "bench-key"


@contextlib.contextmanager
def emulator(latency: float) -> Iterator[str]:
    """An emulator in a child process; yields its URL."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dashscope_embeddings.emulator",
            "--port",
            "0",
            "--api-key",
            KEY,
            "--latency",
            str(latency),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        native = next(w for w in line.split() if w.startswith("http://127.0.0.1"))
        yield native.removesuffix("/api/v1")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def texts_for(n: int) -> list[str]:
    return [f"benchmark text {i} with a few more words to embed" for i in range(n)]


def run_sync(url: str, texts: list[str], concurrency: int, dimension: int) -> float:
    with DashScopeClient(KEY, base_url=url, max_concurrency=concurrency) as client:
        client.embed_texts(texts[:10], dimension=dimension)  # warm the connection pool
        start = time.perf_counter()
        result = client.embed_texts(texts, dimension=dimension)
        elapsed = time.perf_counter() - start
    assert result.embeddings is not None and len(result.embeddings) == len(texts)
    return elapsed


def run_async(url: str, texts: list[str], concurrency: int, dimension: int) -> float:
    async def go() -> float:
        async with AsyncDashScopeClient(KEY, base_url=url, max_concurrency=concurrency) as client:
            await client.embed_texts(texts[:10], dimension=dimension)
            start = time.perf_counter()
            result = await client.embed_texts(texts, dimension=dimension)
            elapsed = time.perf_counter() - start
        assert result.embeddings is not None and len(result.embeddings) == len(texts)
        return elapsed

    return asyncio.run(go())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--dimension", type=int, default=64)
    args = parser.parse_args()
    texts = texts_for(args.texts)
    requests = math.ceil(args.texts / 10)  # text-embedding-v4: 10 texts per request
    bound = math.ceil(requests / args.concurrency) * args.latency
    report = []
    with emulator(args.latency) as url:
        for name, run in (("sync", run_sync), ("async", run_async)):
            elapsed = run(url, texts, args.concurrency, args.dimension)
            report.append(
                {
                    "figure": f"{name}_throughput_vs_latency_bound",
                    "requests": requests,
                    "bound_s": round(bound, 3),
                    "measured_s": round(elapsed, 3),
                    "ratio": round(bound / elapsed, 3),
                }
            )
    with emulator(0.0) as url:
        for name, run in (("sync", run_sync), ("async", run_async)):
            elapsed = run(url, texts, args.concurrency, args.dimension)
            report.append(
                {
                    "figure": f"{name}_overhead_ms_per_request_zero_latency",
                    "requests": requests,
                    "value": round(elapsed / requests * 1000, 3),
                }
            )
    for row in report:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
