"""``dashscope-embeddings embed --file-task`` against the bundled emulator, over loopback HTTP.

Input files are served from a folder by a tiny threaded ``http.server`` on 127.0.0.1; the
emulator downloads them as the service downloads a public URL. The upload command is a small
Python script that copies the file into that folder, notes that it ran, and prints its URL.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shlex
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest

from dashscope_embeddings import DashScopeClient, _tokenizer
from dashscope_embeddings.batch import FileTaskJob
from dashscope_embeddings.cli import main
from dashscope_embeddings.emulator import Emulator
from dashscope_embeddings.emulator._file_tasks import FileTaskController
from tests.conftest import TEST_KEY
from tests.e2e.test_cli import interrupt, state_json, wait_for

CLI = [sys.executable, "-m", "dashscope_embeddings.cli"]

UPLOADER = textwrap.dedent(
    """
    import shutil, sys, uuid
    from pathlib import Path

    folder, port, log, source = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4]
    name = uuid.uuid4().hex + ".txt"
    shutil.copyfile(source, folder / name)
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(name + "\\n")
    print("copied", source)
    print(f"http://127.0.0.1:{port}/{name}")
    print()
    """
)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    """A folder served on 127.0.0.1, and its port."""
    folder = tmp_path_factory.mktemp("served")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join()


def serve(served: tuple[Path, int], name: str, texts: list[str]) -> str:
    folder, port = served
    (folder / name).write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    return f"http://127.0.0.1:{port}/{name}"


def upload_command(served: tuple[Path, int], tmp_path: Path) -> tuple[str, Path]:
    """The ``--upload-command`` value and the file listing each upload it made."""
    folder, port = served
    script, log = tmp_path / "upload.py", tmp_path / "uploads.log"
    script.write_text(UPLOADER, encoding="utf-8")
    parts = [sys.executable, str(script), str(folder), str(port), str(log)]
    return shlex.join(parts), log


def uploads(log: Path) -> list[str]:
    return log.read_text(encoding="utf-8").split() if log.exists() else []


@pytest.fixture
def emu(emulator_env: Emulator) -> Iterator[Emulator]:
    ctl = FileTaskController.of(emulator_env)
    emulator_env.batch.reset()
    ctl.reset()
    ctl.configure(min_interval_s=0)
    yield emulator_env
    emulator_env.batch.reset()
    ctl.reset()


def texts_of(n: int) -> list[str]:
    return [f"entry {i}: a {['grey', 'tall', 'quiet'][i % 3]} heron by the weir" for i in range(n)]


def realtime_v2(emu: Emulator, texts: list[str]) -> np.ndarray:
    with DashScopeClient(TEST_KEY, base_url=emu.url) as client:
        result = client.embed_texts(texts, model="text-embedding-v2")
    return np.asarray(result.embeddings, dtype=np.float32)


def read_output(path: Path) -> tuple[list[str] | None, np.ndarray]:
    if path.suffix == ".npy":
        return None, np.load(path)
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        return [r["id"] for r in rows], np.asarray([r["embedding"] for r in rows], np.float32)
    table = pq.read_table(path)
    return table.column("id").to_pylist(), np.asarray(
        table.column("embedding").to_pylist(), np.float32
    )


def write_jsonl(path: Path, texts: list[str], ids: list[str]) -> None:
    path.write_text(
        "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in zip(ids, texts, strict=True)),
        encoding="utf-8",
    )


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("dashscope-embeddings: error: ")
    return lines[0]


@pytest.mark.parametrize("suffix", [".jsonl", ".npy", ".parquet"])
def test_input_url_alone_gives_vectors_of_realtime_v2_in_line_order(
    emu: Emulator,
    served: tuple[Path, int],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    suffix: str,
) -> None:
    texts = texts_of(37)
    url = serve(served, f"alone{suffix}.txt", texts)
    out = tmp_path / f"v{suffix}"
    code = main(["embed", "--file-task", "--input-url", url, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    ids, vectors = read_output(out)
    np.testing.assert_array_equal(vectors, realtime_v2(emu, texts))
    if ids is not None:
        assert ids == [str(i) for i in range(37)]  # line positions, as for a .txt input
    assert "SUCCEEDED" in err and "wrote 37 vectors" in err
    assert emu.batch.counters.tasks_created == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no state left


def test_input_url_with_its_local_copy_takes_the_ids_and_the_v1_model(
    emu: Emulator, served: tuple[Path, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    texts = texts_of(9)
    ids = [f"doc-{i}" for i in range(9)]
    source = tmp_path / "c.jsonl"
    write_jsonl(source, texts, ids)
    url = serve(served, "copy.txt", texts)
    out = tmp_path / "v.parquet"
    args = ["embed", str(source), "--file-task", "--input-url", url, "-o", str(out)]
    code = main([*args, "-m", "text-embedding-async-v1", "--text-type", "query"])
    assert code == 0, capsys.readouterr().err
    got_ids, vectors = read_output(out)
    assert got_ids == ids
    with DashScopeClient(TEST_KEY, base_url=emu.url) as client:
        want = client.embed_texts(texts, model="text-embedding-v1", text_type="query")
    np.testing.assert_array_equal(vectors, np.asarray(want.embeddings, np.float32))


def test_upload_command_runs_once_even_when_an_interrupted_run_is_resumed(
    emu: Emulator, served: tuple[Path, int], tmp_path: Path
) -> None:
    emu.batch.configure(delay_s=1000.0)
    texts = texts_of(25)
    ids = [f"k{i}" for i in range(25)]
    source, out, state = tmp_path / "c.jsonl", tmp_path / "o.jsonl", tmp_path / "task.json"
    write_jsonl(source, texts, ids)
    command, log = upload_command(served, tmp_path)
    args = ["embed", str(source), "--file-task", "--upload-command", command, "-o", str(out)]
    args += ["--state", str(state)]
    child = subprocess.Popen(
        [*CLI, *args],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: bool(state_json(state).get("task_id")), "the task's creation", child)
    err = interrupt(child)
    assert "the file task goes on at the service" in err and str(state) in err
    assert len(uploads(log)) == 1 and emu.batch.counters.tasks_created == 1
    assert not out.exists()

    emu.batch.advance(2000.0)  # the task is done by now
    emu.batch.configure(delay_s=0.0)  # (a second task would be too: the counts below tell)
    assert main(args) == 0
    assert len(uploads(log)) == 1  # the resumed run did not upload again
    assert emu.batch.counters.tasks_created == 1
    got_ids, vectors = read_output(out)
    assert got_ids == ids
    np.testing.assert_array_equal(vectors, realtime_v2(emu, texts))
    assert not state.exists() and not (tmp_path / "task.json.d").exists()
    # The uploaded file held the texts, one per line, in order.
    folder, _ = served
    assert (folder / uploads(log)[0]).read_text(encoding="utf-8").splitlines() == texts


LONG = "word " * 3000


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("line break", "line 2 of c.jsonl (id 'b'): the text contains a line break"),
        ("long", "line 3 of c.jsonl (id 'c'): the text has"),
        ("empty", "line 1 of c.jsonl (id 'a'): the text is empty"),
        ("too many", "c.txt holds 100,001 texts; a file task takes at most 100,000 lines"),
        ("other model", "--file-task runs text-embedding-async-v2 or text-embedding-async-v1"),
        ("no source", "--file-task needs --input-url URL or --upload-command CMD"),
        ("no input", "--upload-command needs an input file"),
        ("batch too", "--batch-api does not apply with --file-task"),
        ("without --file-task", "--upload-command is for --file-task runs"),
        ("async model in real time", "text-embedding-async-v2 runs as a file task"),
        ("bad dimension", "dimension 512 is not offered by text-embedding-async-v2"),
    ],
)
def test_refusals_come_before_anything_is_uploaded_or_sent(
    emu: Emulator,
    served: tuple[Path, int],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    message: str,
) -> None:
    texts = ["first", "second", "third"]
    if case == "line break":
        texts[1] = "sec\nond"
    elif case == "long":
        texts[2] = LONG
    elif case == "empty":
        texts[0] = "  "
    write_jsonl(tmp_path / "c.jsonl", texts, ["a", "b", "c"])
    (tmp_path / "c.txt").write_text("x\n" * 100_001, encoding="utf-8")
    command, log = upload_command(served, tmp_path)
    source, extra = "c.jsonl", ["--file-task", "--upload-command", command]
    if case == "too many":
        source = "c.txt"
    elif case == "other model":
        extra += ["-m", "text-embedding-v4"]
    elif case == "no source":
        extra = ["--file-task"]
    elif case == "no input":
        source = ""
    elif case == "batch too":
        extra += ["--batch-api"]
    elif case == "without --file-task":
        extra = ["--upload-command", command, "-m", "text-embedding-v4"]
    elif case == "async model in real time":
        extra = ["-m", "text-embedding-async-v2"]
    elif case == "bad dimension":
        extra += ["--dimension", "512"]
    emu.clear_requests()
    inputs = [str(tmp_path / source)] if source else []
    code = main(["embed", *inputs, "-o", str(tmp_path / "o.npy"), *extra])
    assert code == 2
    assert message in one_line_error(capsys)
    assert emu.requests == [] and uploads(log) == []
    assert not (tmp_path / "o.npy").exists() and not (tmp_path / "o.npy.task.json").exists()


def test_dry_run_counts_and_prices_and_sends_nothing(
    emu: Emulator,
    served: tuple[Path, int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("DASHSCOPE_API_KEY")  # a dry run needs no key
    texts = texts_of(12)
    source = tmp_path / "c.txt"
    source.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    url = serve(served, "dry.txt", texts)
    command, log = upload_command(served, tmp_path)
    counter = _tokenizer.exact_counter()
    assert counter is not None, "the [tokenizer] extra is part of the test install"
    tokens = sum(counter(t) for t in texts)
    emu.clear_requests()
    out = str(tmp_path / "o.npy")
    for inputs, what in (
        ([str(source), "--upload-command", command], "12 texts from c.txt"),
        (["--input-url", url], f"12 texts from {url}"),
    ):
        code = main(["embed", *inputs, "--file-task", "-o", out, "--dry-run"])
        printed = capsys.readouterr().out
        assert code == 0
        assert f"inputs:           {what}" in printed
        assert "model:            text-embedding-async-v2, dimension 1536" in printed
        assert "file task: 1 task of 12 lines" in printed
        assert f"tokens:           {tokens:,} (counted with the Qwen tokenizer)" in printed
        assert f"CNY {tokens * 0.0007 / 1000:.6g}" in printed
        assert "dry run: nothing was sent" in printed
    assert emu.requests == [] and uploads(log) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt", "upload.py"]


def test_an_existing_output_needs_overwrite(
    emu: Emulator, served: tuple[Path, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    texts = texts_of(4)
    url = serve(served, "exists.txt", texts)
    out = tmp_path / "o.npy"
    out.write_bytes(b"keep me")
    emu.clear_requests()
    args = ["embed", "--file-task", "--input-url", url, "-o", str(out)]
    assert main(args) == 2
    assert "o.npy exists; pass --overwrite to replace it" in one_line_error(capsys)
    assert emu.requests == [] and out.read_bytes() == b"keep me"
    assert main([*args, "--overwrite"]) == 0
    np.testing.assert_array_equal(np.load(out), realtime_v2(emu, texts))


def test_a_state_of_another_run_is_refused(
    emu: Emulator, served: tuple[Path, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "s.json"
    with DashScopeClient(TEST_KEY, base_url=emu.url) as client:
        FileTaskJob.submit(serve(served, "one.txt", ["a"]), state_path=state, client=client)
    other = serve(served, "two.txt", ["b"])
    out = str(tmp_path / "o.npy")
    code = main(["embed", "--file-task", "--input-url", other, "-o", out, "--state", str(state)])
    assert code == 2
    assert "holds a file task for other inputs or settings" in one_line_error(capsys)
    assert emu.batch.counters.tasks_created == 1


def test_failed_lines_exit_1_name_their_line_and_id_and_write_nothing(
    emu: Emulator, served: tuple[Path, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    FileTaskController.of(emu).fail_lines("tall", code="DataInspectionFailed", message="no")
    texts = texts_of(5)
    source = tmp_path / "c.jsonl"
    write_jsonl(source, texts, [f"d{i}" for i in range(5)])
    url = serve(served, "fails.txt", texts)
    out, state = tmp_path / "o.jsonl", tmp_path / "s.json"
    args = ["embed", str(source), "--file-task", "--input-url", url, "-o", str(out)]
    code = main([*args, "--state", str(state)])
    err = capsys.readouterr().err
    assert code == 1
    assert "line 2 of c.jsonl (id 'd1'): DataInspectionFailed: no" in err
    assert "line 5 of c.jsonl (id 'd4')" in err
    assert "2 of 5 lines failed" in err and "nothing was written" in err
    assert not out.exists() and state.exists()  # the paid-for result is kept


def test_an_unconfirmed_creation_is_not_sent_again(
    emu: Emulator, served: tuple[Path, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, state = serve(served, "once.txt", ["a", "b"]), tmp_path / "s.json"
    with DashScopeClient(TEST_KEY, base_url=emu.url) as client:
        FileTaskJob.submit(url, state_path=state, client=client)
    saved = json.loads(state.read_text())
    saved.update(task_id=None, status=None)  # killed after sending, before the answer
    state.write_text(json.dumps(saved))
    out = str(tmp_path / "o.npy")
    code = main(["embed", "--file-task", "--input-url", url, "-o", out, "--state", str(state)])
    assert code == 2
    line = one_line_error(capsys)
    assert "the task may exist" in line and f"Delete {state}" in line
    assert "resubmit_unconfirmed" not in line  # a Python argument, not a CLI option
    assert emu.batch.counters.tasks_created == 1
