"""Command line: ``python -m dashscope_embeddings.emulator --port 8080``, or ``dashscope-emulator``.

Runs the emulator until interrupted (Ctrl-C or SIGTERM). The first line written to stdout holds
the base URLs and the address it really listens on, e.g. ``DashScope embedding emulator:
native http://127.0.0.1:8080/api/v1 compatible http://127.0.0.1:8080/compatible-mode/v1
(listening on 0.0.0.0:8080, every interface)`` with ``--host 0.0.0.0`` (the bound port with
``--port 0``); the second says that vectors are deterministic lexical vectors, not model
quality. A host other than a loopback address needs ``--api-key`` (else exit status 2).

Besides latency and random errors, the flags switch on what reliability and throughput tests
need: a concurrency cap (``--max-in-flight``), RPM / TPM quotas over a rolling window
(``--rpm``, ``--tpm``, ``--quota-window-s``, ``--quota-retry-after``), random connection
resets (``--reset-rate``), slow response bodies (``--slow-body-ms``) and the content
inspection marker (``--reject-marker``). Scripted one-off faults are only available from
Python (``Emulator.inject`` / ``Emulator.inject_fault``).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from types import FrameType

from dashscope_embeddings.emulator import Emulator
from dashscope_embeddings.emulator._server import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_REQUEST_LOG_SIZE,
    is_loopback,
    root_url,
)

__all__ = ["listening_line", "main"]

_MODULE_PROG = "python -m dashscope_embeddings.emulator"


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


def _program_name() -> str:
    """How the program was run: the console script's name, else ``python -m ...``."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if not name or name in ("__main__.py", "-c") or name.endswith(".py"):
        return _MODULE_PROG
    return name


def _parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog or _program_name(),
        description="Local emulator of the DashScope (Model Studio) text-embedding HTTP API.",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface (default: 127.0.0.1); 0.0.0.0 listens on every interface and then "
        "needs --api-key",
    )
    parser.add_argument("--port", type=int, default=8080, help="port; 0 picks a free one")
    parser.add_argument(
        "--api-key",
        default=None,
        help="accept only this key (default: any non-empty key; required off loopback)",
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
        "--request-log-size",
        type=_positive_int,
        default=DEFAULT_REQUEST_LOG_SIZE,
        help=f"requests kept in the request log, the newest (default: {DEFAULT_REQUEST_LOG_SIZE})",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=_positive_int,
        default=DEFAULT_MAX_BODY_BYTES,
        help="larger request bodies get HTTP 413 before they are read "
        f"(default: {DEFAULT_MAX_BODY_BYTES}, 512 MiB)",
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


def listening_line(host: str, port: int) -> str:
    """The first line printed: the base URLs, and the address really listened on.

    Args:
        host: The bound host (``0.0.0.0`` / ``::`` for every interface).
        port: The bound port.

    >>> listening_line("0.0.0.0", 8080).split(" (")[1]
    'listening on 0.0.0.0:8080, every interface)'
    """
    url = root_url(host, port)
    shown = f"[{host}]" if ":" in host else host
    if host in ("0.0.0.0", "::", ""):
        reach = "every interface"
    elif is_loopback(host):
        reach = "loopback only"
    else:
        reach = "this interface"
    return (
        f"DashScope embedding emulator: native {url}/api/v1 "
        f"compatible {url}/compatible-mode/v1 (listening on {shown}:{port}, {reach})"
    )


def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    """Run the emulator until SIGINT / SIGTERM.

    Args:
        argv: Arguments without the program name; ``None`` reads ``sys.argv``.
        prog: The program's name in help and errors; by default the console script's name,
            or ``python -m dashscope_embeddings.emulator``.

    Returns:
        The process exit status (2 for bad arguments, as argparse).
    """
    parser = _parser(prog)
    args = parser.parse_args(argv)
    if args.api_key is None and not is_loopback(args.host):
        parser.error(
            f"--host {args.host} is not a loopback address: anyone who can reach it could use "
            "the emulator; pass --api-key KEY (clients then send that key)"
        )
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
        request_log_size=args.request_log_size,
        max_body_bytes=args.max_body_bytes,
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
        host, port = emulator.address
        sys.stdout.write(
            f"{listening_line(host, port)}\n"
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
