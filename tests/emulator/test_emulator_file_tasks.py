"""The emulator's task creation for text-embedding-async-v1 / -v2, over raw HTTP (httpx).

Input files are served by a tiny threaded ``http.server`` on 127.0.0.1. Time is moved with
``emu.batch.advance`` rather than slept.
"""

from __future__ import annotations

import gzip
import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dashscope_embeddings.emulator import Emulator
from dashscope_embeddings.emulator._file_tasks import FileTaskController

KEY = "sk-file-task-test"
TEXT_PATH = "/services/embeddings/text-embedding/text-embedding"
ASYNC = {"X-DashScope-Async": "enable"}


class _Files(http.server.ThreadingHTTPServer):
    contents: dict[str, bytes]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Files

    def do_GET(self) -> None:
        data = self.server.contents.get(self.path)
        self.send_response(200 if data is not None else 404)
        self.send_header("Content-Length", str(len(data or b"")))
        self.end_headers()
        self.wfile.write(data or b"")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def files() -> Iterator[_Files]:
    server = _Files(("127.0.0.1", 0), _Handler)
    server.contents = {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def serve(files: _Files, name: str, lines: list[str]) -> str:
    files.contents["/" + name] = ("\n".join(lines) + "\n").encode("utf-8")
    return f"http://127.0.0.1:{files.server_address[1]}/{name}"


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(api_key=KEY) as emulator:
        yield emulator


@pytest.fixture
def ctl(emu: Emulator) -> Iterator[FileTaskController]:
    controller = FileTaskController.of(emu)
    emu.batch.reset()
    controller.reset()
    controller.configure(min_interval_s=0)
    yield controller
    emu.batch.reset()
    controller.reset()


@pytest.fixture
def native(emu: Emulator, ctl: FileTaskController) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=emu.base_url, headers=headers, timeout=30) as client:
        yield client


def create(
    native: httpx.Client, url: str, model: str = "text-embedding-async-v2", **params: Any
) -> httpx.Response:
    body = {"model": model, "input": {"url": url}, "parameters": params}
    return native.post(TEXT_PATH, json=body, headers=ASYNC)


def task_id(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    output = response.json()["output"]
    assert output["task_status"] == "PENDING"
    return str(output["task_id"])


def poll(native: httpx.Client, tid: str) -> dict[str, Any]:
    response = native.get(f"/tasks/{tid}")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def rows(url: str) -> list[dict[str, Any]]:
    downloaded = httpx.get(url)
    assert downloaded.status_code == 200, downloaded.text
    return [json.loads(x) for x in gzip.decompress(downloaded.content).decode().splitlines()]


@pytest.mark.parametrize(
    ("model", "twin"),
    [
        ("text-embedding-async-v2", "text-embedding-v2"),
        ("text-embedding-async-v1", "text-embedding-v1"),
    ],
)
def test_vectors_equal_realtime_twin_in_any_order(
    native: httpx.Client, files: _Files, model: str, twin: str
) -> None:
    texts = ["how do I get a refund", "shipping takes five days", "退货政策", "refund policy"]
    url = serve(files, f"{model}.txt", texts)
    tid = task_id(create(native, url, model=model, text_type="query"))
    done = poll(native, tid)
    assert done["output"]["task_status"] == "SUCCEEDED"
    got = rows(done["output"]["url"])
    assert [r["text_index"] for r in got] != list(range(len(texts)))
    realtime = native.post(
        TEXT_PATH,
        json={"model": twin, "input": {"texts": texts}, "parameters": {"text_type": "query"}},
    ).json()
    expected = {e["text_index"]: e["embedding"] for e in realtime["output"]["embeddings"]}
    assert {r["text_index"]: r["embedding"] for r in got} == expected
    assert done["usage"] == {"total_tokens": realtime["usage"]["total_tokens"]}
    document = rows(poll(native, task_id(create(native, url, model=model)))["output"]["url"])
    assert {r["text_index"]: r["embedding"] for r in document} != expected


def test_states_follow_the_configured_delay(
    emu: Emulator, native: httpx.Client, files: _Files
) -> None:
    emu.batch.configure(delay_s=100)
    tid = task_id(create(native, serve(files, "a.txt", ["alpha"])))
    assert poll(native, tid)["output"]["task_status"] == "PENDING"
    emu.batch.advance(30)
    running = poll(native, tid)["output"]
    assert running["task_status"] == "RUNNING" and "url" not in running
    emu.batch.advance(70)
    assert poll(native, tid)["output"]["task_status"] == "SUCCEEDED"


def test_unusable_inputs_fail_the_task(
    native: httpx.Client, files: _Files, ctl: FileTaskController
) -> None:
    port = files.server_address[1]
    ctl.configure(max_input_bytes=20_000)
    cases = {
        "http://example.com/in.txt": "loopback",
        "ftp://127.0.0.1/in.txt": "loopback",
        f"http://127.0.0.1:{port}/missing.txt": "HTTP 404",
        serve(files, "big.txt", ["word"] * 5000): "larger than 20000 bytes",
        serve(files, "long.txt", ["word " * 3000]): "2048",
    }
    ids = {task_id(create(native, url)): expected for url, expected in cases.items()}
    for tid, expected in ids.items():
        output = poll(native, tid)["output"]
        assert output["task_status"] == "FAILED"
        assert output["code"] == "InvalidParameter" and expected in output["message"]
    assert ctl.downloads == 3  # only the loopback http URLs were fetched


def test_malformed_create_is_refused(native: httpx.Client) -> None:
    missing = native.post(
        TEXT_PATH, json={"model": "text-embedding-async-v2", "input": {}}, headers=ASYNC
    )
    assert missing.status_code == 400 and missing.json()["code"] == "InvalidParameter"
    poem = create(native, "http://127.0.0.1/x", text_type="poem")
    assert poem.status_code == 400 and "text_type" in poem.json()["message"]
    sync = native.post(
        TEXT_PATH, json={"model": "text-embedding-async-v2", "input": {"texts": ["x"]}}
    )
    assert sync.status_code == 403 and sync.json()["code"] == "AccessDenied"


def test_injected_line_errors_and_task_failure(
    emu: Emulator, native: httpx.Client, files: _Files, ctl: FileTaskController
) -> None:
    ctl.fail_lines("poison", code="DataInspectionFailed", message="bad line")
    url = serve(files, "mixed.txt", ["good one", "poison here", "good two"])
    done = poll(native, task_id(create(native, url)))
    by_index = {r["text_index"]: r for r in rows(done["output"]["url"])}
    assert sorted(by_index) == [0, 1, 2]
    assert by_index[1] == {"text_index": 1, "code": "DataInspectionFailed", "message": "bad line"}
    assert "embedding" in by_index[0] and "embedding" in by_index[2]
    emu.batch.fail_next_task(code="InternalError", message="worker died")
    failed = poll(native, task_id(create(native, url)))["output"]
    assert failed["task_status"] == "FAILED" and failed["message"] == "worker died"


def test_expired_link_is_refused_and_a_new_poll_gives_a_fresh_one(
    native: httpx.Client, files: _Files, ctl: FileTaskController
) -> None:
    tid = task_id(create(native, serve(files, "e.txt", ["alpha", "beta"])))
    old = poll(native, tid)["output"]["url"]
    ctl.expire_links()
    expired = httpx.get(old)
    assert expired.status_code == 403 and b"Request has expired." in expired.content
    fresh = poll(native, tid)["output"]["url"]
    assert fresh != old and len(rows(fresh)) == 2


def test_creation_rate_limit(
    emu: Emulator, native: httpx.Client, files: _Files, ctl: FileTaskController
) -> None:
    ctl.configure(min_interval_s=1)
    url = serve(files, "r.txt", ["alpha"])
    task_id(create(native, url))
    second = create(native, url)
    assert second.status_code == 429 and second.json()["code"] == "Throttling.RateQuota"
    assert 0 < float(second.headers["retry-after"]) <= 1
    emu.batch.advance(1)
    task_id(create(native, url))
    assert emu.batch.counters.tasks_created == 2


def test_queue_and_running_limits(
    emu: Emulator, native: httpx.Client, files: _Files, ctl: FileTaskController
) -> None:
    ctl.configure(max_queued=4)
    emu.batch.configure(delay_s=100)
    url = serve(files, "q.txt", ["alpha"])
    ids = [task_id(create(native, url)) for _ in range(4)]
    full = create(native, url)
    assert full.status_code == 429 and full.json()["code"] == "Throttling"

    def statuses() -> list[str]:
        return [poll(native, tid)["output"]["task_status"] for tid in ids]

    emu.batch.advance(50)
    assert statuses() == ["RUNNING", "RUNNING", "RUNNING", "PENDING"]
    emu.batch.advance(51)
    assert statuses() == ["SUCCEEDED", "SUCCEEDED", "SUCCEEDED", "RUNNING"]
    task_id(create(native, url))  # a slot in the queue is free again
