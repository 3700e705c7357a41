"""Command line: ``python -m dashscope_embeddings.emulator --port 8080``.

Runs the emulator until interrupted (Ctrl-C or SIGTERM). The first line written to stdout holds
the base URLs, e.g. ``DashScope embedding emulator: native http://127.0.0.1:8080/api/v1
compatible http://127.0.0.1:8080/compatible-mode/v1``.
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
    parser.add_argument("--seed", type=int, default=0, help="seed of error draws and ordering")
    parser.add_argument(
        "--in-order",
        action="store_true",
        help="return embeddings in input order (default: a deterministic shuffled order)",
    )
    return parser


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
