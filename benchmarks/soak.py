"""Soak (issue 7): 20,000 texts through every fault at once, default client settings.

    .venv/bin/python benchmarks/soak.py            # sync and async, about two minutes

The emulator (its own process) answers 5 % of requests with HTTP 500, drops 2 % of connections
without an answer, throttles beyond a cap of 3 requests in flight (below our concurrency) and
rejects, by content inspection (HTTP 400 ``DataInspectionFailed``), any request holding one of
3 poison texts (``--reject-marker``). Our client runs with its DEFAULT settings.

Reported per path (core sync and async): requests the emulator saw, billed (successful)
requests, retries (= requests - billed), 429s, 500s, resets, 400s, wall time; then, against a
clean run of the same texts on a fault-free emulator: vectors lost (``None`` where a good text
was) and misplaced or wrong (any difference from the clean vector) — both must be 0 — and
whether ``PartialEmbeddingError.failed`` names exactly the 3 poison indices.

Not a test: it is long and random by design. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import _harness as h
import numpy as np

from dashscope_embeddings import AsyncDashScopeClient, DashScopeClient, PartialEmbeddingError

MARKER = "__POISON__"


def embed(path: str, url: str, texts: list[str]) -> tuple[list[Any] | None, dict[int, Any], str]:
    """(vectors or None, failed index -> reason, outcome) of one default-settings call."""

    async def run_async() -> Any:
        async with AsyncDashScopeClient(h.KEY, base_url=url) as client:
            return await client.embed_texts(texts, model=h.MODEL)

    try:
        if path == "sync":
            with DashScopeClient(h.KEY, base_url=url) as client:
                result = client.embed_texts(texts, model=h.MODEL)
        else:
            result = asyncio.run(run_async())
        return list(result.embeddings), {}, "returned"
    except PartialEmbeddingError as exc:
        return list(exc.embeddings), dict(exc.failed), "PartialEmbeddingError"
    except Exception as exc:  # any other outcome is a finding: keep what it carried
        partial = getattr(exc, "partial", None)
        vectors = list(partial.embeddings) if partial is not None else None
        failed = dict(partial.failed) if partial is not None else {}
        return vectors, failed, f"{type(exc).__name__}: {str(exc)[:200]}"


def check(vectors: list[Any] | None, clean: np.ndarray, poison: set[int]) -> tuple[int, int]:
    """(lost, misplaced or wrong) among the good texts."""
    good = [i for i in range(len(clean)) if i not in poison]
    if vectors is None:
        return len(good), 0
    lost = sum(1 for i in good if vectors[i] is None)
    wrong = sum(
        1
        for i in good
        if vectors[i] is not None
        and not np.array_equal(np.asarray(vectors[i], dtype=np.float32), clean[i])
    )
    return lost, wrong


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=20_000)
    parser.add_argument("--error-rate", type=float, default=0.05)
    parser.add_argument("--reset-rate", type=float, default=0.02)
    parser.add_argument("--cap", type=int, default=3, help="emulator's max in flight")
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--poison", type=int, default=3)
    parser.add_argument("--paths", default="sync,async")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    texts = h.corpus(args.texts, words=(20, 60))
    poison = set(random.Random(args.seed).sample(range(args.texts), args.poison))
    for i in poison:
        texts[i] = f"{texts[i]} {MARKER}"

    print(f"clean run: {args.texts:,} texts, fault-free emulator", file=sys.stderr, flush=True)
    with h.EmulatorProcess(reject_marker="") as emu:
        vectors, failed, outcome = embed("sync", emu.native, texts)
    if vectors is None or failed or any(v is None for v in vectors):
        raise SystemExit(f"the clean run did not complete: {outcome}")
    clean = np.asarray(vectors, dtype=np.float32)
    del vectors

    rows, raw = [], {}
    for path in args.paths.split(","):
        print(f"soak: {path}", file=sys.stderr, flush=True)
        faults = {
            "latency": args.latency,
            "max_in_flight": args.cap,
            "error_rate": args.error_rate,
            "reset_rate": args.reset_rate,
            "reject_marker": MARKER,
            "seed": args.seed,
        }
        with h.EmulatorProcess(**faults) as emu:
            start = time.perf_counter()
            vectors, failed, outcome = embed(path, emu.native, texts)
            wall = time.perf_counter() - start
            stats = emu.stats()
        lost, wrong = check(vectors, clean, poison)
        by_status = stats["responses_by_status"]
        exact = set(failed) == poison
        raw[path] = {
            "outcome": outcome,
            "wall_s": wall,
            "failed": {str(k): str(v) for k, v in failed.items()},
            "poison": sorted(poison),
            "lost": lost,
            "misplaced_or_wrong": wrong,
            "emulator": stats,
        }
        print(f"  {json.dumps(raw[path], default=str)[:600]}", file=sys.stderr, flush=True)
        rows.append(
            [
                f"core {path}",
                outcome,
                stats["requests"],
                stats["billed_requests"],
                stats["requests"] - stats["billed_requests"],
                by_status.get("429", 0),
                by_status.get("500", 0),
                stats["resets"],
                by_status.get("400", 0),
                f"{wall:.1f}",
                f"{lost} {'✓' if lost == 0 else '✗'}",
                f"{wrong} {'✓' if wrong == 0 else '✗'}",
                f"{sorted(failed)} {'✓' if exact else '✗'}",
            ]
        )
    headers = [
        "path",
        "outcome",
        "requests",
        "billed",
        "retries (req - billed)",
        "429s",
        "500s",
        "resets",
        "400s",
        "wall s",
        "lost",
        "misplaced/wrong",
        "failed indices reported",
    ]
    lines = [
        f"Machine: {h.machine_line()}",
        "",
        f"## Soak: {args.texts:,} texts (text-embedding-v4, 1,024 dims), default client settings",
        "",
        f"Emulator: {args.error_rate:.0%} HTTP 500, {args.reset_rate:.0%} connection resets, "
        f"cap {args.cap} in flight (429 beyond), latency {args.latency * 1000:.0f} ms, "
        f"{args.poison} poison texts at indices {sorted(poison)} (HTTP 400 "
        f"DataInspectionFailed for any request holding one). At least "
        f"{math.ceil(args.texts / h.TEXTS_PER_REQUEST):,} requests are needed; 400s are the "
        "bisection that finds each poison text. Lost and misplaced/wrong are counted against a "
        "clean run of the same texts and must be 0.",
        "",
        h.markdown_table(headers, rows),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    if args.json:
        args.json.write_text(json.dumps(raw, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
