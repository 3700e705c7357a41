"""``dashscope-embeddings embed``: a file of texts to a file of vectors.

Real-time by default (chunks through the concurrent client, a progress bar, resumable with
``--state``); ``--batch-api`` for the Batch API at half price (resumable; the state defaults
to ``<OUTPUT>.batch.json``); ``--file-task`` for text-embedding-async-v2 / -v1 file tasks
(``cli/_file_task.py``); ``--dry-run`` to count, estimate and send nothing.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import typing
from pathlib import Path

from dashscope_embeddings._client import DashScopeClient
from dashscope_embeddings._config import resolve_endpoints
from dashscope_embeddings._constants import API_KEY_ENV
from dashscope_embeddings._errors import InvalidInputError
from dashscope_embeddings._registry import ModelSpec, get_model_spec
from dashscope_embeddings._types import TextType, Usage
from dashscope_embeddings._usage import usage_for
from dashscope_embeddings.batch import BatchJob, BatchResults, JobStatus, _plan, fingerprint
from dashscope_embeddings.batch._state import JobState, data_dir
from dashscope_embeddings.cli._io import CLIError, Corpus, Writer, check_output, read_corpus
from dashscope_embeddings.cli._realtime import run_realtime
from dashscope_embeddings.resources import text
from dashscope_embeddings.resources.text import LongText

__all__ = ["add_arguments", "run"]

DEFAULT_CHUNK_SIZE = 1000
_ROWS_PER_WRITE = 10_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``embed`` command's arguments."""
    parser.add_argument(
        "input",
        type=Path,
        nargs="?",
        default=None,
        help="a .txt (a text per line), .jsonl, .csv or .parquet file (needed except with "
        "--file-task --input-url)",
    )
    parser.add_argument(
        "--model",
        "-m",
        default=None,
        help="model name, e.g. text-embedding-v4 (needed except with --file-task)",
    )
    parser.add_argument(
        "--out",
        "-o",
        required=True,
        type=Path,
        help="output: .npy (float32, input order), .jsonl (id + embedding) or .parquet",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace OUTPUT if it exists (never the input itself)",
    )
    parser.add_argument(
        "--dimension", type=int, default=None, help="output size (default: the model's)"
    )
    parser.add_argument(
        "--text-field", default="text", help="field / column holding the text (default: text)"
    )
    parser.add_argument(
        "--id-field",
        default=None,
        help="field / column holding ids (default: 'id' when present, else the row position)",
    )
    parser.add_argument(
        "--text-type",
        choices=("document", "query"),
        default="document",
        help="real-time only: document (default) for stored texts, query for questions",
    )
    parser.add_argument(
        "--long-text",
        choices=("error", "truncate", "chunk"),
        default="error",
        help="real-time: a text over the model's token limit is refused (error, the default), "
        "cut to the limit (truncate), or split and averaged (chunk)",
    )
    parser.add_argument(
        "--skip-rejected",
        action="store_true",
        help="real-time: write the vectors of every text but those the service rejects "
        "(content inspection), listed in OUTPUT.rejected.jsonl (line, id, code, message); "
        "needs a .jsonl or .parquet output",
    )
    parser.add_argument(
        "--batch-api", action="store_true", help="use the Batch API: half price, done within 24 h"
    )
    parser.add_argument(
        "--state",
        type=Path,
        default=None,
        help="state file making the run resumable: run the same command again "
        "to continue (batch default: OUTPUT.batch.json)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the count, estimated tokens and cost; send nothing",
    )
    parser.add_argument(
        "--base-url",
        default=None,
        help="service or emulator URL (default: DASHSCOPE_BASE_URL, else the region's host)",
    )
    parser.add_argument(
        "--region", default=None, help="cn-beijing (default), ap-southeast-1 or cn-hongkong"
    )
    parser.add_argument(
        "--chunk-size",
        type=_positive,
        default=DEFAULT_CHUNK_SIZE,
        help=f"real-time: texts per saved chunk (default {DEFAULT_CHUNK_SIZE})",
    )
    parser.add_argument(
        "--max-concurrency",
        type=_positive,
        default=None,
        help="real-time: requests in flight (default 4)",
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=None,
        help="batch: seconds between polls (default: 1 s growing to 30 s)",
    )
    parser.add_argument(
        "--resubmit",
        type=int,
        default=2,
        help="batch: rounds of resending failed inputs (default 2)",
    )
    parser.add_argument(
        "--max-lines-per-file",
        type=_positive,
        default=_plan.DEFAULT_MAX_LINES_PER_FILE,
        help="batch: request lines per uploaded file "
        f"(default {_plan.DEFAULT_MAX_LINES_PER_FILE:,})",
    )


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return number


def _log(message: str) -> None:
    sys.stderr.write(message + "\n")


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")


def _money(usage: Usage) -> str:
    if usage.cost is None:
        return "no list price in the registry"
    return f"{usage.currency} {usage.cost:.6g}"


def rejected_report(args: argparse.Namespace) -> Path | None:
    """Where ``--skip-rejected`` lists the rejected lines (``OUTPUT.rejected.jsonl``)."""
    out: Path = args.out
    return out.with_name(out.name + ".rejected.jsonl") if args.skip_rejected else None


def _check_options(args: argparse.Namespace) -> None:
    """Options that do not go together."""
    for flag, value in (("--input-url", args.input_url), ("--upload-command", args.upload_command)):
        if value is not None:
            raise CLIError(f"{flag} is for --file-task runs; add --file-task")
    if args.input is None:
        raise CLIError("the input file is missing (only --file-task --input-url runs without one)")
    if args.model is None:
        raise CLIError("--model is missing (e.g. --model text-embedding-v4)")
    if args.batch_api:
        if args.skip_rejected:
            raise CLIError(
                "--skip-rejected is for real-time runs; a --batch-api run names the inputs "
                "that failed and resubmits them (--resubmit)"
            )
        if args.long_text != "error":
            raise CLIError(
                f"--long-text {args.long_text} is for real-time runs; with --batch-api a "
                "text over the model's limit is refused"
            )
    if args.skip_rejected and args.out.suffix.lower() == ".npy":
        raise CLIError(
            "--skip-rejected needs an output with ids (.jsonl or .parquet): the rows of a "
            ".npy are told apart only by their place"
        )


def _check_paths(args: argparse.Namespace) -> None:
    """The output (and the rejected-lines report) may be written; the state is neither."""
    check_output(args.out, source=args.input, overwrite=args.overwrite)
    report = rejected_report(args)
    if report is not None and report.exists() and not args.overwrite:
        raise CLIError(f"{report} exists; pass --overwrite to replace it")
    if args.state is not None:
        for other, what in ((args.input, "the input"), (args.out, "the output")):
            if args.state.resolve() == other.resolve() or (
                args.state.exists() and other.exists() and args.state.samefile(other)
            ):
                raise CLIError(f"--state {args.state} is {what} file; choose another path")


def _check(corpus: Corpus, spec: ModelSpec, args: argparse.Namespace) -> None:
    """Every check the run would make, before anything is sent (also for --dry-run)."""
    if args.batch_api:
        if args.text_type == "query":
            raise CLIError(
                "--text-type query does not apply with --batch-api: Batch API lines are "
                "OpenAI-compatible requests, which embed queries and documents alike"
            )
        _plan.check_inputs(
            corpus.texts,
            corpus.ids,
            spec,
            dimension=args.dimension,
            texts_per_line=spec.max_batch_size,
            token_counter=None,
        )
    else:
        text.check_options(
            spec,
            dimension=args.dimension,
            text_type=args.text_type,
            output_type="dense",
            instruct=None,
            protocol="native",
        )
        text.check_texts(corpus.texts, spec, long_ok=args.long_text != "error")


def _dry_run(corpus: Corpus, spec: ModelSpec, args: argparse.Namespace) -> int:
    endpoints = resolve_endpoints(region=args.region, base_url=args.base_url)
    tokens, exact = text.count_for_estimate(corpus.texts)
    count = len(corpus.texts)
    if args.batch_api:
        lines = _plan.plan_lines([(0, count)], spec.max_batch_size)
        sizes = [
            len(_plan.line_bytes(spec.name, corpus.texts, 0, s, e, args.dimension))
            for s, e in lines
        ]
        files = _plan.split_files(
            sizes,
            max_lines=args.max_lines_per_file,
            max_bytes=_plan.DEFAULT_MAX_FILE_BYTES,
        )
        requests = len(lines)
        mode = (
            f"Batch API: {requests:,} lines of up to {spec.max_batch_size} texts in "
            f"{len(files)} file(s)"
        )
    else:
        requests = len(text.plan_requests(count, spec.max_batch_size))
        mode = f"real-time: {requests:,} requests of up to {spec.max_batch_size} texts"
    usage = usage_for(spec, tokens, requests, endpoints.region, batch=args.batch_api)
    rate = "Batch API rate" if args.batch_api else "real-time rate"
    dim = args.dimension or spec.default_dimension
    _say(f"inputs:           {count:,} texts from {corpus.source}")
    _say(f"model:            {spec.name}" + (f", dimension {dim}" if dim else ""))
    _say(f"mode:             {mode}")
    if exact:
        _say(f"tokens:           {tokens:,} (counted with the Qwen tokenizer)")
        _say(f"cost:             {_money(usage)} at the {rate} ({endpoints.region} list price)")
    else:
        _say(f"tokens:           estimated, at most {tokens:,} (install [tokenizer] to count)")
        _say(
            f"cost:             estimated, at most {_money(usage)} at the {rate} "
            f"({endpoints.region} list price)"
        )
    _say("dry run: nothing was sent")
    return 0


def _client(args: argparse.Namespace) -> DashScopeClient:
    if not os.environ.get(API_KEY_ENV, "").strip():
        raise CLIError(f"no API key: set {API_KEY_ENV} (--dry-run needs none)")
    options: dict[str, typing.Any] = {}
    if args.base_url is not None:
        options["base_url"] = args.base_url
    if args.region is not None:
        options["region"] = args.region
    if args.max_concurrency is not None:
        options["max_concurrency"] = args.max_concurrency
    return DashScopeClient(**options)


def _write_results(results: BatchResults, corpus: Corpus, out: Path) -> None:
    import numpy as np

    ids = corpus.id_list()
    vectors = results.embeddings
    writer = Writer(out, len(vectors))
    try:
        for start in range(0, len(vectors), _ROWS_PER_WRITE):
            stop = min(start + _ROWS_PER_WRITE, len(vectors))
            writer.write(ids[start:stop], np.asarray(vectors[start:stop], dtype=np.float32))
        writer.close()
    except BaseException:
        writer.abort()
        raise


def _batch_progress() -> tuple[typing.Callable[[JobStatus], None], typing.Callable[[], None]]:
    try:
        tqdm = importlib.import_module("tqdm")
    except ImportError:
        return (lambda _status: None), (lambda: None)
    bar: typing.Any = None

    def update(status: JobStatus) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm.tqdm(
                total=status.lines, unit="line", desc="batch", leave=False, disable=None
            )
        bar.total = status.lines
        bar.n = status.finished_lines
        bar.set_postfix_str(", ".join(f"{n} {s}" for s, n in status.statuses.items()))
        bar.refresh()

    def close() -> None:
        if bar is not None:
            bar.close()

    return update, close


def _run_batch(
    client: DashScopeClient, corpus: Corpus, spec: ModelSpec, args: argparse.Namespace, fp: str
) -> Usage:
    state_path: Path = args.state or args.out.with_name(args.out.name + ".batch.json")
    if state_path.exists():
        saved = JobState.load(state_path)
        if (saved.fingerprint, saved.model, saved.dimension) != (fp, spec.name, args.dimension):
            raise CLIError(
                f"--state {state_path} holds a batch job for other inputs or settings; delete "
                f"it (and {data_dir(state_path)}) or choose another path"
            )
        _log(f"resuming the batch job in {state_path}")
        job = BatchJob.resume(state_path, client)
    else:
        job = BatchJob.submit(
            corpus.texts,
            model=spec,
            dimension=args.dimension,
            state_path=state_path,
            client=client,
            ids=corpus.ids,
            max_lines_per_file=args.max_lines_per_file,
        )
    _log(
        f"batch job: {len(job.batch_ids)} batch(es) created; state in {state_path} (if "
        "interrupted, run the same command again to resume)"
    )
    update, close = _batch_progress()
    try:
        for round_number in range(args.resubmit + 1):
            job.wait(poll_interval=args.poll_interval, progress=update)
            results = job.results()
            if results.complete or round_number == args.resubmit:
                break
            _log(f"resubmitting {job.resubmit_failed():,} failed input(s)")
    finally:
        close()
    if not results.complete:
        for failure in results.failed[:5]:
            _log(f"  {corpus.where(failure.index)}: {failure}")
        raise CLIError(
            f"{len(results.failed):,} of {len(corpus.texts):,} inputs failed (first ones "
            f"above); nothing was written. Run the same command again to resubmit them "
            f"(state: {state_path})",
            code=1,
        )
    _write_results(results, corpus, args.out)
    state_path.unlink(missing_ok=True)
    shutil.rmtree(data_dir(state_path), ignore_errors=True)
    return results.usage


def run(args: argparse.Namespace) -> int:
    """Run ``embed`` with parsed arguments; errors are raised for the caller to report."""
    _check_options(args)
    corpus = read_corpus(args.input, text_field=args.text_field, id_field=args.id_field)
    spec = get_model_spec(args.model)
    if spec.endpoint == "async_task":
        raise CLIError(
            f"{spec.name} runs as a file task: add --file-task (with --input-url or "
            "--upload-command)"
        )
    try:
        _check(corpus, spec, args)
    except InvalidInputError as exc:
        if exc.index is None:
            raise
        message = str(exc).replace(
            "long_text='truncate' or 'chunk'", "--long-text truncate or chunk"
        )
        raise CLIError(f"{corpus.where(exc.index)}: {message}") from None
    if args.dry_run:
        return _dry_run(corpus, spec, args)
    _check_paths(args)
    fp = fingerprint(corpus.texts, corpus.ids)
    written = len(corpus.texts)
    with _client(args) as client:
        if args.batch_api:
            usage = _run_batch(client, corpus, spec, args, fp)
        else:
            usage, written = run_realtime(
                client,
                corpus,
                args.out,
                spec=spec,
                dimension=args.dimension,
                text_type=typing.cast(TextType, args.text_type),
                chunk_size=args.chunk_size,
                state_path=args.state,
                fingerprint=fp,
                log=_log,
                long_text=typing.cast(LongText, args.long_text),
                rejected_report=rejected_report(args),
            )
    _log(f"wrote {written:,} vectors to {args.out}: {usage.total_tokens:,} tokens, {_money(usage)}")
    return 0
