r"""The ``dashscope-embeddings`` command (also ``python -m dashscope_embeddings.cli``).

::

    dashscope-embeddings embed corpus.jsonl --model text-embedding-v4 --out vectors.npy \
        [--dimension 1024] [--text-field text] [--id-field id] [--text-type document|query] \
        [--overwrite] [--long-text error|truncate|chunk] [--skip-rejected] \
        [--batch-api] [--state run.json] [--dry-run] [--base-url URL] [--region REGION]
    dashscope-embeddings embed [corpus.jsonl] --file-task (--input-url URL | --upload-command CMD) \
        --out vectors.npy [--model text-embedding-async-v2|text-embedding-async-v1]
    dashscope-embeddings models                  # the model registry as a table
    dashscope-embeddings emulator [--port 8000]  # serve the bundled emulator

The key comes from ``DASHSCOPE_API_KEY``; the endpoint from ``--base-url`` /
``DASHSCOPE_BASE_URL`` or ``--region`` / ``DASHSCOPE_REGION``, as everywhere in the package.

Exit status: 0 done; 1 the service failed, or rejected texts (each named by its line and id;
``--skip-rejected`` writes the rest instead), or inputs failed for good; 2 a mistake to fix (no
key, a bad or missing file, a missing column, an output that is the input, exists without
``--overwrite`` or cannot be written, a bad option), reported as one line; 130 interrupted (run
the same command again to resume, when the run has a state file); 141 stdout was closed (as
by ``| head``), quietly. Needs the ``cli`` extra (numpy, pyarrow, tqdm).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import warnings
from collections.abc import Sequence

from dashscope_embeddings._errors import APIError, ConfigurationError, InvalidInputError
from dashscope_embeddings._registry import ModelSpec, list_models
from dashscope_embeddings._version import __version__
from dashscope_embeddings.batch import (
    BatchStateError,
    FileTaskError,
    IncompleteBatchError,
    IncompleteFileTaskError,
)
from dashscope_embeddings.cli import _embed, _file_task
from dashscope_embeddings.cli._io import CLIError

__all__ = ["main"]

PROG = "dashscope-embeddings"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Embed files of texts with Alibaba Cloud Model Studio (DashScope) models.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    embed = commands.add_parser(
        "embed",
        help="embed a .txt/.jsonl/.csv/.parquet file into .npy/.jsonl/.parquet vectors",
        description="Embed a file of texts. Real-time by default; --batch-api for the Batch "
        "API (half price, within 24 h); --file-task for text-embedding-async-v2 / -v1 file "
        "tasks (one URL). Resumable with --state.",
    )
    _embed.add_arguments(embed)
    _file_task.add_arguments(embed)
    commands.add_parser("models", help="list the models the package knows, with limits and prices")
    commands.add_parser(
        "emulator",
        help="serve the bundled emulator and print its base URL "
        "(options: dashscope-embeddings emulator --help)",
        add_help=False,
    )
    return parser


def _cell(spec: ModelSpec) -> list[str]:
    dims = ",".join(
        f"{d}*" if d == spec.default_dimension and len(spec.dimensions) > 1 else str(d)
        for d in spec.dimensions
    )

    def price(value: float | None) -> str:
        return "-" if value is None else f"{value:g}"

    return [
        spec.name,
        spec.endpoint,
        dims or "?",
        str(spec.max_batch_size),
        str(spec.max_tokens_per_input),
        "yes" if spec.supports_sparse else "-",
        "yes" if spec.supports_batch_api else "-",
        price(spec.price_cny_per_1k),
        price(spec.batch_price_cny_per_1k),
        price(spec.price_usd_per_1m),
    ]


def _models() -> int:
    rows = [
        [
            "model",
            "endpoint",
            "dimensions (* default)",
            "texts/request",
            "tokens/text",
            "sparse",
            "batch API",
            "CNY/1K",
            "batch CNY/1K",
            "USD/1M",
        ]
    ]
    rows += [_cell(spec) for spec in list_models()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        sys.stdout.write(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            + "\n"
        )
    return 0


def _emulator(argv: list[str]) -> int:
    try:
        from dashscope_embeddings.emulator.__main__ import main as emulator_main
    except ModuleNotFoundError as exc:
        raise CLIError(
            f"the emulator needs {exc.name}: pip install 'dashscope-embeddings[emulator]'"
        ) from None
    return emulator_main(argv, prog="dashscope-embeddings emulator")


def _show_warning(
    message: Warning | str,
    category: type[Warning],  # noqa: ARG001
    filename: str,  # noqa: ARG001
    lineno: int,  # noqa: ARG001
    file: object = None,  # noqa: ARG001
    line: str | None = None,  # noqa: ARG001
) -> None:
    sys.stderr.write(f"{PROG}: warning: {message}\n")


def _interrupted(args: argparse.Namespace | None) -> str:
    if args is None or getattr(args, "command", None) != "embed" or args.dry_run:
        return "interrupted"
    if args.file_task:
        return (
            f"interrupted; the file task goes on at the service. Run the same command again "
            f"to resume it (state: {_file_task.state_path(args)})"
        )
    if args.batch_api:
        state = args.state or args.out.with_name(args.out.name + ".batch.json")
        return (
            f"interrupted; the batch job goes on at the service. Run the same command again to "
            f"resume it (state: {state})"
        )
    if args.state is not None:
        return f"interrupted; run the same command again to resume (state: {args.state})"
    return "interrupted; nothing was kept (pass --state PATH to make a run resumable)"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        The exit status (see the module docstring).
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    args: argparse.Namespace | None = None
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            if arguments[:1] == ["emulator"]:
                return _emulator(arguments[1:])
            try:
                args = _parser().parse_args(arguments)
            except SystemExit as exc:  # argparse has printed its usage message
                return exc.code if isinstance(exc.code, int) else 2
            if args.command == "models":
                return _models()
            return _file_task.run(args) if args.file_task else _embed.run(args)
        except CLIError as exc:
            return _fail(str(exc), exc.code)
        except (ConfigurationError, InvalidInputError, BatchStateError) as exc:
            return _fail(str(exc), 2)
        except (APIError, IncompleteBatchError, FileTaskError, IncompleteFileTaskError) as exc:
            return _fail(str(exc), 1)
        except KeyboardInterrupt:
            return _fail(_interrupted(args), 130)
        except BrokenPipeError:
            return _closed_pipe()
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            return _fail(f"{where}{exc.strerror or exc}", 1)


def _closed_pipe() -> int:
    """The reader of stdout went away (``| head``): end quietly, as a command killed by SIGPIPE.

    stdout is pointed at ``os.devnull`` so that flushing it at exit cannot fail again.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no file descriptor (stdout replaced)
        pass
    return 128 + signal.SIGPIPE if hasattr(signal, "SIGPIPE") else 1


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    return code
