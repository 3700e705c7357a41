"""FileTaskJob (text-embedding-async-v1 / -v2) against the bundled emulator.

Input files are served by a tiny threaded ``http.server`` on 127.0.0.1; the emulator downloads
them as the service would download a public URL.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import textwrap
import threading
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashscope_embeddings import DashScopeClient, InvalidInputError
from dashscope_embeddings.batch import FileTaskJob, _file_task
from dashscope_embeddings.batch._file_task import FileTaskError, IncompleteFileTaskError
from dashscope_embeddings.emulator import Emulator
from dashscope_embeddings.emulator._file_tasks import FileTaskController
from dashscope_embeddings.resources.file_tasks import ResultFileError, parse_result_file
from tests.conftest import NATIVE_PATH, TEST_KEY


class _Files(http.server.ThreadingHTTPServer):
    contents: dict[str, bytes]
    gets: list[str]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Files

    def do_GET(self) -> None:
        self.server.gets.append(self.path)
        data = self.server.contents.get(self.path)
        self.send_response(200 if data is not None else 404)
        self.send_header("Content-Length", str(len(data or b"")))
        self.end_headers()
        self.wfile.write(data or b"")

    def do_PUT(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.server.contents[self.path] = self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def files() -> Iterator[_Files]:
    server = _Files(("127.0.0.1", 0), _Handler)
    server.contents, server.gets = {}, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def serve(files: _Files, name: str, lines: list[str]) -> str:
    files.contents["/" + name] = ("\n".join(lines) + "\n").encode("utf-8")
    return f"http://127.0.0.1:{files.server_address[1]}/{name}"


@pytest.fixture
def emu(emulator: Emulator) -> Iterator[Emulator]:
    ctl = FileTaskController.of(emulator)
    emulator.batch.reset()
    ctl.reset()
    ctl.configure(min_interval_s=0)
    yield emulator
    emulator.batch.reset()
    ctl.reset()


@pytest.fixture
def client(emu: Emulator) -> Iterator[DashScopeClient]:
    with DashScopeClient(TEST_KEY, base_url=emu.url) as c:
        yield c


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(_file_task, "_sleep", recorded.append)
    return recorded


def corpus(n: int) -> list[str]:
    return [
        f"line {i} of a corpus about rivers and {['fish', 'boats', 'rain'][i % 3]}"
        for i in range(n)
    ]


def test_2000_lines_come_back_in_order_equal_to_realtime_v2(
    emu: Emulator, client: DashScopeClient, files: _Files, tmp_path: Path
) -> None:
    texts = corpus(2000)
    url = serve(files, "corpus.txt", texts)
    seen: list[str] = []
    job = FileTaskJob.submit(url, state_path=tmp_path / "t.json", client=client, lines=2000)
    job.wait(progress=lambda s: seen.append(s.status))
    results = job.results()
    realtime = client.embed_texts(texts, model="text-embedding-v2")
    assert len(results.embeddings) == 2000
    assert results.embeddings == realtime.embeddings
    assert results.usage.total_tokens == realtime.usage.total_tokens
    assert results.usage.cost == pytest.approx(realtime.usage.total_tokens * 0.0007 / 1000)
    assert seen[-1] == "SUCCEEDED"
    # The signed result link was fetched without the key.
    downloads = [r for r in emu.requests if r.path.startswith("/oss/")]
    assert len(downloads) == 1
    assert "authorization" not in {str(k).lower() for k in downloads[0].headers}
    assert emu.batch.counters.tasks_created == 1


RESUME_CHILD = textwrap.dedent(
    """
    import sys
    from dashscope_embeddings.batch import FileTaskJob
    job = FileTaskJob.resume(sys.argv[1])
    print(job.task_id)
    print(len(job.results().embeddings))
    """
)


def test_resume_in_a_new_process_finds_the_same_task(
    emu: Emulator, client: DashScopeClient, files: _Files, tmp_path: Path
) -> None:
    state = tmp_path / "t.json"
    job = FileTaskJob.submit(serve(files, "p.txt", corpus(5)), state_path=state, client=client)
    env = dict(os.environ, DASHSCOPE_API_KEY=TEST_KEY, DASHSCOPE_BASE_URL=emu.url)
    child = subprocess.run(
        [sys.executable, "-c", RESUME_CHILD, str(state)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.split() == [job.task_id, "5"]
    assert emu.batch.counters.tasks_created == 1


def test_stop_after_submit_then_resume_creates_one_task(
    emu: Emulator, client: DashScopeClient, files: _Files, tmp_path: Path, pauses: list[float]
) -> None:
    emu.batch.configure(delay_s=4)
    texts = corpus(7)
    state = tmp_path / "t.json"
    first = FileTaskJob.submit(serve(files, "k.txt", texts), state_path=state, client=client)
    del first  # the process "dies" here: created, not downloaded
    resumed = FileTaskJob.resume(state, client)

    def tick(seconds: float | typing.SupportsIndex) -> None:
        seconds = float(seconds)
        pauses.append(seconds)
        emu.batch.advance(seconds)

    _file_task._sleep = tick  # the monkeypatch fixture restores it
    status = resumed.wait()
    assert status.status == "SUCCEEDED"
    assert pauses[:3] == [1.0, 2.0, 4.0]  # backoff: 1 s doubling (to 8 s at most)
    assert (
        resumed.results().embeddings
        == client.embed_texts(texts, model="text-embedding-v2").embeddings
    )
    again = FileTaskJob.resume(state, client)
    assert again.results().embeddings == resumed.results().embeddings
    counters = emu.batch.counters
    assert counters.tasks_created == 1 and counters.result_downloads == 1


def test_expired_result_link_is_renewed_by_polling_without_a_new_task(
    emu: Emulator, client: DashScopeClient, files: _Files, tmp_path: Path
) -> None:
    state = tmp_path / "t.json"
    job = FileTaskJob.submit(serve(files, "x.txt", corpus(3)), state_path=state, client=client)
    job.wait()
    assert json.loads(state.read_text())["result_url"]
    FileTaskController.of(emu).expire_links()
    resumed = FileTaskJob.resume(state, client)
    assert len(resumed.results().embeddings) == 3
    polls = [r for r in emu.requests if r.path == f"/api/v1/tasks/{job.task_id}"]
    assert len(polls) >= 2  # a second poll fetched a fresh link
    counters = emu.batch.counters
    assert counters.tasks_created == 1 and counters.result_downloads == 1


def test_from_texts_uploads_once_across_a_resume(
    emu: Emulator, client: DashScopeClient, files: _Files, tmp_path: Path
) -> None:
    texts = corpus(4)
    uploads: list[Path] = []

    def upload(path: Path) -> str:
        uploads.append(path)
        return serve(files, "uploaded.txt", path.read_text(encoding="utf-8").splitlines())

    state = tmp_path / "t.json"
    job = FileTaskJob.from_texts(texts, upload=upload, state_path=state, client=client)
    resumed = FileTaskJob.resume(state, client, upload=upload)
    assert resumed.task_id == job.task_id
    assert (
        resumed.results().embeddings
        == client.embed_texts(texts, model="text-embedding-v2").embeddings
    )
    assert len(uploads) == 1 and emu.batch.counters.tasks_created == 1


@pytest.mark.parametrize(
    ("texts", "match", "index"),
    [
        (["fine", "word " * 3000], "over the 2,048", 1),
        (["fine", "two\nlines"], "line break", 1),
        (["", "fine"], "empty", 0),
        (["x"] * 100_001, "more than 100,000", None),
    ],
)
def test_bad_inputs_are_refused_before_anything_is_sent(
    emu: Emulator,
    client: DashScopeClient,
    tmp_path: Path,
    texts: list[str],
    match: str,
    index: int | None,
) -> None:
    uploads: list[Path] = []

    def upload(path: Path) -> str:
        uploads.append(path)
        return "http://127.0.0.1/never"

    with pytest.raises(InvalidInputError, match=match) as caught:
        FileTaskJob.from_texts(
            texts,
            upload=upload,
            state_path=tmp_path / "t.json",
            client=client,
        )
    assert caught.value.index == index
    assert uploads == [] and not (tmp_path / "t.json").exists()
    with pytest.raises(InvalidInputError, match="file-task model"):
        FileTaskJob.submit(
            "http://127.0.0.1/x",
            model="text-embedding-v4",
            state_path=tmp_path / "u.json",
            client=client,
        )
    assert [r for r in emu.requests if r.path == NATIVE_PATH] == []


def test_failed_task_and_failed_lines_are_reported(
    emu: Emulator, client: DashScopeClient, files: _Files, tmp_path: Path
) -> None:
    FileTaskController.of(emu).fail_lines("boats", code="DataInspectionFailed", message="no")
    texts = corpus(6)
    job = FileTaskJob.submit(
        serve(files, "f.txt", texts), state_path=tmp_path / "a.json", client=client
    )
    results = job.results()
    assert [f.index for f in results.failed] == [1, 4]
    assert results.failed[0].code == "DataInspectionFailed"
    assert [v is None for v in results.vectors] == [False, True, False, False, True, False]
    with pytest.raises(IncompleteFileTaskError, match="2 of 6 lines failed"):
        _ = results.embeddings
    emu.batch.fail_next_task(code="InternalError", message="worker died")
    failed = FileTaskJob.submit(
        serve(files, "f.txt", texts), state_path=tmp_path / "b.json", client=client
    )
    with pytest.raises(FileTaskError, match="FAILED: InternalError: worker died"):
        failed.results()


def test_result_file_reader_is_tolerant_and_names_what_it_found() -> None:
    import gzip

    plain = b'{"output": {"index": 1, "embedding": [0.5]}}\n{"text_index": 0, "embedding": [1]}\n'
    assert parse_result_file(plain) == ([[1.0], [0.5]], [])
    vectors, failed = parse_result_file(
        gzip.compress(
            b'{"text_index": 0, "code": "Bad", "message": "m"}\n{"index": 1, "embedding": [2]}'
        )
    )
    assert vectors == [None, [2.0]] and str(failed[0]) == "line 0: Bad: m"
    with pytest.raises(ResultFileError, match="line 1 is not JSON: '<html>"):
        parse_result_file(b"<html>nope</html>")
    with pytest.raises(ResultFileError, match=r"no line index.*\['vector'\]"):
        parse_result_file(b'{"vector": [1]}')
    with pytest.raises(ResultFileError, match="has 1 of 3 lines; missing lines: 1, 2"):
        parse_result_file(b'{"index": 0, "embedding": [1]}', expected=3)
