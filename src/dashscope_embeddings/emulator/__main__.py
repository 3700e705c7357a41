"""Command line: ``python -m dashscope_embeddings.emulator --port 8080``.

Runs the emulator until interrupted (Ctrl-C or SIGTERM). The first line written to stdout holds
the base URLs, e.g. ``DashScope embedding emulator: native http://127.0.0.1:8080/api/v1
compatible http://127.0.0.1:8080/compatible-mode/v1``; the second says that vectors are
deterministic lexical vectors, not model quality.

Besides latency and random errors, the flags switch on what reliability and throughput tests
need: a concurrency cap (``--max-in-flight``), RPM / TPM quotas over a rolling window
(``--rpm``, ``--tpm``, ``--quota-window-s``, ``--quota-retry-after``), random connection
resets (``--reset-rate``), slow response bodies (``--slow-body-ms``) and the content
inspection marker (``--reject-marker``). Scripted one-off faults are only available from
Python (``Emulator.inject`` / ``Emulator.inject_fault``).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from dashscope_embeddings.emulator import Emulator

__all__ = ["main"]


def _non_negative_float(value: str) -> float:
    number = float(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return number


def _rate(value: str) -> float:
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {value}")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return number


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return number


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dashscope_embeddings.emulator",
        description="Local emulator of the DashScope (Model Studio) text-embedding HTTP API.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port; 0 picks a free one")
    parser.add_argument(
        "--api-key", default=None, help="accept only this key (default: any non-empty key)"
    )
    parser.add_argument(
        "--latency", type=_non_negative_float, default=0.0, help="seconds added per request"
    )
    parser.add_argument(
        "--max-in-flight",
        type=_positive_int,
        default=None,
        help="answer HTTP 429 Throttling.RateQuota beyond this many concurrent requests",
    )
    parser.add_argument(
        "--error-rate",
        type=_rate,
        default=0.0,
        help="probability of answering HTTP 500 InternalError (default: 0)",
    )
    parser.add_argument(
        "--reset-rate",
        type=_rate,
        default=0.0,
        help="probability of dropping a request's connection without any answer (default: 0)",
    )
    parser.add_argument(
        "--slow-body-ms",
        type=_non_negative_float,
        default=0.0,
        help="trickle every response body over this many milliseconds, headers first "
        "(default: 0, off)",
    )
    parser.add_argument(
        "--reject-marker",
        default="__REJECT__",
        help="texts containing this string fail content inspection with HTTP 400 "
        "DataInspectionFailed (default: __REJECT__; '' disables)",
    )
    parser.add_argument(
        "--rpm",
        type=_positive_int,
        default=None,
        help="requests per rolling window; beyond: HTTP 429 Throttling.RateQuota",
    )
    parser.add_argument(
        "--tpm",
        type=_positive_int,
        default=None,
        help="tokens per rolling window; beyond: HTTP 429 Throttling.AllocationQuota",
    )
    parser.add_argument(
        "--quota-window-s",
        type=_positive_float,
        default=60.0,
        help="length of the --rpm / --tpm window in seconds (default: 60)",
    )
    parser.add_argument(
        "--quota-retry-after",
        action="store_true",
        help="add retry-after / retry-after-ms headers to quota 429s (the service documents none)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of error and reset draws and of ordering"
    )
    parser.add_argument(
        "--in-order",
        action="store_true",
        help="return embeddings in input order (default: a deterministic shuffled order)",
    )
    return parser


def _settings_line(args: argparse.Namespace) -> str:
    """One line summarising the limits and faults in force."""
    parts = [f"content inspection marker {args.reject_marker!r}" if args.reject_marker else ""]
    if args.max_in_flight is not None:
        parts.append(f"max {args.max_in_flight} in flight")
    for name, value in (("requests", args.rpm), ("tokens", args.tpm)):
        if value is not None:
            parts.append(f"{value} {name} per {args.quota_window_s:g} s")
    if args.latency:
        parts.append(f"latency {args.latency:g} s")
    if args.error_rate:
        parts.append(f"error rate {args.error_rate:g}")
    if args.reset_rate:
        parts.append(f"reset rate {args.reset_rate:g}")
    if args.slow_body_ms:
        parts.append(f"bodies trickled over {args.slow_body_ms:g} ms")
    return "Settings: " + (", ".join(p for p in parts if p) or "defaults") + "."


def main(argv: list[str] | None = None) -> int:
    """Run the emulator until SIGINT / SIGTERM.

    Args:
        argv: Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        The process exit status.
    """
    args = _parser().parse_args(argv)
    emulator = Emulator(
        api_key=args.api_key,
        latency=args.latency,
        max_in_flight=args.max_in_flight,
        error_rate=args.error_rate,
        seed=args.seed,
        host=args.host,
        port=args.port,
        shuffle=not args.in_order,
        slow_body_ms=args.slow_body_ms,
        reset_rate=args.reset_rate,
        reject_marker=args.reject_marker or None,
        rpm=args.rpm,
        tpm=args.tpm,
        quota_window_s=args.quota_window_s,
        quota_retry_after=args.quota_retry_after,
    )
    try:
        emulator.start()
    except (OSError, RuntimeError) as exc:
        sys.stderr.write(f"dashscope emulator: cannot start: {exc}\n")
        return 1

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001
        stop.set()

    previous = signal.signal(signal.SIGTERM, _on_signal)
    try:
        auth = "only the --api-key key" if args.api_key else "any non-empty Bearer key"
        sys.stdout.write(
            f"DashScope embedding emulator: native {emulator.base_url} "
            f"compatible {emulator.compatible_base_url}\n"
            "Vectors are deterministic lexical vectors (hashed words) for development and CI, "
            "not model quality.\n"
            f"Auth: {auth}. Stop with Ctrl-C.\n"
            f"{_settings_line(args)}\n"
        )
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
