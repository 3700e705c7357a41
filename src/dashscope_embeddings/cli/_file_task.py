"""``dashscope-embeddings embed --file-task``: text-embedding-async-v2 / -v1 file tasks.

The texts reach the service as one UTF-8 file of a text per line behind a URL: either a URL
the user already serves (``--input-url``; the input file may then be omitted) or one printed by
the user's own upload command (``--upload-command``), which is run once with the path of the
file written from the input, and never again when the run is resumed. The run is a
:class:`~dashscope_embeddings.batch.FileTaskJob` kept in ``--state`` (default
``OUTPUT.task.json``); running the same command again after Ctrl-C or a crash resumes the same
task. The vectors are written as in the other modes, in line order.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import time
import typing
from collections.abc import Callable
from pathlib import Path

import httpx

from dashscope_embeddings._config import resolve_endpoints
from dashscope_embeddings._errors import InvalidInputError
from dashscope_embeddings._registry import ModelSpec, get_model_spec
from dashscope_embeddings._types import Usage
from dashscope_embeddings._usage import usage_for
from dashscope_embeddings.batch import _file_task
from dashscope_embeddings.batch._file_task import (
    FileTaskError,
    FileTaskJob,
    FileTaskResults,
    FileTaskStatus,
)
from dashscope_embeddings.batch._state import data_dir
from dashscope_embeddings.cli._embed import _client, _log, _money, _say
from dashscope_embeddings.cli._io import CLIError, Corpus, Writer, check_output, read_corpus
from dashscope_embeddings.resources import text
from dashscope_embeddings.resources.file_tasks import ResultFileError

__all__ = ["DEFAULT_MODEL", "add_arguments", "run", "state_path"]

DEFAULT_MODEL = "text-embedding-async-v2"
_ROWS_PER_WRITE = 10_000
_FIRST_FAILURES_SHOWN = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``embed`` command's file-task arguments."""
    group = parser.add_argument_group(
        "file tasks (text-embedding-async-v2 / -v1: one URL, up to 100,000 lines)"
    )
    group.add_argument(
        "--file-task",
        action="store_true",
        help=f"embed through a file task (model default {DEFAULT_MODEL}); needs --input-url "
        "or --upload-command",
    )
    source = group.add_mutually_exclusive_group()
    source.add_argument(
        "--input-url",
        metavar="URL",
        default=None,
        help="a URL the service can download: UTF-8, one text per line. The input file may "
        "then be omitted (ids are then line positions 0, 1, ...); given, it is that file's "
        "local copy, for ids and the line count",
    )
    source.add_argument(
        "--upload-command",
        metavar="CMD",
        default=None,
        help="a command run once with the path of a file of the input's texts, one per line, "
        "appended; the last non-empty line it prints is the file's URL",
    )


def state_path(args: argparse.Namespace) -> Path:
    """The run's state file: ``--state``, else ``OUTPUT.task.json``."""
    out: Path = args.out
    return typing.cast(Path, args.state) or out.with_name(out.name + ".task.json")


def _check_options(args: argparse.Namespace) -> ModelSpec:
    if args.input_url is None and args.upload_command is None:
        raise CLIError("--file-task needs --input-url URL or --upload-command CMD")
    if args.input is None and args.upload_command is not None:
        raise CLIError("--upload-command needs an input file (its texts are uploaded)")
    for flag, given in (
        ("--batch-api", args.batch_api),
        ("--skip-rejected", args.skip_rejected),
        (f"--long-text {args.long_text}", args.long_text != "error"),
        ("--poll-interval", args.poll_interval is not None),
    ):
        if given:
            raise CLIError(f"{flag} does not apply with --file-task")
    spec = get_model_spec(args.model or DEFAULT_MODEL)
    if spec.endpoint != "async_task":
        raise CLIError(
            f"--file-task runs text-embedding-async-v2 or text-embedding-async-v1, not "
            f"{spec.name} (for {spec.name}: real time, or --batch-api where it is offered)"
        )
    if args.dimension is not None and args.dimension not in spec.dimensions:
        offered = ", ".join(map(str, spec.dimensions))
        raise CLIError(f"dimension {args.dimension} is not offered by {spec.name} ({offered})")
    if args.input_url is not None and not args.input_url.startswith(("http://", "https://")):
        raise CLIError(f"--input-url must be an http(s) URL, got {args.input_url!r}")
    return spec


def _check_texts(corpus: Corpus, spec: ModelSpec) -> None:
    """Refuse, by line and id, any text a task's input file cannot hold."""
    count = len(corpus.texts)
    if count > _file_task.MAX_LINES:
        raise CLIError(
            f"{corpus.source} holds {count:,} texts; a file task takes at most "
            f"{_file_task.MAX_LINES:,} lines (the first one over: "
            f"{corpus.where(_file_task.MAX_LINES)}); split the input"
        )
    try:
        _file_task.check_texts(corpus.texts, spec.max_tokens_per_input or 2048)
    except InvalidInputError as exc:
        if exc.index is None:
            raise
        message = str(exc).replace(f"text {exc.index} ", "the text ", 1)
        raise CLIError(f"{corpus.where(exc.index)}: {message}") from None


def _read_url(url: str) -> list[str]:
    """The lines at ``url`` (for a dry run without a local copy); the service is not called."""
    try:
        response = httpx.get(url, follow_redirects=True, timeout=60)
    except httpx.HTTPError as exc:
        raise CLIError(f"cannot read --input-url {url}: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise CLIError(f"cannot read --input-url {url}: HTTP {response.status_code}")
    try:
        content = response.content.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise CLIError(f"--input-url {url} is not UTF-8 text (byte {exc.start:,})") from None
    lines = content.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def _dry_run(corpus: Corpus | None, spec: ModelSpec, args: argparse.Namespace) -> int:
    endpoints = resolve_endpoints(region=args.region, base_url=args.base_url)
    if corpus is None:
        texts, source = _read_url(args.input_url), args.input_url
    else:
        texts, source = corpus.texts, corpus.source
    tokens, exact = text.count_for_estimate(texts)
    count = len(texts)
    usage = usage_for(spec, tokens, 1, endpoints.region)
    how = (
        f"the input URL {args.input_url}"
        if args.input_url is not None
        else "an upload by --upload-command (not run)"
    )
    _say(f"inputs:           {count:,} texts from {source}")
    _say(f"model:            {spec.name}, dimension {spec.default_dimension}")
    _say(f"mode:             file task: 1 task of {count:,} lines, from {how}")
    if exact:
        _say(f"tokens:           {tokens:,} (counted with the Qwen tokenizer)")
        _say(
            f"cost:             {_money(usage)} at the file-task rate "
            f"({endpoints.region} list price)"
        )
    else:
        _say(f"tokens:           estimated, at most {tokens:,} (install [tokenizer] to count)")
        _say(
            f"cost:             estimated, at most {_money(usage)} at the file-task rate "
            f"({endpoints.region} list price)"
        )
    _say("dry run: nothing was sent")
    return 0


def _uploader(command: str) -> Callable[[Path], str]:
    """``upload(path) -> url`` running the user's command with ``path`` appended."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise CLIError(f"--upload-command cannot be parsed: {exc}") from None
    if not argv:
        raise CLIError("--upload-command is empty")

    def upload(path: Path) -> str:
        _log(f"uploading the input file with --upload-command: {command} {path}")
        try:
            done = subprocess.run(  # the user's own command, no shell
                [*argv, str(path)],
                stdout=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="replace",
                check=False,
            )
        except OSError as exc:
            raise CLIError(
                f"--upload-command: cannot run {argv[0]!r}: {exc.strerror or exc}"
            ) from None
        if done.returncode != 0:
            raise CLIError(
                f"--upload-command exited with status {done.returncode}; nothing was created. "
                "Run the same command again to upload again",
                code=1,
            )
        lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
        url = lines[-1] if lines else ""
        if not url.startswith(("http://", "https://")):
            raise CLIError(
                f"--upload-command must print the file's URL on its last line; it printed "
                f"{url[:80]!r}"
            )
        _log(f"uploaded: {url}")
        return url

    return upload


def _same_job(
    saved: dict[str, typing.Any],
    args: argparse.Namespace,
    spec: ModelSpec,
    corpus: Corpus | None,
    path: Path,
) -> bool:
    if (saved.get("model"), saved.get("text_type")) != (spec.name, args.text_type):
        return False
    if args.input_url is not None:
        lines = None if corpus is None else len(corpus.texts)
        return bool(
            not saved.get("upload")
            and saved.get("input_url") == args.input_url
            and saved.get("lines") == lines
        )
    assert corpus is not None
    written = _file_task.input_path(path)
    return bool(
        saved.get("upload")
        and written.is_file()
        and written.read_bytes() == _file_task.input_bytes(corpus.texts)
    )


def _job(
    client: typing.Any,
    corpus: Corpus | None,
    spec: ModelSpec,
    args: argparse.Namespace,
    path: Path,
) -> FileTaskJob:
    upload = _uploader(args.upload_command) if args.upload_command is not None else None
    if path.exists():
        saved = _file_task.read_state(path)
        if not _same_job(saved, args, spec, corpus, path):
            raise CLIError(
                f"--state {path} holds a file task for other inputs or settings; delete it "
                f"(and {data_dir(path)}) or choose another path"
            )
        if saved.get("create_started") and not saved.get("task_id"):
            raise CLIError(
                f"--state {path}: the task's create request was sent but its answer was not "
                "recorded, so the task may exist (see your tasks in the console). Delete "
                f"{path} (and {data_dir(path)}) to create a new task"
            )
        _log(f"resuming the file task in {path}")
        return FileTaskJob.resume(path, client, upload=upload)
    if upload is not None:
        assert corpus is not None
        return FileTaskJob.from_texts(
            corpus.texts,
            upload=upload,
            model=spec.name,
            text_type=args.text_type,
            state_path=path,
            client=client,
        )
    return FileTaskJob.submit(
        args.input_url,
        model=spec.name,
        text_type=args.text_type,
        state_path=path,
        client=client,
        lines=None if corpus is None else len(corpus.texts),
    )


def _progress() -> Callable[[FileTaskStatus], None]:
    start = time.monotonic()
    last: list[str] = []

    def show(status: FileTaskStatus) -> None:
        if last[-1:] != [status.status]:
            last.append(status.status)
            _log(f"file task {status.task_id}: {status.status} ({time.monotonic() - start:.0f} s)")

    return show


def _write(results: FileTaskResults, corpus: Corpus | None, out: Path) -> None:
    import numpy as np

    vectors = results.embeddings
    if corpus is not None and len(vectors) != len(corpus.texts):
        raise CLIError(
            f"the task returned {len(vectors):,} vectors for the {len(corpus.texts):,} lines "
            f"of {corpus.source}; nothing was written",
            code=1,
        )
    ids = corpus.id_list() if corpus is not None else [str(i) for i in range(len(vectors))]
    writer = Writer(out, len(vectors))
    try:
        for start in range(0, len(vectors), _ROWS_PER_WRITE):
            stop = min(start + _ROWS_PER_WRITE, len(vectors))
            writer.write(ids[start:stop], np.asarray(vectors[start:stop], dtype=np.float32))
        writer.close()
    except BaseException:
        writer.abort()
        raise


def _where(corpus: Corpus | None, index: int) -> str:
    return corpus.where(index) if corpus is not None else f"line {index + 1} of the input URL"


def _finish(
    job: FileTaskJob, corpus: Corpus | None, args: argparse.Namespace, path: Path
) -> tuple[Usage, int]:
    job.wait(progress=_progress())
    try:
        results = job.results()
    except FileTaskError as exc:
        _forget(path)
        raise CLIError(
            f"{exc}; nothing was written. Run the same command again to create a new task",
            code=1,
        ) from None
    except ResultFileError as exc:
        raise CLIError(
            f"{exc}; nothing was written (the task's result is kept in {data_dir(path)})", code=1
        ) from None
    if not results.complete:
        for failure in results.failed[:_FIRST_FAILURES_SHOWN]:
            _log(f"  {_where(corpus, failure.index)}: {failure.code}: {failure.message}")
        raise CLIError(
            f"{len(results.failed):,} of {len(results.vectors):,} lines failed (first ones "
            f"above); nothing was written. The task's result is kept with --state {path}; "
            "delete it to run a new task",
            code=1,
        )
    _write(results, corpus, args.out)
    _forget(path)
    return results.usage, len(results.vectors)


def _forget(path: Path) -> None:
    path.unlink(missing_ok=True)
    shutil.rmtree(data_dir(path), ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    """Run ``embed --file-task`` with parsed arguments; errors are raised for the caller."""
    spec = _check_options(args)
    corpus = None
    if args.input is not None:
        corpus = read_corpus(args.input, text_field=args.text_field, id_field=args.id_field)
        _check_texts(corpus, spec)
    if args.dry_run:
        return _dry_run(corpus, spec, args)
    check_output(args.out, source=args.input, overwrite=args.overwrite)
    path = state_path(args)
    for other, what in ((args.input, "the input"), (args.out, "the output")):
        if other is not None and path.resolve() == other.resolve():
            raise CLIError(f"--state {path} is {what} file; choose another path")
    with _client(args) as client, _job(client, corpus, spec, args, path) as job:
        _log(
            f"file task {job.task_id}; state in {path} (if interrupted, run the same "
            "command again to resume)"
        )
        usage, written = _finish(job, corpus, args, path)
    _log(f"wrote {written:,} vectors to {args.out}: {usage.total_tokens:,} tokens, {_money(usage)}")
    return 0
