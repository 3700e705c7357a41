"""The bundled emulator in its own process, with its counters served as JSON on a second port.

The emulator's command line (``python -m dashscope_embeddings.emulator``) has no way to read
:attr:`Emulator.stats` from outside, and running the emulator in the measuring process would make
it share a GIL (and a core) with the client being measured. This wrapper starts
``Emulator(...)`` in this process and serves, on another 127.0.0.1 port:

* ``GET /stats``: :class:`EmulatorStats` as JSON, plus ``cpu_s`` (this process's CPU time so
  far, every thread) and per-request text counts taken from the request log;
* ``POST /reset``: :meth:`Emulator.clear_requests` (log and counters zeroed; the vector cache
  stays warm).

The first line on stdout is JSON: ``{"native": ..., "compatible": ..., "control": ...}``. Runs
until SIGTERM / SIGINT. Used by the other scripts here; not meant to be run by hand.

    python benchmarks/_emulator_server.py --latency 0.1 --max-in-flight 8
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from dashscope_embeddings.emulator import Emulator


def _count_texts(body: Any) -> int:
    """Texts in a recorded native or compatible embedding request body."""
    if not isinstance(body, dict):
        return 0
    data = body.get("input")
    if isinstance(data, dict):  # native: {"input": {"texts": [...]}}
        data = data.get("texts")
    if isinstance(data, str):
        return 1
    return len(data) if isinstance(data, list) else 0


def snapshot(emulator: Emulator) -> dict[str, Any]:
    stats = emulator.stats
    log = emulator.requests
    sizes = [_count_texts(r.json) for r in log if r.status == 200]
    return {
        "requests": stats.requests,
        "responses_by_status": {str(k): v for k, v in sorted(stats.responses_by_status.items())},
        "peak_in_flight": stats.peak_in_flight,
        "in_flight": stats.in_flight,
        "billed_requests": stats.billed_requests,
        "billed_tokens": stats.billed_tokens,
        "throttled": stats.throttled,
        "throttled_by_reason": dict(stats.throttled_by_reason),
        "resets": stats.resets,
        "vector_cache_hits": stats.vector_cache_hits,
        "vector_cache_misses": stats.vector_cache_misses,
        "texts_sent": sum(_count_texts(r.json) for r in log),
        "texts_ok": sum(sizes),
        "max_texts_per_ok_request": max(sizes, default=0),
        "cpu_s": time.process_time(),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--max-in-flight", type=int, default=None)
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--reset-rate", type=float, default=0.0)
    parser.add_argument("--reject-marker", default="__REJECT__")
    parser.add_argument("--rpm", type=int, default=None)
    parser.add_argument("--tpm", type=int, default=None)
    parser.add_argument("--slow-body-ms", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    emulator = Emulator(
        api_key=args.api_key,
        latency=args.latency,
        max_in_flight=args.max_in_flight,
        error_rate=args.error_rate,
        reset_rate=args.reset_rate,
        reject_marker=args.reject_marker or None,
        rpm=args.rpm,
        tpm=args.tpm,
        slow_body_ms=args.slow_body_ms,
        seed=args.seed,
    ).start()

    class Control(BaseHTTPRequestHandler):
        def _answer(self, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/stats":
                self._answer(snapshot(emulator))
            else:
                self.send_error(404)

        def do_POST(self) -> None:
            if self.path == "/reset":
                emulator.clear_requests()
                self._answer({"ok": True})
            else:
                self.send_error(404)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    control = ThreadingHTTPServer(("127.0.0.1", 0), Control)
    threading.Thread(target=control.serve_forever, name="control", daemon=True).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(
        json.dumps(
            {
                "native": emulator.base_url,
                "compatible": emulator.compatible_base_url,
                "control": f"http://127.0.0.1:{control.server_address[1]}",
            }
        ),
        flush=True,
    )
    try:
        while not stop.wait(0.2):
            pass
    finally:
        control.shutdown()
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
