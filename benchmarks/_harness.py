"""Shared pieces of the benchmark scripts: the emulator process, the corpus, child runs.

Everything talks to 127.0.0.1 only. Children get a clean environment: no proxy variables, no
``DASHSCOPE_*`` / ``OPENAI_*`` from the caller's shell (a real key or base URL must never be
picked up by a benchmark), plus what the run needs.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
KEY = "sk-bench-local"
MODEL = "text-embedding-v4"
DIMENSION = 1024  # text-embedding-v4's default dimension: nobody passes one except the reference
TEXTS_PER_REQUEST = 10  # text-embedding-v4

_VOCABULARY = (
    "refund shipping order invoice customer account password warranty delivery parcel "
    "return policy store credit card payment receipt discount coupon subscription plan "
    "upgrade support ticket agent chat email phone hours weekend holiday address billing "
    "tax region currency exchange battery screen cable charger manual setup install "
    "update firmware reset factory network router signal speed storage backup cloud sync "
    "folder share permission privacy data export delete request days weeks within after "
    "before"
)
_WORDS = _VOCABULARY.split()


def corpus(n: int, *, words: tuple[int, int] = (40, 120), seed: int = 8) -> list[str]:
    """``n`` distinct documents of ``words`` words (deterministic, English-like)."""
    return [document(i, words=words, seed=seed) for i in range(n)]


def document(i: int, *, words: tuple[int, int] = (40, 120), seed: int = 8) -> str:
    rng = random.Random(f"{seed}:{i}")
    body = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(*words)))
    return f"Document {i}. {body.capitalize()}."


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(("DASHSCOPE_", "OPENAI_"))
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PYTHONWARNINGS"] = "ignore"
    env.update(extra or {})
    return env


class EmulatorProcess:
    """``_emulator_server.py`` in a child process; its URLs, counters and CPU time."""

    def __init__(self, **options: Any) -> None:
        self.options = {"api_key": KEY, **options}
        self.native = self.compatible = self.control = ""
        self._proc: subprocess.Popen[str] | None = None
        self._http = httpx.Client(timeout=30, trust_env=False)

    def __enter__(self) -> EmulatorProcess:
        argv = [sys.executable, str(HERE / "_emulator_server.py")]
        for name, value in self.options.items():
            if value is not None:
                argv += [f"--{name.replace('_', '-')}", str(value)]
        self._proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=child_env())
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the emulator did not start: {' '.join(argv)}")
        urls = json.loads(line)
        self.native, self.compatible, self.control = (
            urls["native"],
            urls["compatible"],
            urls["control"],
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._http.close()
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    @property
    def root(self) -> str:
        return self.native.removesuffix("/api/v1")

    def stats(self) -> dict[str, Any]:
        return dict(self._http.get(f"{self.control}/stats").json())

    def reset(self) -> None:
        self._http.post(f"{self.control}/reset").raise_for_status()


def run_child(
    script: str, spec: dict[str, Any], *, env: dict[str, str] | None = None, timeout: float = 120
) -> dict[str, Any]:
    """Run ``python benchmarks/<script> --child '<spec json>'``; its last stdout line is JSON.

    A run that outlives ``timeout`` is killed and reported as ``{"timed_out": True}``.
    """
    argv = [sys.executable, str(HERE / script), "--child", json.dumps(spec)]
    start = time.perf_counter()
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, env=child_env(env), timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"timed_out": True, "elapsed_s": time.perf_counter() - start}
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
        return {"error": " | ".join(tail) or f"exit status {done.returncode}"}
    return dict(json.loads(lines[-1]))


def scratch_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="dashscope-bench-"))


def bound_s(n: int, concurrency: int, latency: float) -> float:
    """``ceil(N / texts per request / cap) x latency``: no client can finish sooner."""
    return math.ceil(n / TEXTS_PER_REQUEST / concurrency) * latency


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells
    ]
    return "\n".join([line, rule, *body])


def machine_line() -> str:
    import platform
    from importlib import metadata

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "-"

    names = (
        "dashscope-embeddings",
        "httpx",
        "langchain-core",
        "llama-index-core",
        "langchain-community",
        "dashscope",
        "llama-index-embeddings-dashscope",
        "langchain-openai",
        "openai",
        "numpy",
    )
    packages = ", ".join(f"{n} {version(n)}" for n in names)
    return (
        f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), "
        f"Python {platform.python_version()} on {platform.system()}; {packages}; "
        f"{source_line()}"
    )


def source_line() -> str:
    """The commit measured, and whether ``src/`` had uncommitted changes."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "not a git checkout"
    dirty = git("status", "--porcelain", "--", "../src")
    return f"commit {commit}" + (" + uncommitted changes in src/" if dirty else "")
