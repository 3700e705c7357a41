"""Throughput at the service's bound: our paths with default settings, a bare loop, old peers.

    .venv/bin/python benchmarks/throughput.py            # everything, a few minutes
    .venv/bin/python benchmarks/throughput.py --no-peers # ours and the reference only

The emulator (``_emulator_server.py``) runs in its own process with 100 ms latency and a cap of
8 requests in flight (beyond it: HTTP 429). Every measured run is a fresh child process
(``_paths.py``) embedding the same N = 2,000 documents with text-embedding-v4 (1,024
dimensions, the model's default); the emulator's counters are reset before each run, and its
vector cache is warmed once, so its own CPU stays small. Sections:

1. Main table: our core sync / async, our LangChain adapter (``embed_documents`` /
   ``aembed_documents``) and LlamaIndex adapter (``get_text_embedding_batch`` / ``aget_...``),
   all with DEFAULT settings; the reference (a bare httpx asyncio loop, 8 workers, 10-text
   native requests); the old integrations pointed at the same emulator. Texts/s, requests and
   429s seen by the emulator, its peak in flight, complete-and-in-order (every vector compared
   with the reference's) and the ratios to the reference and to the bound
   ``ceil(N / 10 / 8) x latency``.
2. Cap mismatch: the same emulator (cap 8), our client with ``max_concurrency=64``.
3. Client CPU at 0 ms latency (no cap): CPU time of the client process only, per text, ours vs
   the bare loop sending the same requests.
4. Peak RSS of ``DashScopeClient.embed_stream`` over 100,000 texts x 1,024 dims with numpy
   output, when the client has it.

Not a test: figures are for comparing runs on one machine. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

import _harness as h

PEERS = {
    "langchain_community": "langchain-community",
    "dashscope": "dashscope",
    "llama_index.embeddings.dashscope": "llama-index-embeddings-dashscope",
    "langchain_openai": "langchain-openai",
    "numpy": "numpy",
}

# (key, label) of the main table, in run order.
OURS = [
    ("core_sync", "ours: core `DashScopeClient.embed_texts`"),
    ("core_async", "ours: core `AsyncDashScopeClient.embed_texts`"),
    ("langchain_sync", "ours: LangChain `embed_documents`"),
    ("langchain_async", "ours: LangChain `aembed_documents`"),
    ("llama_index_sync", "ours: LlamaIndex `get_text_embedding_batch`"),
    ("llama_index_async", "ours: LlamaIndex `aget_text_embedding_batch`"),
]
PEER_PATHS = [
    ("community_sync", "langchain-community `DashScopeEmbeddings.embed_documents`"),
    ("community_async", "langchain-community `DashScopeEmbeddings.aembed_documents`"),
    ("llama_peer_sync", "llama-index-embeddings-dashscope `get_text_embedding_batch` (batch 10)"),
    ("llama_peer_async", "llama-index-embeddings-dashscope `aget_text_embedding_batch` (batch 10)"),
    ("openai_sync", "langchain-openai `OpenAIEmbeddings.embed_documents` (compatible mode)"),
    ("openai_async", "langchain-openai `OpenAIEmbeddings.aembed_documents` (compatible mode)"),
]
CPU_PATHS = ("core_sync", "core_async")  # the CPU target is about the core client
REFERENCE_LABEL = "reference: bare httpx asyncio loop, 8 workers"
EMULATOR_CPU_BOUND = 0.85  # share of one core the emulator used during a run


def missing_peers() -> list[str]:
    missing = []
    for module, package in PEERS.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(package)
    return missing


def compare(reference: Any, candidate_file: Path) -> str:
    """Complete-and-in-order: every vector equal (at float32 precision) to the reference's."""
    import numpy as np

    if not candidate_file.exists():
        return "no vectors"
    ref = reference.astype(np.float32)
    got = np.load(candidate_file).astype(np.float32)
    if got.shape[0] != ref.shape[0]:
        return f"no: {got.shape[0]} vectors for {ref.shape[0]} texts"
    if got.shape[1] != ref.shape[1]:
        return f"no: dimension {got.shape[1]}, expected {ref.shape[1]}"
    same = (got == ref).all(axis=1)
    if same.all():
        return "yes"
    missing = np.isnan(got).any(axis=1) & ~same
    where = {ref[i].tobytes(): i for i in range(ref.shape[0])}
    misplaced = sum(1 for i in np.flatnonzero(~same & ~missing) if got[i].tobytes() in where)
    wrong = int((~same).sum() - missing.sum() - misplaced)
    parts = [f"{misplaced} misplaced" if misplaced else "", f"{int(missing.sum())} missing"]
    parts += [f"{wrong} wrong" if wrong else ""]
    return "no: " + ", ".join(p for p in parts if p and not p.startswith("0 "))


class Runner:
    """Runs one path in a child process against an emulator and collects the figures."""

    def __init__(self, emu: h.EmulatorProcess, args: argparse.Namespace, scratch: Path) -> None:
        self.emu, self.args, self.scratch = emu, args, scratch

    def run(self, path: str, *, options: dict[str, Any] | None = None, tag: str = "") -> dict:
        out = self.scratch / f"{path}{tag}.npy"
        out.unlink(missing_ok=True)
        spec = {
            "path": path,
            "native": self.emu.native,
            "compatible": self.emu.compatible,
            "texts": self.args.texts,
            "out": str(out),
            "options": options or {},
        }
        env = {"DASHSCOPE_HTTP_BASE_URL": self.emu.native}  # the dashscope SDK (peers)
        self.emu.reset()
        before = self.emu.stats()
        result = h.run_child("_paths.py", spec, env=env, timeout=self.args.run_timeout)
        after = self.emu.stats()
        result.update(
            path=path,
            out=str(out),
            requests=after["requests"],
            status=after["responses_by_status"],
            throttled=after["throttled"],
            peak=after["peak_in_flight"],
            texts_ok=after["texts_ok"],
            max_per_request=after["max_texts_per_ok_request"],
            emulator_cpu_s=after["cpu_s"] - before["cpu_s"],
        )
        if result.get("timed_out"):
            result["elapsed_s"] = self.args.run_timeout
        print(f"  {path}{tag}: {summary(result)}", file=sys.stderr, flush=True)
        return result


def summary(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"error: {r['error']}"
    return (
        f"{r['elapsed_s']:.2f} s, {r['requests']} requests, {r['throttled']} x 429, "
        f"peak {r['peak']}{' (timed out)' if r.get('timed_out') else ''}"
    )


def texts_per_s(r: dict[str, Any], n: int) -> float:
    done = r["texts_ok"] if r.get("timed_out") else n
    return done / r["elapsed_s"] if r.get("elapsed_s") else 0.0


def notes(r: dict[str, Any], n: int) -> list[str]:
    out = []
    if r.get("timed_out"):
        out.append(
            f"stopped at the {r['elapsed_s']:.0f} s limit with {r['texts_ok']}/{n} texts "
            f"embedded; texts/s is that partial rate"
        )
    if r.get("requests") and r["requests"] != n // h.TEXTS_PER_REQUEST:
        out.append(f"max {r['max_per_request']} texts per request")
    share = r.get("emulator_cpu_s", 0) / r["elapsed_s"] if r.get("elapsed_s") else 0
    if share > EMULATOR_CPU_BOUND:
        out.append(f"EMULATOR CPU-BOUND ({share:.0%} of a core): the figure is the emulator's")
    if "cpu_s" in r and r.get("elapsed_s"):
        out.append(f"client CPU {r['cpu_s']:.2f} s")
    return out


def main_table(
    results: list[tuple[str, dict]], reference_s: float, bound: float, args: argparse.Namespace
) -> str:
    rows = []
    for label, r in results:
        if "error" in r:
            status = r.get("status", {})
            rows.append(
                [
                    label,
                    "-",
                    "-",
                    r.get("requests", "-"),
                    status.get("429", "-"),
                    r.get("peak", "-"),
                    "failed",
                    "-",
                    "-",
                    f"raised {r['error'][:200]}",
                ]
            )
            continue
        rate = texts_per_s(r, args.texts)
        vs_ref = rate / (args.texts / reference_s)
        vs_bound = rate / (args.texts / bound)
        is_ours = label.startswith("ours")
        target = ""
        if is_ours:
            target = " ✓" if vs_ref >= 0.9 else " ✗"
        rows.append(
            [
                label,
                f"{rate:,.0f}",
                f"{r['elapsed_s']:.2f}",
                r["requests"],
                r["status"].get("429", 0),
                r["peak"],
                r.get("complete", "-"),
                f"{vs_ref:.2f}{target}",
                f"{vs_bound:.2f}",
                "; ".join(notes(r, args.texts)),
            ]
        )
    headers = [
        "path",
        "texts/s",
        "wall s",
        "requests",
        "429s",
        "peak in flight",
        "complete & in order",
        "vs reference",
        "vs bound",
        "notes",
    ]
    return h.markdown_table(headers, rows)


def section_main(args: argparse.Namespace, scratch: Path, report: dict[str, Any]) -> list[str]:
    import numpy as np

    bound = h.bound_s(args.texts, args.cap, args.latency)
    lines = [
        f"## Throughput: N = {args.texts:,} texts, text-embedding-v4, emulator latency "
        f"{args.latency * 1000:.0f} ms, cap {args.cap} in flight (429 beyond)",
        "",
        f"Bound = ceil(N / 10 / {args.cap}) x {args.latency * 1000:.0f} ms = {bound:.2f} s "
        f"({args.texts / bound:,.0f} texts/s). ✓/✗: our default paths against the target "
        "(≥ 0.90 of the reference).",
        "",
    ]
    print(
        f"[1-2/4] throughput and cap mismatch (emulator latency {args.latency}s, cap {args.cap})",
        file=sys.stderr,
    )
    with h.EmulatorProcess(latency=args.latency, max_in_flight=args.cap) as emu:
        runner = Runner(emu, args, scratch)
        warm = runner.run("reference", tag="_warmup")  # fills the emulator's vector cache
        if "error" in warm:
            raise SystemExit(f"the reference loop failed: {warm['error']}")
        first = runner.run("reference")
        reference = np.load(first["out"])
        if np.isnan(reference).any():
            raise SystemExit("the reference loop returned incomplete vectors")
        ours = [(label, runner.run(key)) for key, label in OURS if key in args.paths]
        cap_rows = []
        for key in ("core_sync", "core_async"):
            if key in args.paths:
                cap_rows.append((key, runner.run(key, options={"max_concurrency": 64}, tag="_64")))
        again = runner.run("reference", tag="_again")
        peers = []
        if not args.no_peers:
            peers = [(label, runner.run(key)) for key, label in PEER_PATHS if key in args.paths]
        last = runner.run("reference", tag="_last")
    references = [("first", first), ("after ours", again), ("last", last)]
    reference_runs = [r["elapsed_s"] for _, r in references if "error" not in r]
    reference_s = statistics.median(reference_runs)
    results = [(f"{REFERENCE_LABEL} ({when})", r) for when, r in references]
    results += ours + peers
    for _, r in results + [(k, r) for k, r in cap_rows]:
        if "error" not in r:
            r["complete"] = (
                compare(reference, Path(r["out"])) if not r.get("timed_out") else "no: timed out"
            )
    lines.append(main_table(results, reference_s, bound, args))
    spread = max(reference_runs) / min(reference_runs) - 1
    lines += [
        "",
        "Reference wall times: "
        + ", ".join(f"{r['elapsed_s']:.2f} s {when}" for when, r in references if "error" not in r)
        + f"; ratios use their median, {reference_s:.2f} s."
        + (
            f" They spread by {spread:.0%}: the machine was busy, re-run on a quiet one."
            if spread > 0.10
            else ""
        ),
        "",
    ]
    report["main"] = {label: r for label, r in results}
    report["reference_s"] = reference_s
    report["bound_s"] = bound

    # Cap mismatch.
    lines += [
        f"## Cap mismatch: emulator cap {args.cap}, our `max_concurrency=64` (and defaults)",
        "",
        "Target: ≥ 0.85 of the reference and under 10 % of requests answered 429.",
        "",
    ]
    rows = []
    defaults = dict(ours)
    cap_table = [
        (label, "defaults", defaults[label])
        for key, label in OURS
        if key in ("core_sync", "core_async") and label in defaults
    ]
    names = dict(OURS)
    cap_table += [(names[k], "max_concurrency=64", r) for k, r in cap_rows]
    for label, setting, r in cap_table:
        if "error" in r:
            share = r["status"].get("429", 0) / max(r["requests"], 1)
            rows.append(
                [
                    label,
                    setting,
                    f"failed: raised {r['error'][:200]}",
                    r["requests"],
                    f"{r['status'].get('429', 0)} ({share:.0%})",
                    r["peak"],
                    "-",
                    "-",
                    "✗",
                ]
            )
            continue
        rate = texts_per_s(r, args.texts)
        vs_ref = rate / (args.texts / reference_s)
        share = r["status"].get("429", 0) / max(r["requests"], 1)
        ok = vs_ref >= 0.85 and share < 0.10
        rows.append(
            [
                label,
                setting,
                f"{rate:,.0f}",
                r["requests"],
                f"{r['status'].get('429', 0)} ({share:.0%})",
                r["peak"],
                r.get("complete", "-"),
                f"{vs_ref:.2f}",
                "✓" if ok else "✗",
            ]
        )
    headers = [
        "path",
        "settings",
        "texts/s",
        "requests",
        "429s (share)",
        "peak in flight",
        "complete & in order",
        "vs reference",
        "target",
    ]
    lines += [h.markdown_table(headers, rows), ""]
    report["cap_mismatch"] = {f"{label} [{setting}]": r for label, setting, r in cap_table}
    return lines


def section_cpu(args: argparse.Namespace, scratch: Path, report: dict[str, Any]) -> list[str]:
    print("[3/4] client CPU at 0 ms latency", file=sys.stderr)
    paths = [("reference", REFERENCE_LABEL)]
    paths += [(k, lbl) for k, lbl in OURS if k in args.paths and k in CPU_PATHS]
    cpu: dict[str, list[dict]] = {k: [] for k, _ in paths}
    with h.EmulatorProcess(latency=0) as emu:
        runner = Runner(emu, args, scratch)
        runner.run("reference", tag="_warmup")
        for _ in range(args.cpu_repeats):  # interleaved, so drift hits every path alike
            for key, _label in paths:
                cpu[key].append(runner.run(key, tag="_cpu"))
    ok = {k: [r for r in runs if "error" not in r] for k, runs in cpu.items()}
    base = statistics.median(r["cpu_s"] for r in ok["reference"]) / args.texts
    rows = []
    for key, label in paths:
        if not ok[key]:
            rows.append([label, "failed", "-", "-", "-", "-", cpu[key][0].get("error", "")[:160]])
            continue
        per_text = statistics.median(r["cpu_s"] for r in ok[key]) / args.texts
        wall = statistics.median(r["elapsed_s"] for r in ok[key])
        emu_share = statistics.median(r["emulator_cpu_s"] / r["elapsed_s"] for r in ok[key])
        ratio = per_text / base
        target = "" if key == "reference" else (" ✓" if ratio <= 0.8 else " ✗")
        note = f"emulator used {emu_share:.0%} of a core"
        if emu_share > EMULATOR_CPU_BOUND:
            note += ": the wall time is the emulator's, not the client's (CPU/text still holds)"
        rows.append(
            [
                label,
                f"{per_text * 1e6:,.0f}",
                f"{ratio:.2f}{target}",
                f"{wall:.2f}",
                ok[key][-1]["requests"],
                ok[key][-1]["peak"],
                note,
            ]
        )
    report["cpu"] = cpu
    headers = [
        "path",
        "client CPU µs/text",
        "vs bare loop",
        "wall s",
        "requests",
        "peak in flight",
        "notes",
    ]
    return [
        f"## Client CPU at 0 ms latency (N = {args.texts:,}, no cap, median of {args.cpu_repeats})",
        "",
        "CPU time of the client process only (`time.process_time()` around the call, every "
        "thread), the emulator in another process. Target: ≤ 0.8x the bare loop with the "
        "`fast` extra (orjson) installed.",
        "",
        h.markdown_table(headers, rows),
        "",
    ]


def section_stream(args: argparse.Namespace, report: dict[str, Any]) -> list[str]:
    print("[4/4] streaming peak RSS", file=sys.stderr)
    lines = [
        f"## Streaming: peak RSS over {args.stream_texts:,} texts x 1,024 dims, numpy output",
        "",
    ]
    with h.EmulatorProcess(latency=0) as emu:
        spec = {"path": "stream", "native": emu.native, "texts": args.stream_texts}
        before = emu.stats()
        r = h.run_child("_paths.py", spec, timeout=args.stream_timeout)
        stats = emu.stats()
    emulator_share = (stats["cpu_s"] - before["cpu_s"]) / r.get("elapsed_s", 1)
    report["stream"] = r
    if "error" in r or r.get("timed_out"):
        lines.append(f"Failed: {r.get('error', 'timed out')}")
    elif not r["available"]:
        lines.append("`DashScopeClient.embed_stream` is not available yet: nothing measured.")
        print("  streaming: not available yet", file=sys.stderr)
    else:
        ok = r["peak_rss_mb"] < 400 and r["texts"] == args.stream_texts
        in_order = r["sampled_in_order"] and r["parts_contiguous"]
        rows = [
            [
                "`DashScopeClient.embed_stream`",
                f"{r['texts']:,}",
                ",".join(map(str, r["dims"])),
                r["numpy_option"] or "none found (lists)",
                ",".join(r["row_types"]),
                f"{r['baseline_rss_mb']:.0f}",
                f"{r['peak_rss_mb']:.0f} {'✓' if ok else '✗'}",
                f"{r['elapsed_s']:.1f}",
                stats["requests"] - r["check_requests"],
                f"{'yes' if in_order else 'NO'} ({r['samples']} sampled)",
                f"{r['cpu_s'] / r['elapsed_s']:.0%} / {emulator_share:.0%} of a core",
            ]
        ]
        headers = [
            "path",
            "texts",
            "dims",
            "numpy option",
            "rows",
            "RSS before MB",
            "peak RSS MB",
            "wall s",
            "requests",
            "in order",
            "CPU client / emulator",
        ]
        lines += [
            "Emulator latency 0, no cap. The texts come from a generator; the consumer keeps "
            "nothing (checks each row's size and each part's start, keeps every 997th vector "
            "and compares those with `embed_texts` afterwards). Target: peak RSS < 400 MB.",
            "",
            h.markdown_table(headers, rows),
        ]
        print(f"  streaming: {r}", file=sys.stderr)
    return [*lines, ""]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--cap", type=int, default=8, help="emulator's max in flight")
    parser.add_argument("--no-peers", action="store_true", help="skip the old integrations")
    parser.add_argument(
        "--paths",
        default=",".join(k for k, _ in OURS + PEER_PATHS),
        help="comma-separated path keys to run (default: all)",
    )
    parser.add_argument("--run-timeout", type=float, default=30.0, help="seconds per run")
    parser.add_argument("--cpu-repeats", type=int, default=3)
    parser.add_argument("--stream-texts", type=int, default=100_000)
    parser.add_argument("--stream-timeout", type=float, default=300.0)
    parser.add_argument("--skip", default="", help="comma-separated: main,cpu,stream")
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    parser.add_argument("--json", type=Path, help="also write every raw figure to this file")
    args = parser.parse_args()
    args.paths = set(args.paths.split(","))
    skip = set(filter(None, args.skip.split(",")))

    missing = missing_peers()
    if "numpy" in missing or (missing and not args.no_peers):
        print(
            f"missing: {', '.join(missing)}. Install the peers with\n"
            "    .venv/bin/python -m pip install -r benchmarks/requirements.txt\n"
            "or run with --no-peers (numpy is needed either way).",
            file=sys.stderr,
        )
        return 2

    scratch = h.scratch_dir()
    report: dict[str, Any] = {"machine": h.machine_line()}
    lines = [f"Machine: {report['machine']}", ""]
    try:
        if "main" not in skip:
            lines += section_main(args, scratch, report)
        if "cpu" not in skip:
            lines += section_cpu(args, scratch, report)
        if "stream" not in skip:
            lines += section_stream(args, report)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
