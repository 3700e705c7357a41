"""The ``dashscope-embeddings`` command against the bundled emulator, over loopback HTTP.

Most runs call ``main()`` in-process; interruption (SIGINT), the console script and the
``emulator`` sub-command run in real subprocesses.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest

from dashscope_embeddings import DashScopeClient, _tokenizer, list_models
from dashscope_embeddings.batch import BatchJob, fingerprint
from dashscope_embeddings.cli import main
from dashscope_embeddings.emulator import Emulator
from tests.conftest import NATIVE_PATH, TEST_KEY, sent_bodies

MODEL = "text-embedding-v4"
DIM = 64
CLI = [sys.executable, "-m", "dashscope_embeddings.cli"]


def texts_of(n: int) -> list[str]:
    return [
        f'note {i}: the "{["red", "blue", "green"][i % 3]}" lamp, by the river' for i in range(n)
    ]


def expected(emu: Emulator, texts: list[str], **options: Any) -> np.ndarray:
    with DashScopeClient(TEST_KEY, base_url=emu.url) as client:
        result = client.embed_texts(texts, model=MODEL, dimension=DIM, **options)
    return np.asarray(result.embeddings, dtype=np.float32)


def write_input(path: Path, texts: list[str], ids: list[str]) -> list[str]:
    """``path`` in its format; returns the extra arguments that select text and id."""
    suffix = path.suffix
    if suffix == ".txt":
        path.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
        return []
    if suffix == ".jsonl":
        records = [{"id": i, "body": t, "extra": 1} for i, t in zip(ids, texts, strict=True)]
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        return ["--text-field", "body"]
    if suffix == ".csv":
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "text"])
            writer.writerows(zip(ids, texts, strict=True))
        return []
    pq.write_table(pa.table({"key": ids, "text": texts}), path)
    return ["--id-field", "key"]


def read_output(path: Path) -> tuple[list[str] | None, np.ndarray]:
    if path.suffix == ".npy":
        return None, np.load(path)
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        return [r["id"] for r in rows], np.asarray([r["embedding"] for r in rows], np.float32)
    table = pq.read_table(path)
    assert table.schema.field("embedding").type == pa.list_(pa.float32())
    return table.column("id").to_pylist(), np.asarray(
        table.column("embedding").to_pylist(), np.float32
    )


@pytest.fixture
def emu(emulator_env: Emulator) -> Iterator[Emulator]:
    emulator_env.batch.reset()
    yield emulator_env
    emulator_env.batch.reset()


@pytest.mark.parametrize("suffix", [".txt", ".jsonl", ".csv", ".parquet"])
def test_each_input_format_keeps_order_and_ids(
    emu: Emulator, tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    texts = texts_of(23)
    ids = [f"doc-{i:02d}" for i in range(23)]
    source = tmp_path / f"corpus{suffix}"
    extra = write_input(source, texts, ids)
    out = tmp_path / "vectors.jsonl"
    code = main(
        [
            "embed",
            str(source),
            "--model",
            MODEL,
            "--out",
            str(out),
            "--dimension",
            str(DIM),
            "--chunk-size",
            "7",
            *extra,
        ]
    )
    assert code == 0, capsys.readouterr().err
    got_ids, vectors = read_output(out)
    assert got_ids == ([str(i) for i in range(23)] if suffix == ".txt" else ids)
    np.testing.assert_array_equal(vectors, expected(emu, texts, text_type="document"))
    assert "wrote 23 vectors" in capsys.readouterr().err


@pytest.mark.parametrize("batch_api", [False, True], ids=["real-time", "batch-api"])
@pytest.mark.parametrize("suffix", [".npy", ".jsonl", ".parquet"])
def test_each_output_format_in_both_modes(
    emu: Emulator, tmp_path: Path, suffix: str, batch_api: bool
) -> None:
    texts = texts_of(31)
    ids = [f"k{i}" for i in range(31)]
    source = tmp_path / "corpus.csv"
    write_input(source, texts, ids)
    out = tmp_path / f"vectors{suffix}"
    mode = ["--batch-api", "--poll-interval", "0"] if batch_api else []
    assert (
        main(["embed", str(source), "-m", MODEL, "-o", str(out), "--dimension", str(DIM), *mode])
        == 0
    )
    got_ids, vectors = read_output(out)
    assert vectors.dtype == np.float32 and vectors.shape == (31, DIM)
    assert got_ids in (None, ids)
    if batch_api:
        assert emu.batch.counters.lines_billed == 4
        want = expected(emu, texts, protocol="compatible")
    else:
        assert emu.batch.counters.uploads == 0
        want = expected(emu, texts, text_type="document")
    np.testing.assert_array_equal(vectors, want)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.csv", out.name]  # no state left


def test_dry_run_counts_and_prices_and_sends_nothing(
    emu: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("DASHSCOPE_API_KEY")  # a dry run needs no key
    texts = texts_of(57)
    source = tmp_path / "c.txt"
    write_input(source, texts, [])
    counter = _tokenizer.exact_counter()
    assert counter is not None, "the [tokenizer] extra is part of the test install"
    tokens = sum(counter(t) for t in texts)
    emu.clear_requests()
    for extra, price, mode in (
        ([], 0.0005, "real-time: 6 requests of up to 10 texts"),
        (
            ["--batch-api", "--max-lines-per-file", "4"],
            0.00025,
            "Batch API: 6 lines of up to 10 texts in 2 file(s)",
        ),
    ):
        code = main(
            ["embed", str(source), "-m", MODEL, "-o", str(tmp_path / "o.npy"), "--dry-run", *extra]
        )
        out = capsys.readouterr().out
        assert code == 0
        assert "57 texts from c.txt" in out and mode in out
        assert f"tokens:           {tokens:,} (counted with the Qwen tokenizer)" in out
        assert f"CNY {tokens * price / 1000:.6g}" in out
    assert emu.requests == [] and emu.batch.counters.uploads == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt"]


def test_dry_run_without_the_tokenizer_says_estimated_at_most(
    emulator_env: object,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_tokenizer, "exact_counter", lambda: None)
    texts = texts_of(20)
    source = tmp_path / "c.txt"
    write_input(source, texts, [])
    counter = _tokenizer.service_counter()
    assert counter is not None
    exact = sum(counter(t) for t in texts)
    code = main(["embed", str(source), "-m", MODEL, "-o", str(tmp_path / "o.npy"), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    line = next(x for x in out.splitlines() if x.startswith("tokens:"))
    assert "estimated, at most" in line
    at_most = int(line.split("at most ")[1].split()[0].replace(",", ""))
    assert at_most >= exact  # an upper bound, never below the real count


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("dashscope-embeddings: error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no key", "no API key: set DASHSCOPE_API_KEY"),
        ("missing input", "input file"),
        ("missing column", "c.csv has no column 'body' (columns: 'id', 'text')"),
        ("bad json", "line 2 of c.jsonl is not valid JSON"),
        ("empty text", "line 3 of c.txt: input 2 is empty"),
        ("duplicate id", "line 3 of c.jsonl: id 'a' repeats the id of line 1"),
        ("missing folder", "absent does not exist"),
        ("folder is a file", "a-file is not a directory"),
        ("unknown output", "the output must end in .npy, .jsonl, .parquet"),
        ("query in batch", "--text-type query does not apply with --batch-api"),
        ("bad dimension", "dimension 100 is not offered by text-embedding-v4"),
    ],
)
def test_user_errors_are_one_line_exit_2_and_send_nothing(
    emu: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: str,
    message: str,
) -> None:
    (tmp_path / "c.txt").write_text("one\ntwo\n\nfour\n" if case == "empty text" else "one\n")
    (tmp_path / "c.csv").write_text("id,text\n1,one\n")
    jsonl = ['{"id": "a", "text": "x"}', '{"id": "b", "text": "y"}', '{"id": "a", "text": "z"}']
    if case == "bad json":
        jsonl[1] = '{"id": "b", "text": '
    (tmp_path / "c.jsonl").write_text("\n".join(jsonl) + "\n")
    (tmp_path / "a-file").write_text("")
    source, out, extra = "c.txt", "o.npy", []
    if case == "no key":
        monkeypatch.delenv("DASHSCOPE_API_KEY")
    elif case == "missing input":
        source = "absent.txt"
    elif case == "missing column":
        source, extra = "c.csv", ["--text-field", "body"]
    elif case in ("bad json", "duplicate id"):
        source = "c.jsonl"
    elif case == "missing folder":
        out = "absent/o.npy"
    elif case == "folder is a file":
        out = "a-file/o.npy"
    elif case == "unknown output":
        out = "o.csv"
    elif case == "query in batch":
        extra = ["--batch-api", "--text-type", "query"]
    elif case == "bad dimension":
        extra = ["--dimension", "100"]
    emu.clear_requests()
    code = main(["embed", str(tmp_path / source), "-m", MODEL, "-o", str(tmp_path / out), *extra])
    assert code == 2
    assert message in one_line_error(capsys)
    assert emu.requests == [] and emu.batch.counters.uploads == 0


def test_a_service_error_is_one_line_exit_1_without_the_key(
    emu: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-wrong-key-123456")
    (tmp_path / "c.txt").write_text("one\n")
    assert main(["embed", str(tmp_path / "c.txt"), "-m", MODEL, "-o", str(tmp_path / "o.npy")]) == 1
    line = one_line_error(capsys)
    assert "HTTP 401" in line and "sk-wrong-key" not in line
    assert not (tmp_path / "o.npy").exists()


def wait_for(predicate: Any, what: str, child: subprocess.Popen[str], limit: float = 15) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        if child.poll() is not None:
            raise AssertionError(f"the command ended before {what}: {child.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def state_json(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def interrupt(child: subprocess.Popen[str]) -> str:
    """Ctrl-C, pressed again as a user would if the first was swallowed by a finalizer."""
    for _ in range(3):
        child.send_signal(signal.SIGINT)
        try:
            _, err = child.communicate(timeout=5)
            break
        except subprocess.TimeoutExpired:
            continue
    else:
        child.kill()
        _, err = child.communicate()
        raise AssertionError(f"the command did not stop on Ctrl-C: {err}")
    assert child.returncode == 130, err
    assert "Traceback" not in err
    return err


@pytest.fixture(scope="module")
def slow_emu() -> Iterator[Emulator]:
    """An emulator answering each embedding request after 50 ms, so a run can be interrupted."""
    with Emulator(api_key=TEST_KEY, latency=0.05) as emulator:
        yield emulator


def test_real_time_run_resumes_after_sigint_sending_nothing_finished(
    slow_emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = texts_of(480)  # 24 chunks of 20, each 2 requests of 50 ms: over 2 s in all
    source, out, state = tmp_path / "c.txt", tmp_path / "o.npy", tmp_path / "run.json"
    write_input(source, texts, [])
    args = [
        "embed",
        str(source),
        "-m",
        MODEL,
        "-o",
        str(out),
        "--dimension",
        str(DIM),
        "--state",
        str(state),
        "--chunk-size",
        "20",
        "--max-concurrency",
        "1",
    ]
    env = dict(os.environ, DASHSCOPE_API_KEY=TEST_KEY, DASHSCOPE_BASE_URL=slow_emu.url)
    slow_emu.clear_requests()
    child = subprocess.Popen(
        [*CLI, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_for(lambda: len(state_json(state).get("chunks", {})) >= 2, "2 chunks", child)
    err = interrupt(child)
    assert f"run the same command again to resume (state: {state})" in err
    assert not out.exists()
    done = {int(k) for k in state_json(state)["chunks"]}
    assert 2 <= len(done) < 24
    finished = {t for k in done for t in texts[k * 20 : (k + 1) * 20]}

    slow_emu.clear_requests()
    monkeypatch.setenv("DASHSCOPE_API_KEY", TEST_KEY)
    monkeypatch.setenv("DASHSCOPE_BASE_URL", slow_emu.url)
    assert main(args) == 0
    sent = [t for r in slow_emu.requests if r.path == NATIVE_PATH for t in r.json["input"]["texts"]]
    assert not finished & set(sent)  # nothing finished was sent again
    assert set(sent) == set(texts) - finished
    np.testing.assert_array_equal(np.load(out), expected(slow_emu, texts, text_type="document"))
    assert not state.exists() and not (tmp_path / "run.json.d").exists()


def test_batch_run_resumes_after_sigint_without_uploading_or_billing_twice(
    emu: Emulator, tmp_path: Path
) -> None:
    emu.batch.configure(delay_s=1000.0)
    texts = texts_of(45)
    ids = [f"id-{i}" for i in range(45)]
    source, out, state = tmp_path / "c.jsonl", tmp_path / "o.parquet", tmp_path / "job.json"
    extra = write_input(source, texts, ids)
    args = [
        "embed",
        str(source),
        "-m",
        MODEL,
        "-o",
        str(out),
        "--dimension",
        str(DIM),
        "--batch-api",
        "--state",
        str(state),
        "--poll-interval",
        "0.02",
        "--max-lines-per-file",
        "2",
        *extra,
    ]
    child = subprocess.Popen(
        [*CLI, *args],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def all_created() -> bool:
        parts = state_json(state).get("parts", [])
        return len(parts) == 3 and all(p["status"] for p in parts)

    wait_for(all_created, "3 batches", child)
    time.sleep(0.1)  # a few polls
    err = interrupt(child)
    assert "the batch job goes on at the service" in err and str(state) in err
    counters = emu.batch.counters
    assert (counters.uploads, counters.batches_created, counters.lines_billed) == (3, 3, 0)

    emu.batch.advance(2000.0)
    assert main(args) == 0
    counters = emu.batch.counters
    assert (counters.uploads, counters.batches_created, counters.lines_billed) == (3, 3, 5)
    got_ids, vectors = read_output(out)
    assert got_ids == ids
    np.testing.assert_array_equal(vectors, expected(emu, texts, protocol="compatible"))
    assert not state.exists()


def test_console_script_lists_the_registry() -> None:
    script = Path(sys.executable).parent / "dashscope-embeddings"
    done = subprocess.run([str(script), "models"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:2] == ["model", "endpoint"]
    assert [line.split()[0] for line in lines[1:]] == [spec.name for spec in list_models()]
    v4 = next(line for line in lines if line.startswith("text-embedding-v4 "))
    assert "1024*" in v4 and "0.00025" in v4


def test_emulator_command_prints_a_base_url_that_answers() -> None:
    child = subprocess.Popen(
        [*CLI, "emulator", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        first = child.stdout.readline()
        url = first.split("compatible ")[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        answer = httpx.post(
            url + "/embeddings",
            json={"model": MODEL, "input": ["hi"]},
            headers={"Authorization": "Bearer any"},
            timeout=10,
        )
        assert answer.status_code == 200 and len(answer.json()["data"]) == 1
    finally:
        child.terminate()
        child.communicate(timeout=10)
    assert child.returncode == 0


def test_a_state_from_another_run_is_refused(
    emu: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "c.txt"
    write_input(source, texts_of(5), [])
    with DashScopeClient(TEST_KEY, base_url=emu.url) as client:
        BatchJob.submit(texts_of(6), model=MODEL, state_path=tmp_path / "job.json", client=client)
    uploads = emu.batch.counters.uploads
    code = main(
        [
            "embed",
            str(source),
            "-m",
            MODEL,
            "-o",
            str(tmp_path / "o.npy"),
            "--batch-api",
            "--state",
            str(tmp_path / "job.json"),
        ]
    )
    assert code == 2
    assert "holds a batch job for other inputs or settings" in one_line_error(capsys)
    assert emu.batch.counters.uploads == uploads

    (tmp_path / "run.json").write_text(json.dumps({"kind": "something else"}))
    code = main(
        [
            "embed",
            str(source),
            "-m",
            MODEL,
            "-o",
            str(tmp_path / "o.npy"),
            "--state",
            str(tmp_path / "run.json"),
        ]
    )
    assert code == 2
    assert "is not the state of a real-time run" in one_line_error(capsys)
    assert (
        main(
            [
                "embed",
                str(source),
                "-m",
                MODEL,
                "-o",
                str(tmp_path / "o.npy"),
                "--state",
                str(tmp_path / "new.json"),
                "--chunk-size",
                "2",
            ]
        )
        == 0
    )
    capsys.readouterr()
    (tmp_path / "new.json").write_text(
        json.dumps(
            {
                "kind": "dashscope-embeddings real-time run",
                "version": 1,
                "fingerprint": "0" * 64,
                "model": MODEL,
                "dimension": None,
                "text_type": "document",
                "chunk_size": 2,
                "count": 5,
                "chunks": {},
            }
        )
    )
    code = main(
        [
            "embed",
            str(source),
            "-m",
            MODEL,
            "-o",
            str(tmp_path / "o.npy"),
            "--state",
            str(tmp_path / "new.json"),
            "--chunk-size",
            "2",
            "--overwrite",
        ]
    )
    assert code == 2
    assert "belongs to a run with other inputs" in one_line_error(capsys)


def test_batch_failures_exit_1_keep_the_state_and_a_rerun_resubmits_them(
    emu: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    texts = texts_of(12)  # two lines: t0-0-5 and t0-6-11
    source, out = tmp_path / "c.txt", tmp_path / "o.npy"
    write_input(source, texts, [])
    emu.batch.fail_lines(custom_ids=["t0-0-5"], status=500, code="InternalError")
    args = [
        "embed",
        str(source),
        "-m",
        MODEL,
        "-o",
        str(out),
        "--dimension",
        str(DIM),
        "--batch-api",
        "--poll-interval",
        "0",
    ]
    assert main([*args, "--resubmit", "0"]) == 1
    err = capsys.readouterr().err
    assert "line 1 of c.txt: input 0 (id '0'): HTTP 500 InternalError" in err
    assert "6 of 12 inputs failed" in err and "Run the same command again" in err
    assert not out.exists() and (tmp_path / "o.npy.batch.json").exists()

    assert main(args) == 0
    np.testing.assert_array_equal(np.load(out), expected(emu, texts, protocol="compatible"))
    counters = emu.batch.counters
    assert (counters.uploads, counters.batches_created, counters.lines_billed) == (2, 2, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt", "o.npy"]


# --- outputs that must not be lost, rejected texts, long texts, pipes -------------------------


def embed_args(source: Path, out: Path, *extra: str) -> list[str]:
    return ["embed", str(source), "-m", MODEL, "-o", str(out), "--dimension", str(DIM), *extra]


def texts_sent(emu: Emulator) -> list[str]:
    return [t for body in sent_bodies(emu) for t in body["input"]["texts"]]


def test_an_output_that_is_the_input_is_refused_and_the_input_kept(
    emu: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "corpus.jsonl"
    write_input(source, texts_of(3), ["a", "b", "c"])
    before = source.read_bytes()
    (tmp_path / "link.jsonl").symlink_to(source)
    for out in (source, tmp_path / "link.jsonl"):
        code = main(embed_args(source, out, "--text-field", "body", "--overwrite"))
        assert code == 2
        assert "is the input" in one_line_error(capsys)
    assert source.read_bytes() == before
    assert emu.requests == []


def test_an_existing_output_is_replaced_only_with_overwrite(
    emu: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, out = tmp_path / "c.txt", tmp_path / "o.jsonl"
    write_input(source, texts_of(4), [])
    out.write_text("vectors of an earlier run\n")
    assert main(embed_args(source, out)) == 2
    assert f"{out} exists; pass --overwrite to replace it" in one_line_error(capsys)
    assert out.read_text() == "vectors of an earlier run\n" and emu.requests == []
    assert main(embed_args(source, out, "--overwrite")) == 0
    ids, vectors = read_output(out)
    assert ids == ["0", "1", "2", "3"]
    np.testing.assert_array_equal(vectors, expected(emu, texts_of(4), text_type="document"))


def rejected_corpus(path: Path, bad: set[int], n: int = 25) -> tuple[list[str], list[str]]:
    texts = [f"text {i} " + ("with __REJECT__ in it" if i in bad else "fine") for i in range(n)]
    ids = [f"doc-{i:02d}" for i in range(n)]
    path.write_text(
        "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in zip(ids, texts, strict=True))
    )
    return texts, ids


def test_a_rejected_text_is_one_line_naming_its_line_id_and_reason(
    emu: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, out = tmp_path / "c.jsonl", tmp_path / "o.jsonl"
    rejected_corpus(source, {13})
    code = main(embed_args(source, out, "--chunk-size", "10"))
    assert code == 1
    line = one_line_error(capsys)
    assert "line 14 of c.jsonl (id 'doc-13')" in line
    assert "DataInspectionFailed" in line and "inappropriate content" in line
    assert "input 3" not in line  # its place in a chunk means nothing to the user
    assert "--skip-rejected" in line and "--state" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.jsonl"]  # nothing partial left


def test_with_state_a_run_resumes_after_fixing_the_line_sending_only_what_changed(
    emu: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, out, state = tmp_path / "c.jsonl", tmp_path / "o.npy", tmp_path / "run.json"
    texts, ids = rejected_corpus(source, {13, 22})
    args = embed_args(source, out, "--chunk-size", "10", "--state", str(state))
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "line 14 of c.jsonl (id 'doc-13')" in err and "line 23 of c.jsonl (id 'doc-22')" in err
    assert "Traceback" not in err and f"state: {state}" in err
    assert not out.exists() and state.exists()

    texts[13], texts[22] = "text 13 fixed", "text 22 fixed"
    texts[1] = "text 1 edited since"  # a line of a finished chunk changed too
    source.write_text(
        "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in zip(ids, texts, strict=True))
    )
    emu.clear_requests()
    assert main(args) == 0, capsys.readouterr().err
    assert sorted(texts_sent(emu)) == sorted([*texts[:10], texts[13], texts[22]])
    np.testing.assert_array_equal(np.load(out), expected(emu, texts, text_type="document"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.jsonl", "o.npy"]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_skip_rejected_writes_the_rest_and_a_report(
    emu: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    source, out = tmp_path / "c.jsonl", tmp_path / f"o{suffix}"
    texts, ids = rejected_corpus(source, {3, 17})
    assert main(embed_args(source, out, "--chunk-size", "10", "--skip-rejected")) == 0
    err = capsys.readouterr().err
    report = tmp_path / f"o{suffix}.rejected.jsonl"
    assert f"skipped 2 rejected text(s), listed in {report}" in err
    keep = [i for i in range(25) if i not in (3, 17)]
    got_ids, vectors = read_output(out)
    assert got_ids == [ids[i] for i in keep]
    want = expected(emu, [texts[i] for i in keep], text_type="document")
    np.testing.assert_array_equal(vectors, want)
    rows = [json.loads(line) for line in report.read_text().splitlines()]
    assert [(r["line"], r["id"], r["code"]) for r in rows] == [
        (4, "doc-03", "DataInspectionFailed"),
        (18, "doc-17", "DataInspectionFailed"),
    ]
    assert all("inappropriate content" in r["message"] for r in rows)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--skip-rejected", "-o", "o.npy"], "--skip-rejected needs an output with ids"),
        (["--skip-rejected", "--batch-api"], "--skip-rejected is for real-time runs"),
        (["--long-text", "chunk", "--batch-api"], "--long-text chunk is for real-time runs"),
    ],
)
def test_options_that_do_not_go_together_are_refused(
    emu: Emulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    source = tmp_path / "c.txt"
    write_input(source, texts_of(2), [])
    code = main(embed_args(source, tmp_path / "o.jsonl", *extra))
    assert code == 2
    assert message in one_line_error(capsys)
    assert emu.requests == [] and emu.batch.counters.uploads == 0


def test_a_long_text_is_refused_naming_the_cli_option(
    emu: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "c.txt"
    source.write_text("short\n" + "lamp " * 9000 + "\n")
    assert main(embed_args(source, tmp_path / "o.npy")) == 2
    line = one_line_error(capsys)
    assert "line 2 of c.txt" in line and "--long-text truncate or chunk" in line
    assert "long_text=" not in line and emu.requests == []


@pytest.mark.parametrize("mode", ["truncate", "chunk"])
def test_long_text_reaches_the_client(emu: Emulator, tmp_path: Path, mode: str) -> None:
    texts = ["short", "lamp " * 9000]
    source, out = tmp_path / "c.txt", tmp_path / "o.npy"
    source.write_text("".join(t + "\n" for t in texts))
    assert main(embed_args(source, out, "--long-text", mode)) == 0
    want = expected(emu, texts, text_type="document", long_text=mode)
    np.testing.assert_array_equal(np.load(out), want)


def test_a_closed_pipe_ends_quietly() -> None:
    child = subprocess.Popen(
        [*CLI, "models"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    child.stdout.close()  # as `| head` does once it has its lines: every write gets EPIPE
    _, err = child.communicate(timeout=60)
    assert err == "" and child.returncode in (0, 141)


def test_a_state_of_the_earlier_format_for_these_inputs_is_resumed(
    emu: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    texts = texts_of(5)
    source, out, state = tmp_path / "c.txt", tmp_path / "o.npy", tmp_path / "run.json"
    write_input(source, texts, [])
    want = expected(emu, texts, text_type="document")
    (tmp_path / "run.json.d").mkdir()
    np.save(tmp_path / "run.json.d" / "chunk-000000.npy", want[:2])
    state.write_text(
        json.dumps(
            {
                "kind": "dashscope-embeddings real-time run",
                "version": 1,
                "fingerprint": fingerprint(texts, None),
                "model": MODEL,
                "dimension": DIM,
                "text_type": "document",
                "chunk_size": 2,
                "count": 5,
                "chunks": {"0": {"rows": 2, "tokens": 7, "requests": 1}},
            }
        )
    )
    emu.clear_requests()
    assert main(embed_args(source, out, "--chunk-size", "2", "--state", str(state))) == 0
    assert "resuming: 1 chunk(s) already done" in capsys.readouterr().err
    assert texts_sent(emu) == texts[2:]
    np.testing.assert_array_equal(np.load(out), want)


def test_emulator_subcommand_help_names_itself(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["emulator", "--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("usage: dashscope-embeddings emulator ")
