"""Token bounds against the Qwen tokenizer: estimate / exact, per corpus.

    .venv/bin/python benchmarks/token_bounds.py

Needs the ``tokenizer`` extra (``pip install 'dashscope-embeddings[tokenizer]'``). The corpora
are built here or shipped in ``benchmarks/data/`` (nothing is downloaded): the project's
README (English prose), Chinese prose, Chinese with tables, this package's Python source,
JSON, numbers, Japanese prose, emoji mixed with several scripts. For each corpus it prints the
whole-corpus ratio of both bounds to the exact count, and the extreme ratios over its
paragraphs (a bound must hold on every paragraph, not only on the sum): the lower bound must
stay at or below 1.00, the upper bound at or above.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


def corpora() -> dict[str, str]:
    """The corpora by name (deterministic)."""
    rng = random.Random(18)
    records = [
        {
            "id": i,
            "name": f"item-{i:05d}",
            "price": round(rng.uniform(0, 1000), 2),
            "tags": rng.sample(["alpha", "beta", "gamma", "delta", "向量", "検索"], 2),
            "active": rng.random() < 0.5,
            "nested": {"x": rng.randint(-999, 999), "y": None},
        }
        for i in range(120)
    ]
    numbers = "\n".join(
        " ".join(
            str(rng.choice([rng.randint(0, 10**9), round(rng.uniform(-1e4, 1e4), 4)]))
            for _ in range(12)
        )
        for _ in range(80)
    )
    return {
        "English prose (README)": (ROOT / "README.md").read_text(encoding="utf-8"),
        "Chinese prose": (DATA / "zh_prose.txt").read_text(encoding="utf-8"),
        "Chinese + tables": (DATA / "zh_tables.md").read_text(encoding="utf-8"),
        "Python code": (ROOT / "src/dashscope_embeddings/resources/text.py").read_text(
            encoding="utf-8"
        ),
        "JSON": json.dumps(records, ensure_ascii=False, indent=2),
        "numbers": numbers,
        "Japanese": (DATA / "ja_prose.txt").read_text(encoding="utf-8"),
        "emoji + mixed": (DATA / "emoji_mixed.txt").read_text(encoding="utf-8"),
    }


def paragraphs(text: str) -> list[str]:
    """The non-blank paragraphs (blank-line separated) and lines of ``text``."""
    parts = [p for p in text.split("\n\n") if p.strip()]
    parts += [line for line in text.splitlines() if line.strip()]
    return parts


def table() -> list[tuple[str, int, int, int, float, float, float, float]]:
    """Per corpus: name, exact, lower, upper, lower/exact, upper/exact, worst lower, worst upper."""
    from dashscope_embeddings._tokenizer import exact_counter
    from dashscope_embeddings._tokens import lower_bound, upper_bound

    exact = exact_counter()
    if exact is None:
        raise SystemExit("the tokenizer extra is not installed: pip install '.[tokenizer]'")
    rows = []
    for name, text in corpora().items():
        n, lo, hi = exact(text), lower_bound(text), upper_bound(text)
        worst_lo = max(lower_bound(p) / exact(p) for p in paragraphs(text))
        worst_hi = min(upper_bound(p) / exact(p) for p in paragraphs(text))
        rows.append((name, n, lo, hi, lo / n, hi / n, worst_lo, worst_hi))
    return rows


def main() -> None:
    print(
        "| corpus | exact tokens | lower bound | upper bound | lower / exact | upper / exact "
        "| max lower / exact (paragraphs) | min upper / exact (paragraphs) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    ok = True
    for name, n, lo, hi, rlo, rhi, wlo, whi in table():
        ok = ok and wlo <= 1.0 and whi >= 1.0
        print(
            f"| {name} | {n:,} | {lo:,} | {hi:,} | {rlo:.2f} | {rhi:.2f} | {wlo:.2f} | {whi:.2f} |"
        )
    if not ok:
        print("a bound fails on some paragraph", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
