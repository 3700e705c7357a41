"""The core client's own CPU cost per request, as a ratio to the cost of reading the answer.

No network: an ``httpx.MockTransport`` returns one canned native response (10 texts x 1024
floats, the largest text-embedding-v4 answer at the default dimension). The bound is the time
``json.loads`` alone takes on that body — what a bare loop with the standard library spends on
it. The figure is ``bound / measured`` per request (1.0 = the client costs what parsing the
answer with ``json`` costs; above 1.0 with the ``fast`` extra, whose decoder is faster).
``decoder`` names the one the client used, ``decode_ms`` its time alone on the body.

``--numpy`` also times the ways to make the answer's vectors one float32 array (what
``embed_stream(numpy=True)`` does per part): ``numpy.asarray`` of the lists, ``numpy.fromiter``
row by row or over the chained rows; all give the same bytes.

``--emulator N`` measures, instead, the client's CPU per text at 0 ms latency against the bundled
emulator in another process, warm: one call first (connections, the tokenizer's vocabulary and
lazy imports load there), then N rounds of 2,000 texts, ours sync and async interleaved with the
bare httpx + stdlib-json loop of ``throughput.py``; medians and ratios to the loop. (The CPU
section of ``throughput.py`` times the first call of a fresh process instead, load included.)

    python benchmarks/client_overhead.py [--rounds 300] [--dimension 1024] [--numpy]
    python benchmarks/client_overhead.py --emulator 5

Not a test: machines are noisy. Compare runs on one machine.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time

import httpx

from dashscope_embeddings import DashScopeClient, _transport


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


def numpy_ways(body: bytes, rounds: int) -> dict[str, float]:
    """Milliseconds per answer to make its vectors one float32 array, by each way."""
    import itertools

    import numpy as np

    items = json.loads(body)["output"]["embeddings"]
    vectors = [item["embedding"] for item in items]
    rows, size = len(vectors), len(vectors[0])

    def fromiter_rows() -> object:
        out = np.empty((rows, size), dtype=np.float32)
        for i, vector in enumerate(vectors):
            out[i] = np.fromiter(vector, dtype=np.float32, count=size)
        return out

    ways = {
        "asarray": lambda: np.asarray(vectors, dtype=np.float32),
        "array": lambda: np.array(vectors, dtype=np.float32),
        "fromiter_rows": fromiter_rows,
        "fromiter_chain": lambda: np.fromiter(
            itertools.chain.from_iterable(vectors), dtype=np.float32, count=rows * size
        ).reshape(rows, size),
    }
    expected = np.asarray(vectors, dtype=np.float32).tobytes()
    for name, way in ways.items():
        if way().tobytes() != expected:  # type: ignore[attr-defined]
            raise AssertionError(f"{name} gives other float32 values")
    return {name: round(best_of(way, rounds) * 1000, 3) for name, way in ways.items()}


def warm_cpu(rounds: int, texts_count: int = 2000) -> dict[str, object]:
    """CPU µs per text of the bare loop and of ours, after a first call; medians of ``rounds``."""
    import statistics

    import _harness as h
    import _paths as p

    texts = h.corpus(texts_count)
    with h.EmulatorProcess(latency=0.0) as emulator:
        spec = {"native": emulator.native}
        runs = {key: p.PATHS[key](spec, texts) for key in ("reference", "core_sync", "core_async")}
        for run in runs.values():
            run()
        cpu: dict[str, list[float]] = {key: [] for key in runs}
        for _ in range(rounds):  # interleaved, so drift hits every path alike
            for key, run in runs.items():
                start = time.process_time()
                run()
                cpu[key].append((time.process_time() - start) / texts_count * 1e6)
    median = {key: statistics.median(values) for key, values in cpu.items()}
    return {
        "figure": "warm_client_cpu_us_per_text_at_0ms",
        "rounds": rounds,
        "us_per_text": {key: round(value) for key, value in median.items()},
        "vs_bare_loop": {
            key: round(value / median["reference"], 2)
            for key, value in median.items()
            if key != "reference"
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--dimension", type=int, default=1024)
    parser.add_argument("--numpy", action="store_true", help="also time float32 conversions")
    parser.add_argument("--emulator", type=int, default=0, metavar="ROUNDS")
    args = parser.parse_args()
    if args.emulator:
        print(json.dumps(warm_cpu(args.emulator)))
        return 0
    body = canned_body(10, args.dimension)
    transport = httpx.MockTransport(lambda _request: httpx.Response(200, content=body))
    texts = [f"text {i}" for i in range(10)]
    with DashScopeClient(
        "bench-key", base_url="http://127.0.0.1:9", http_client=httpx.Client(transport=transport)
    ) as client:
        client.embed_texts(texts, dimension=args.dimension)
        measured = best_of(lambda: client.embed_texts(texts, dimension=args.dimension), args.rounds)
    bound = best_of(lambda: json.loads(body), args.rounds)
    decode = best_of(lambda: _transport.decode_json(body), args.rounds)
    fast = _transport._fast_loads
    decoder = "orjson" if fast is not None else "json"
    figures: dict[str, object] = {
        "figure": "client_cpu_per_request_vs_json_parse_bound",
        "response_bytes": len(body),
        "decoder": decoder,
        "decode_ms": round(decode * 1000, 3),
        "bound_ms": round(bound * 1000, 3),
        "measured_ms": round(measured * 1000, 3),
        "ratio": round(bound / measured, 3),
    }
    if args.numpy:
        figures["float32_ms"] = numpy_ways(body, args.rounds)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
