"""The core client's own CPU cost per request, as a ratio to the cost of reading the answer.

No network: an ``httpx.MockTransport`` returns one canned native response (10 texts x 1024
floats, the largest text-embedding-v4 answer at the default dimension). The bound is the time
``json.loads`` alone takes on that body — work no client can skip. The figure is
``bound / measured`` per request (1.0 = the client adds nothing beyond parsing JSON).

    python benchmarks/client_overhead.py [--rounds 300] [--dimension 1024]

Not a test: machines are noisy. Compare runs on one machine.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time

import httpx

from dashscope_embeddings import DashScopeClient


def canned_body(texts: int, dimension: int) -> bytes:
    rng = random.Random(0)
    items = [
        {"embedding": [rng.uniform(-0.1, 0.1) for _ in range(dimension)], "text_index": i}
        for i in reversed(range(texts))
    ]
    body = {"output": {"embeddings": items}, "usage": {"total_tokens": 90}, "request_id": "r"}
    return json.dumps(body).encode()


def best_of(fn: object, rounds: int) -> float:
    """Median seconds per call of ``fn`` over ``rounds`` calls."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--dimension", type=int, default=1024)
    args = parser.parse_args()
    body = canned_body(10, args.dimension)
    transport = httpx.MockTransport(lambda _request: httpx.Response(200, content=body))
    texts = [f"text {i}" for i in range(10)]
    with DashScopeClient(
        "bench-key", base_url="http://127.0.0.1:9", http_client=httpx.Client(transport=transport)
    ) as client:
        client.embed_texts(texts, dimension=args.dimension)
        measured = best_of(lambda: client.embed_texts(texts, dimension=args.dimension), args.rounds)
    bound = best_of(lambda: json.loads(body), args.rounds)
    print(
        json.dumps(
            {
                "figure": "client_cpu_per_request_vs_json_parse_bound",
                "response_bytes": len(body),
                "bound_ms": round(bound * 1000, 3),
                "measured_ms": round(measured * 1000, 3),
                "ratio": round(bound / measured, 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
