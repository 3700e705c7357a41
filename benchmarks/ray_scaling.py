"""Ray scaling: rows/s and 429s with 1 to 8 actors on one account cap, vs one process.

    .venv/bin/python benchmarks/ray_scaling.py        # about 5 minutes on 2 cores
    .venv/bin/python benchmarks/ray_scaling.py --texts 4000 --modes "fleet adaptive (defaults),none"

The emulator (its own process) stands for one account: ``--cap`` requests in flight at most
(beyond it HTTP 429) and ``--latency`` seconds per request. The same ``--texts`` texts go
through:

* **one process**: ``DashScopeClient.embed_stream`` with default settings (the adaptive limiter
  finds the cap from the 429s);
* **Ray Data**, ``map_batches(DashScopeEmbedder, ActorPoolStrategy(size=N))`` for N in
  ``--actors``, in the ``--modes``:
  ``fleet adaptive (defaults)`` (nothing declared: the actors share one adaptive limit held
  by the quota actor), ``fleet quota`` (``max_concurrency=cap`` declared, shared through the
  quota actor: permits per request), ``1/N share`` (each actor's own fixed
  ``max_concurrency=cap // N``, no quota actor) and ``none`` (``quota_name=None``: each
  actor's default adaptive limiter alone).

Reported per run: rows/s, its ratio to the one-process path and to the bound
(``ceil(texts / 10 / cap) x latency``: nothing can be faster on that account), the requests,
429s (and their share of the requests) and peak in flight the emulator saw, and whether
every row came back with exactly the one-process vector. Ray's own fixed cost (starting the
actors, moving blocks) is measured with a no-op UDF on the same pipeline; the quota actor's
round trips are timed from the driver. Not a test; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import _harness as h
import numpy as np
import pyarrow as pa

# A one-machine Ray cluster on 127.0.0.1 (read by Ray when imported; on a real cluster,
# ray.init() joins it as usual).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import ray
import ray.data

from dashscope_embeddings import DashScopeClient
from dashscope_embeddings.ray import DashScopeEmbedder, fleet_quota_stats, remove_fleet_quota
from dashscope_embeddings.ray._quota import FleetQuota, QuotaLimits

MODES = ("fleet adaptive (defaults)", "fleet quota", "1/N share", "none")


class NoOp:
    """The same columns out, no embedding: what Ray's pipeline costs by itself."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension

    def __call__(self, batch: pa.Table) -> pa.Table:
        zeros = pa.array(np.zeros(batch.num_rows * self.dimension, dtype=np.float32))
        return batch.append_column(
            "embedding", pa.FixedSizeListArray.from_arrays(zeros, self.dimension)
        )


def pipeline(
    ds: Any, fn: Any, kwargs: dict[str, Any], actors: int, batch_size: int
) -> tuple[pa.Table, float]:
    started = time.perf_counter()
    out = ds.map_batches(
        fn,
        fn_constructor_kwargs=kwargs,
        compute=ray.data.ActorPoolStrategy(size=actors),
        batch_size=batch_size,
        batch_format="pyarrow",
        num_cpus=0.25,
    )
    table = pa.concat_tables(ray.get(out.to_arrow_refs()))
    return table, time.perf_counter() - started


def share(stats: dict[str, Any]) -> str:
    """The 429s' share of the requests the emulator saw."""
    throttled = stats["responses_by_status"].get("429", 0)
    return f"{throttled / max(1, stats['requests']):.1%}"


def check(table: pa.Table, reference: np.ndarray) -> str:
    """``yes`` when every row is there once with exactly the one-process vector."""
    table = table.sort_by("id")
    if table.column("id").to_pylist() != list(range(len(reference))):
        return "rows missing or repeated"
    column = table.column("embedding").combine_chunks()
    if column.null_count:
        return f"{column.null_count} null vectors"
    got = column.values.to_numpy(zero_copy_only=False).reshape(len(column), -1)
    wrong = int((got != reference).any(axis=1).sum())
    return "yes" if not wrong else f"{wrong} wrong vectors"


def round_trips(calls: int = 500) -> dict[str, float]:
    """Median milliseconds of a rate reservation and of a permit (acquire + release)."""
    quota = FleetQuota.connect(
        "bench-round-trip", QuotaLimits(rpm=10**9, tpm=10**12, max_concurrency=64)
    )
    reserve, permit = [], []
    for _ in range(calls):
        started = time.perf_counter()
        quota.reserve(1, 100)
        reserve.append(time.perf_counter() - started)
        started = time.perf_counter()
        quota.release(quota.acquire(60.0))
        permit.append(time.perf_counter() - started)
    quota.kill()
    return {
        "reserve_ms": statistics.median(reserve) * 1000,
        "permit_ms": statistics.median(permit) * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=8000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--cap", type=int, default=8, help="the account's requests in flight")
    parser.add_argument("--actors", default="1,2,4,8")
    parser.add_argument(
        "--modes", default=",".join(MODES), help=f"comma-separated, of: {', '.join(MODES)}"
    )
    parser.add_argument("--batch-size", type=int, default=400)
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    parser.add_argument("--json", type=Path, help="also write every raw figure to this file")
    args = parser.parse_args()
    actor_counts = [int(a) for a in args.actors.split(",")]
    modes = [m.strip() for m in args.modes.split(",")]
    if unknown := set(modes) - set(MODES):
        parser.error(f"unknown modes {sorted(unknown)}; choose from {', '.join(MODES)}")
    texts = h.corpus(args.texts, words=(10, 30))
    bound_s = h.bound_s(args.texts, args.cap, args.latency)
    report: dict[str, Any] = {"args": vars(args) | {"markdown": None, "json": None}}
    rows: list[list[Any]] = []

    with h.EmulatorProcess(latency=args.latency, max_in_flight=args.cap) as emu:
        print("warm-up and reference vectors...", file=sys.stderr)
        with DashScopeClient(h.KEY, base_url=emu.native, max_concurrency=args.cap) as client:
            reference = client.embed_texts(texts, model=h.MODEL).to_numpy()

        emu.reset()
        print("one process: embed_stream...", file=sys.stderr)
        with DashScopeClient(h.KEY, base_url=emu.native) as client:
            started = time.perf_counter()
            parts = list(client.embed_stream(texts, model=h.MODEL, numpy=True))
            single_s = time.perf_counter() - started
        single = emu.stats()
        ok = np.array_equal(np.concatenate([p.embeddings for p in parts]), reference)
        single_rate = args.texts / single_s
        report["single"] = {"seconds": single_s, "emulator": single, "exact": ok}
        rows.append(
            [
                "one process (embed_stream)",
                "-",
                "adaptive",
                f"{single_rate:,.0f}",
                "1.00",
                f"{single_rate / (args.texts / bound_s):.2f}",
                single["requests"],
                single["responses_by_status"].get("429", 0),
                share(single),
                single["peak_in_flight"],
                f"{single_s:.1f}",
                "yes" if ok else "NO",
            ]
        )

        os.environ["DASHSCOPE_API_KEY"] = h.KEY  # Ray's workers inherit it; no key in a pickle
        ray.init(
            num_cpus=max(actor_counts) + 2,  # logical: the actors wait on the network
            include_dashboard=False,
            log_to_driver=False,
            logging_level="ERROR",
        )
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        try:
            table = pa.table({"id": pa.array(range(args.texts), pa.int64()), "text": texts})
            blocks = max(actor_counts) * 4
            ds = ray.data.from_arrow(table).repartition(blocks).materialize()
            report["round_trips"] = round_trips()
            print(f"quota round trips: {report['round_trips']}", file=sys.stderr)
            noop: dict[int, float] = {}
            for actors in actor_counts:
                _, noop[actors] = pipeline(ds, NoOp, {"dimension": 1024}, actors, args.batch_size)
            report["noop_s"] = noop
            for actors in actor_counts:
                for mode in modes:
                    kwargs: dict[str, Any] = {"model": h.MODEL, "base_url": emu.native}
                    name = f"bench-{actors}-{MODES.index(mode)}"
                    if mode == "fleet adaptive (defaults)":
                        kwargs |= {"quota_name": name}
                    elif mode == "fleet quota":
                        kwargs |= {"max_concurrency": args.cap, "quota_name": name}
                    elif mode == "1/N share":
                        kwargs |= {
                            "max_concurrency": max(1, args.cap // actors),
                            "adaptive_concurrency": False,
                            "quota_name": None,
                        }
                    else:
                        kwargs |= {"quota_name": None}
                    emu.reset()
                    print(f"ray: {actors} actors, {mode}...", file=sys.stderr)
                    out, seconds = pipeline(ds, DashScopeEmbedder, kwargs, actors, args.batch_size)
                    stats = emu.stats()
                    quota = fleet_quota_stats(name) if mode.startswith("fleet") else None
                    if quota is not None:
                        remove_fleet_quota(name)
                    rate = args.texts / seconds
                    verdict = check(out, reference)
                    report.setdefault("ray", []).append(
                        {
                            "actors": actors,
                            "mode": mode,
                            "seconds": seconds,
                            "emulator": stats,
                            "quota": None if quota is None else dataclasses.asdict(quota),
                            "complete_and_exact": verdict,
                        }
                    )
                    rows.append(
                        [
                            "Ray Data map_batches",
                            actors,
                            mode,
                            f"{rate:,.0f}",
                            f"{rate / single_rate:.2f}",
                            f"{rate / (args.texts / bound_s):.2f}",
                            stats["requests"],
                            stats["responses_by_status"].get("429", 0),
                            share(stats),
                            stats["peak_in_flight"],
                            f"{seconds:.1f}",
                            verdict,
                        ]
                    )
            cpu_note = emu.stats()["cpu_s"]
        finally:
            ray.shutdown()

    headers = [
        "path",
        "actors",
        "account limit",
        "rows/s",
        "vs one process",
        "vs bound",
        "requests",
        "429s",
        "429 share",
        "peak in flight",
        "wall s",
        "every row, exact vector",
    ]
    trips = report["round_trips"]
    notes = [
        f"{args.texts:,} texts ({h.MODEL}, 10 per request), emulator latency "
        f"{args.latency * 1000:.0f} ms and a cap of {args.cap} requests in flight (beyond: 429); "
        f"bound {bound_s:.1f} s = {args.texts / bound_s:,.0f} rows/s; Ray batch_size "
        f"{args.batch_size}, {blocks} blocks, batch_format pyarrow.",
        "Ray's own cost, a no-op UDF on the same pipeline: "
        + ", ".join(f"{n} actor(s) {s:.1f} s" for n, s in noop.items())
        + " (actor start and block moves; included in every Ray row).",
        f"Quota actor round trips from a driver, median: reservation {trips['reserve_ms']:.2f} ms,"
        f" permit acquire + release {trips['permit_ms']:.2f} ms.",
        f"Emulator process CPU over the whole run: {cpu_note:.1f} s.",
        h.machine_line() + f", ray {ray.__version__}",
    ]
    text = h.markdown_table(headers, rows) + "\n\n" + "\n".join(f"- {n}" for n in notes)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
