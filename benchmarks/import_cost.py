"""Import cost: what ``dashscope_embeddings`` adds on top of a framework app's own imports.

    .venv/bin/python benchmarks/import_cost.py [--runs 5]

Each figure comes from fresh interpreters run with ``python -X importtime``: the framework app's
import statements run first, then a marker is written to stderr, then our import. Everything
imported after the marker is what our import adds (our modules plus any dependency the framework
had not already loaded); the median over ``--runs`` processes is reported (after one discarded
warm-up run, which also writes the ``.pyc`` files). A wall-clock figure (``time.perf_counter()``
around the same import, without ``-X importtime``, whose own bookkeeping inflates the per-module
numbers) is given beside it.

A framework app is what an application using the framework has imported: for LangChain the
``Embeddings`` and ``VectorStore`` classes (``langchain_core.embeddings`` and
``langchain_core.vectorstores`` are lazy packages that load their classes on first access,
so a bare ``import`` of them loads almost nothing; that row is measured too), for LlamaIndex
``llama_index.core``. Ours is the import an application writes: the adapter class.

Target: each adapter adds at most 60 ms on top of its framework app (median of 5).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import _harness as h

MARK = "@@BENCH-MARK@@"

TARGET_MS = 60

LANGCHAIN_APP = [
    "from langchain_core.embeddings import Embeddings",
    "from langchain_core.vectorstores import VectorStore",
]
LLAMA_INDEX_APP = ["import llama_index.core"]

# (label, the framework app's import statements run first, our import statement)
CASES = [
    ("core `dashscope_embeddings`", [], "import dashscope_embeddings"),
    (
        "core `DashScopeClient` (loads httpx and the transport)",
        [],
        "from dashscope_embeddings import DashScopeClient",
    ),
    (
        "LangChain adapter, in a LangChain app",
        LANGCHAIN_APP,
        "from dashscope_embeddings.langchain import DashScopeEmbeddings",
    ),
    (
        "LangChain adapter, after bare `import` of the two lazy packages (loads `Embeddings`)",
        ["import langchain_core.embeddings", "import langchain_core.vectorstores"],
        "from dashscope_embeddings.langchain import DashScopeEmbeddings",
    ),
    (
        "LlamaIndex adapter, in a LlamaIndex app",
        LLAMA_INDEX_APP,
        "from dashscope_embeddings.llama_index import DashScopeEmbedding",
    ),
]


def parse(stderr: str) -> dict[str, Any]:
    """Framework and ours (ms) from ``-X importtime`` output split at the markers.

    Also names the other packages our import pulls in, each with its cumulative time and the
    module of ours that imported it (importtime lists a module after its children, one level
    of indentation deeper per nesting).
    """
    framework = ours = ours_own = 0
    entries: list[tuple[int, str, int, int]] = []  # (depth, name, self us, cumulative us)
    phase = "startup"
    for line in stderr.splitlines():
        if line.startswith(MARK):
            phase = line[len(MARK) :].strip()
            continue
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        self_part, cumulative_part, name = line[len("import time:") :].split("|", 2)
        if not self_part.strip().isdigit():
            continue  # the header line
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        if phase == "framework" and depth == 0:
            framework += int(cumulative_part)
        elif phase == "ours":
            entries.append((depth, name.strip(), int(self_part), int(cumulative_part)))
    pulled: dict[str, float] = {}
    for i, (depth, name, self_us, cumulative_us) in enumerate(entries):
        if depth == 0:
            ours += cumulative_us
        if name.split(".")[0] == "dashscope_embeddings":
            ours_own += self_us
            continue
        parent = next((e[1] for e in entries[i + 1 :] if e[0] < depth), "")
        if parent == "" or parent.split(".")[0] == "dashscope_embeddings":
            key = f"{name} (by {parent or 'top level'})"
            pulled[key] = pulled.get(key, 0.0) + cumulative_us / 1000
    return {
        "framework_ms": framework / 1000,
        "ours_ms": ours / 1000,
        "ours_own_modules_ms": ours_own / 1000,
        "dependencies": pulled,
    }


def one_run(framework: list[str], ours: str) -> dict[str, Any]:
    code = "\n".join(
        [
            "import os, time",
            f"os.write(2, b'{MARK}framework\\n')",
            *framework,
            f"os.write(2, b'{MARK}ours\\n')",
            ours,
        ]
    )
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        env=h.child_env(),
        check=True,
    )
    figures = parse(done.stderr)
    timed = "\n".join(
        [
            "import time",
            *framework,
            "t0 = time.perf_counter()",
            ours,
            "t1 = time.perf_counter()",
            "print((t1 - t0) * 1000)",
        ]
    )
    wall = subprocess.run(
        [sys.executable, "-c", timed], capture_output=True, text=True, env=h.child_env(), check=True
    )
    figures["ours_wall_ms"] = float(wall.stdout.strip().splitlines()[-1])
    return figures


def _code(statements: list[str]) -> str:
    return "; ".join(f"`{s}`" for s in statements) or "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows, raw = [], {}
    for label, framework, ours in CASES:
        try:
            one_run(framework, ours)  # warm-up: .pyc files, disk cache
            runs = [one_run(framework, ours) for _ in range(args.runs)]
        except subprocess.CalledProcessError as exc:
            reason = (exc.stderr or "").strip().splitlines()[-1:] or [str(exc)]
            rows.append([label, _code(framework), "-", "-", "-", "-", reason[0][:160]])
            continue
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0] if k != "dependencies"}
        deps: dict[str, float] = {}
        for r in runs:
            for k, v in r["dependencies"].items():
                deps[k] = deps.get(k, 0.0) + v / len(runs)
        top = sorted(deps.items(), key=lambda kv: -kv[1])[:3]
        raw[label] = {"framework": framework, "ours": ours, "median": med, "runs": runs}
        print(f"  {label}: {json.dumps(med)}", file=sys.stderr, flush=True)
        rows.append(
            [
                label,
                _code(framework),
                f"{med['framework_ms']:.0f}",
                f"{med['ours_ms']:.0f} {'✓' if med['ours_ms'] <= TARGET_MS else '✗'}",
                f"{med['ours_own_modules_ms']:.0f}",
                f"{med['ours_wall_ms']:.0f}",
                "; ".join(f"{k} {v:.0f}" for k, v in top if v >= 1) or "-",
            ]
        )
    headers = [
        "our import",
        "framework app imported first",
        "framework ms",
        "ours adds ms (importtime)",
        "of which our own modules ms",
        "ours adds ms (wall, no -X)",
        "biggest imports of other packages made by our modules (cumulative ms, mean)",
    ]
    lines = [
        f"Machine: {h.machine_line()}",
        "",
        f"## Import cost: median of {args.runs} fresh interpreters, `python -X importtime`",
        "",
        f"Target: each adapter adds ≤ {TARGET_MS} ms on top of its framework app.",
        "",
        h.markdown_table(headers, rows),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    if args.json:
        args.json.write_text(json.dumps(raw, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
