"""The emulator's files, Batch API and asynchronous task endpoints, over raw HTTP (httpx).

Only the emulator and the registry are used: the package's client classes are not involved.
Time is moved with ``emu.batch.advance`` rather than slept, except in one wall-clock test.
"""

from __future__ import annotations

import gzip
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dashscope_embeddings._registry import MODELS
from dashscope_embeddings.emulator import Emulator

KEY = "sk-batch-test"
V4 = MODELS["text-embedding-v4"]
ASYNC_V2 = MODELS["text-embedding-async-v2"]
NOT_BATCH = next(s for s in MODELS.values() if not s.supports_batch_api)
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
FILE_KEYS = {"id", "object", "bytes", "created_at", "filename", "purpose"}
BATCH_KEYS = {
    "id",
    "object",
    "endpoint",
    "errors",
    "input_file_id",
    "completion_window",
    "status",
    "output_file_id",
    "error_file_id",
    "created_at",
    "in_progress_at",
    "expires_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
    "request_counts",
    "metadata",
}


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(api_key=KEY) as emulator:
        yield emulator


@pytest.fixture
def compat(emu: Emulator) -> Iterator[httpx.Client]:
    emu.batch.reset()
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=emu.compatible_base_url, headers=headers, timeout=10) as client:
        yield client
    emu.batch.reset()


@pytest.fixture
def native(emu: Emulator) -> Iterator[httpx.Client]:
    emu.batch.reset()
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=emu.base_url, headers=headers, timeout=10) as client:
        yield client
    emu.batch.reset()


def line(custom_id: str, texts: Any, model: str = V4.name, **extra: Any) -> dict[str, Any]:
    body = {"model": model, "input": texts, "encoding_format": "float", **extra}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/embeddings", "body": body}


def jsonl(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def upload(
    client: httpx.Client, content: list[dict[str, Any]] | bytes, purpose: str | None = "batch"
) -> httpx.Response:
    data = jsonl(content) if isinstance(content, list) else content
    form = {} if purpose is None else {"purpose": purpose}
    return client.post("/files", files={"file": ("input.jsonl", data)}, data=form)


def uploaded(client: httpx.Client, content: list[dict[str, Any]] | bytes) -> str:
    response = upload(client, content)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def create(client: httpx.Client, file_id: str, **overrides: Any) -> httpx.Response:
    body = {"input_file_id": file_id, "endpoint": "/v1/embeddings", "completion_window": "24h"}
    return client.post("/batches", json={**body, **overrides})


def created(client: httpx.Client, records: list[dict[str, Any]], **overrides: Any) -> str:
    response = create(client, uploaded(client, records), **overrides)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "validating"
    return str(response.json()["id"])


def get_batch(client: httpx.Client, batch_id: str) -> dict[str, Any]:
    response = client.get(f"/batches/{batch_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == BATCH_KEYS
    return body


def content(client: httpx.Client, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    response = client.get(f"/files/{file_id}/content")
    assert response.status_code == 200, response.text
    return [json.loads(text) for text in response.text.splitlines()]


def assert_compatible_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "id", "request_id"}
    assert body["id"] == body["request_id"] == response.headers["x-request-id"]
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == body["error"]["type"] == code
    return str(body["error"]["message"])


def assert_native_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"request_id", "code", "message"}
    assert body["code"] == code
    assert body["request_id"] == response.headers["x-request-id"]
    return str(body["message"])


def by_index(body: dict[str, Any]) -> dict[int, list[float]]:
    return {item["index"]: item["embedding"] for item in body["data"]}


# --- files ------------------------------------------------------------------------------------


def test_upload_get_content_list_delete(emu: Emulator, compat: httpx.Client) -> None:
    data = jsonl([line("a", "hello"), line("b", ["x", "y"])])
    response = upload(compat, data)
    assert response.status_code == 200, response.text
    file = response.json()
    assert set(file) == FILE_KEYS
    assert file["object"] == "file" and file["purpose"] == "batch"
    assert file["bytes"] == len(data) and file["filename"] == "input.jsonl"
    assert file["id"].startswith("file-batch-")
    assert abs(file["created_at"] - time.time()) < 60

    assert compat.get(f"/files/{file['id']}").json() == file
    raw = compat.get(f"/files/{file['id']}/content")
    assert raw.status_code == 200 and raw.content == data
    listed = compat.get("/files").json()
    assert listed["object"] == "list" and [f["id"] for f in listed["data"]] == [file["id"]]

    deleted = compat.delete(f"/files/{file['id']}")
    assert deleted.json() == {"id": file["id"], "object": "file", "deleted": True}
    assert_compatible_error(compat.get(f"/files/{file['id']}"), 404, "not_found")
    assert_compatible_error(compat.get(f"/files/{file['id']}/content"), 404, "not_found")
    assert_compatible_error(compat.delete(f"/files/{file['id']}"), 404, "not_found")
    # The upload went through the request log like any other request.
    assert any(r.path == "/compatible-mode/v1/files" and r.status == 200 for r in emu.requests)


def test_utf8_filename_and_text_survive_the_multipart_parser(compat: httpx.Client) -> None:
    data = jsonl([line("中文", "退货政策 --boundary-like\r\n text")])
    response = compat.post(
        "/files", files={"file": ("输入.jsonl", data)}, data={"purpose": "batch"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["filename"] == "输入.jsonl"
    assert compat.get(f"/files/{response.json()['id']}/content").content == data


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "empty"),
        (b'{"custom_id": "a", "method": "POST"', "Line 1: the line is not valid JSON"),
        (jsonl([line("a", "x")]) + b"\n" + jsonl([line("b", "y")]), "Line 2: the line is not"),
        (b"[1, 2]\n", "Line 1: the line should be a JSON object"),
        (jsonl([{**line("a", "x"), "custom_id": ""}]), "custom_id"),
        (jsonl([line("a", "x"), line("b", "y"), line("a", "z")]), "Line 3: custom_id 'a' is dup"),
        (jsonl([{**line("a", "x"), "method": "GET"}]), "'method' should be 'POST'"),
        (jsonl([{**line("a", "x"), "url": "/v1/embedding"}]), "'url' should be one of"),
        (jsonl([{**line("a", "x"), "body": "text"}]), "'body' is missing"),
        (b"\xff\xfe\n", "Line 1: the line is not valid JSON"),
    ],
)
def test_upload_rejects_malformed_batch_files(
    compat: httpx.Client, content: bytes, fragment: str
) -> None:
    message = assert_compatible_error(upload(compat, content), 400, "InvalidParameter")
    assert fragment in message


def test_upload_form_errors(emu: Emulator, compat: httpx.Client) -> None:
    data = jsonl([line("a", "x")])
    missing = assert_compatible_error(upload(compat, data, purpose=None), 400, "InvalidParameter")
    assert "purpose" in missing
    wrong = assert_compatible_error(
        upload(compat, data, purpose="fine-tune"), 400, "InvalidParameter"
    )
    assert "fine-tune" in wrong
    no_file = compat.post("/files", data={"purpose": "batch"}, files={"other": ("a", b"x")})
    assert "'file'" in assert_compatible_error(no_file, 400, "InvalidParameter")
    as_json = compat.post("/files", json={"purpose": "batch"})
    assert "multipart/form-data" in assert_compatible_error(as_json, 400, "InvalidParameter")
    assert emu.batch.counters.uploads == 0


def test_upload_limits_are_configurable(emu: Emulator, compat: httpx.Client) -> None:
    records = [line(f"c{i}", f"text {i}") for i in range(3)]
    data = jsonl(records)
    longest = max(len(text) for text in data.split(b"\n"))
    emu.batch.configure(max_lines_per_file=3, max_file_bytes=len(data), max_line_bytes=longest)
    assert upload(compat, data).status_code == 200  # exactly at every limit

    emu.batch.configure(max_lines_per_file=2)
    assert "3 lines" in assert_compatible_error(upload(compat, data), 400, "InvalidParameter")
    emu.batch.configure(max_lines_per_file=3, max_file_bytes=len(data) - 1)
    assert "bytes" in assert_compatible_error(upload(compat, data), 400, "InvalidParameter")
    emu.batch.configure(max_file_bytes=len(data), max_line_bytes=longest - 1)
    message = assert_compatible_error(upload(compat, data), 400, "InvalidParameter")
    assert message.startswith("Line ") and "bytes" in message
    assert emu.batch.counters.uploads == 1
    with pytest.raises(ValueError, match="max_lines_per_file"):
        emu.batch.configure(max_lines_per_file=0)


# --- batches: the normal path -----------------------------------------------------------------


def test_batch_phases_follow_the_clock(emu: Emulator, compat: httpx.Client) -> None:
    emu.batch.configure(delay_s=100)
    records = [line(f"c{i}", [f"text number {i}"]) for i in range(10)]
    batch_id = created(compat, records, metadata={"ds_name": "job"})

    first = get_batch(compat, batch_id)
    assert first["status"] == "validating"
    assert first["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
    assert first["metadata"] == {"ds_name": "job"} and first["endpoint"] == "/v1/embeddings"
    assert first["expires_at"] == first["created_at"] + 24 * 3600
    assert first["in_progress_at"] is None and first["output_file_id"] is None

    emu.batch.advance(50)  # halfway through in_progress (10 s .. 90 s)
    middle = get_batch(compat, batch_id)
    assert middle["status"] == "in_progress"
    assert middle["request_counts"] == {"total": 10, "completed": 5, "failed": 0}
    assert middle["in_progress_at"] is not None and middle["completed_at"] is None

    emu.batch.advance(45)
    late = get_batch(compat, batch_id)
    assert late["status"] == "finalizing"
    assert late["request_counts"]["completed"] == 10 and late["output_file_id"] is None

    emu.batch.advance(10)
    done = get_batch(compat, batch_id)
    assert done["status"] == "completed"
    assert done["request_counts"] == {"total": 10, "completed": 10, "failed": 0}
    stamps = [done[k] for k in ("created_at", "in_progress_at", "finalizing_at", "completed_at")]
    assert stamps == sorted(stamps) and stamps[-1] - stamps[0] in (99, 100, 101)
    assert done["error_file_id"] is None and done["errors"] is None
    assert len(content(compat, done["output_file_id"])) == 10
    assert get_batch(compat, batch_id) == done  # terminal: stable


def test_wall_clock_delay(emu: Emulator, compat: httpx.Client) -> None:
    emu.batch.configure(delay_s=0.3)
    batch_id = created(compat, [line("only", "hello")])
    assert get_batch(compat, batch_id)["status"] != "completed"
    deadline = time.monotonic() + 5
    while (status := get_batch(compat, batch_id)["status"]) != "completed":
        assert time.monotonic() < deadline, status
        time.sleep(0.05)


def test_output_joined_on_custom_id_equals_the_realtime_endpoint(compat: httpx.Client) -> None:
    records = [
        line("refund", ["how do I get a refund", "refund policy"]),
        line("ship", "shipping takes five days"),
        line("small", ["tiny vectors here"], dimensions=64),
        line("v3", ["text embedding v3"], model="text-embedding-v3"),
        line("b64", ["base64 please"], encoding_format="base64"),
    ]
    batch = get_batch(compat, created(compat, records))
    assert batch["status"] == "completed"  # delay 0: done at the first read
    outputs = content(compat, batch["output_file_id"])
    assert [o["custom_id"] for o in outputs] != [r["custom_id"] for r in records]
    assert sorted(o["custom_id"] for o in outputs) == sorted(r["custom_id"] for r in records)
    joined = {o["custom_id"]: o for o in outputs}
    for record in records:
        out = joined[record["custom_id"]]
        assert set(out) == {"id", "custom_id", "response", "error"}
        assert out["error"] is None and out["id"].startswith("batch_req_")
        response = out["response"]
        assert response["status_code"] == 200 and UUID_RE.match(response["request_id"])
        realtime = compat.post("/embeddings", json=record["body"])
        assert realtime.status_code == 200
        expected = realtime.json()
        assert by_index(response["body"]) == by_index(expected)
        assert response["body"]["usage"] == expected["usage"]
        assert response["body"]["model"] == expected["model"] == record["body"]["model"]
        assert response["body"]["object"] == "list"


# --- per-line failures ------------------------------------------------------------------------


def test_line_failures_go_to_the_error_file(emu: Emulator, compat: httpx.Client) -> None:
    emu.batch.fail_lines(custom_ids=["boom"], status=500, code="InternalError", message="kaput")
    emu.batch.fail_lines(marker="[[FAIL]]", status=429, code="Throttling", message="slow")
    too_many = [f"t{i}" for i in range(V4.max_batch_size + 1)]
    records = [
        line("ok-1", "fine text"),
        line("boom", "also fine"),
        line("marked", ["first", "this one [[FAIL]] here"]),
        line("big", too_many),
        line("bad-model", "x", model=NOT_BATCH.name),
        line("ok-2", ["fine", "again"]),
    ]
    batch = get_batch(compat, created(compat, records))
    assert batch["status"] == "completed"
    assert batch["request_counts"] == {"total": 6, "completed": 2, "failed": 4}
    assert {o["custom_id"] for o in content(compat, batch["output_file_id"])} == {"ok-1", "ok-2"}
    errors = {e["custom_id"]: e for e in content(compat, batch["error_file_id"])}
    assert set(errors) == {"boom", "marked", "big", "bad-model"}

    boom = errors["boom"]["response"]
    assert errors["boom"]["error"] is None
    assert boom["status_code"] == 500
    assert boom["body"]["error"] == {
        "message": "kaput",
        "type": "InternalError",
        "param": None,
        "code": "InternalError",
    }
    assert boom["body"]["request_id"] == boom["request_id"]
    assert errors["marked"]["response"]["status_code"] == 429

    # A line the real-time endpoint rejects carries exactly that endpoint's answer.
    for custom_id, status in (("big", 400), ("bad-model", 404)):
        got = errors[custom_id]["response"]
        assert got["status_code"] == status
        record = next(r for r in records if r["custom_id"] == custom_id)
        realtime = compat.post("/embeddings", json=record["body"])
        assert realtime.status_code == status
        assert got["body"]["error"] == realtime.json()["error"]
    assert errors["bad-model"]["response"]["body"]["error"]["code"] == "model_not_found"


# --- expired, failed, cancelled ---------------------------------------------------------------


def test_injected_expiry_keeps_the_finished_part(emu: Emulator, compat: httpx.Client) -> None:
    emu.batch.expire_next(completed_fraction=0.5)
    records = [line(f"c{i}", f"text {i}") for i in range(6)]
    batch = get_batch(compat, created(compat, records))
    assert batch["status"] == "expired"
    assert batch["expired_at"] is not None and batch["completed_at"] is None
    assert batch["request_counts"] == {"total": 6, "completed": 3, "failed": 3}
    done = {o["custom_id"] for o in content(compat, batch["output_file_id"])}
    errors = content(compat, batch["error_file_id"])
    assert len(done) == 3 and len(errors) == 3
    assert done.isdisjoint(e["custom_id"] for e in errors)
    for error in errors:
        assert error["response"] is None and error["error"]["code"] == "batch_expired"
    # Only the next batch expires.
    assert get_batch(compat, created(compat, records))["status"] == "completed"


def test_window_shorter_than_the_delay_expires(emu: Emulator, compat: httpx.Client) -> None:
    emu.batch.configure(delay_s=48 * 3600)
    batch_id = created(compat, [line(f"c{i}", f"t {i}") for i in range(8)])
    emu.batch.advance(24 * 3600 + 1)
    batch = get_batch(compat, batch_id)
    assert batch["status"] == "expired"
    counts = batch["request_counts"]
    assert 0 < counts["completed"] < 8 and counts["completed"] + counts["failed"] == 8
    assert batch["expired_at"] == batch["expires_at"]


def test_lines_for_another_endpoint_fail_validation(compat: httpx.Client) -> None:
    chat = {**line("chat", "x"), "url": "/v1/chat/completions"}
    batch = get_batch(compat, created(compat, [line("emb", "x"), chat]))
    assert batch["status"] == "failed"
    assert batch["failed_at"] is not None and batch["in_progress_at"] is None
    assert batch["output_file_id"] is None and batch["error_file_id"] is None
    assert batch["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
    assert batch["errors"]["object"] == "list"
    (error,) = batch["errors"]["data"]
    assert error["line"] == 2 and error["param"] == "url" and error["code"] == "InvalidParameter"


def test_injected_validation_failure(emu: Emulator, compat: httpx.Client) -> None:
    emu.batch.configure(delay_s=10)
    emu.batch.fail_next(code="invalid_file", message="nope")
    batch_id = created(compat, [line("a", "x")])
    assert get_batch(compat, batch_id)["status"] == "validating"
    emu.batch.advance(1)
    batch = get_batch(compat, batch_id)
    assert batch["status"] == "failed"
    assert batch["errors"]["data"] == [
        {"code": "invalid_file", "message": "nope", "param": None, "line": None}
    ]
    assert emu.batch.counters.lines_billed == 0


def test_cancel_keeps_the_lines_already_done(emu: Emulator, compat: httpx.Client) -> None:
    emu.batch.configure(delay_s=100)
    batch_id = created(compat, [line(f"c{i}", f"text {i}") for i in range(4)])
    emu.batch.advance(50)
    cancelling = compat.post(f"/batches/{batch_id}/cancel")
    assert cancelling.status_code == 200
    assert cancelling.json()["status"] == "cancelling"
    assert cancelling.json()["cancelling_at"] is not None
    emu.batch.advance(20)  # lines done after the cancel do not count
    batch = get_batch(compat, batch_id)
    assert batch["status"] == "cancelled" and batch["cancelled_at"] is not None
    assert batch["request_counts"] == {"total": 4, "completed": 2, "failed": 2}
    assert len(content(compat, batch["output_file_id"])) == 2
    assert {e["error"]["code"] for e in content(compat, batch["error_file_id"])} == {
        "batch_cancelled"
    }
    again = compat.post(f"/batches/{batch_id}/cancel")
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    emu.batch.advance(100)  # the clock no longer matters
    assert get_batch(compat, batch_id) == batch


def test_cancel_rejects_finished_and_unknown_batches(compat: httpx.Client) -> None:
    batch_id = created(compat, [line("a", "x")])
    assert get_batch(compat, batch_id)["status"] == "completed"
    message = assert_compatible_error(
        compat.post(f"/batches/{batch_id}/cancel"), 400, "InvalidParameter"
    )
    assert "completed" in message
    assert_compatible_error(compat.post("/batches/batch_nope/cancel"), 404, "not_found")


# --- create validation, list, 404, auth -------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"endpoint": "/v1/chat/completions"}, "endpoint"),
        ({"endpoint": None}, "endpoint"),
        ({"completion_window": "23h"}, "completion_window"),
        ({"completion_window": "337h"}, "completion_window"),
        ({"completion_window": "1d"}, "completion_window"),
        ({"completion_window": None}, "completion_window"),
        ({"metadata": {"k": 1}}, "metadata"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"input_file_id": ""}, "input_file_id"),
    ],
)
def test_create_validation(compat: httpx.Client, overrides: dict[str, Any], fragment: str) -> None:
    file_id = uploaded(compat, [line("a", "x")])
    response = create(compat, file_id, **overrides)
    assert fragment in assert_compatible_error(response, 400, "InvalidParameter")


def test_create_accepts_the_window_bounds(compat: httpx.Client) -> None:
    file_id = uploaded(compat, [line("a", "x")])
    for window, hours in (("24h", 24), ("336h", 336)):
        batch = create(compat, file_id, completion_window=window).json()
        assert batch["expires_at"] - batch["created_at"] == hours * 3600


def test_create_on_an_output_file_or_bad_json(compat: httpx.Client) -> None:
    output = get_batch(compat, created(compat, [line("a", "x")]))["output_file_id"]
    assert "purpose" in assert_compatible_error(create(compat, output), 400, "InvalidParameter")
    bad = compat.post(
        "/batches", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_compatible_error(bad, 400, "InvalidParameter")


def test_list_batches_newest_first_with_pages(compat: httpx.Client) -> None:
    file_id = uploaded(compat, [line("a", "x")])
    ids = [create(compat, file_id).json()["id"] for _ in range(5)]
    page = compat.get("/batches", params={"limit": 2}).json()
    assert page["object"] == "list" and page["has_more"] is True
    assert [b["id"] for b in page["data"]] == ids[::-1][:2]
    assert page["first_id"] == ids[4] and page["last_id"] == ids[3]
    rest = compat.get("/batches", params={"after": page["last_id"], "limit": 10}).json()
    assert [b["id"] for b in rest["data"]] == ids[::-1][2:] and rest["has_more"] is False
    assert all(b["status"] == "completed" for b in rest["data"])
    assert_compatible_error(compat.get("/batches", params={"limit": 0}), 400, "InvalidParameter")
    assert_compatible_error(compat.get("/batches", params={"after": "x"}), 400, "InvalidParameter")


def test_unknown_ids_paths_and_methods(compat: httpx.Client) -> None:
    assert_compatible_error(compat.get("/batches/batch_missing"), 404, "not_found")
    assert_compatible_error(create(compat, "file-batch-missing"), 404, "not_found")
    assert_compatible_error(compat.get("/files/file-x/other"), 404, "not_found")
    wrong = compat.put("/batches")
    assert_compatible_error(wrong, 405, "method_not_allowed")
    assert wrong.headers["allow"] == "GET, POST"


def test_authentication(emu: Emulator, compat: httpx.Client) -> None:
    file_id = uploaded(compat, [line("a", "x")])
    for headers in ({"Authorization": "Bearer wrong"}, {"Authorization": ""}):
        with httpx.Client(base_url=emu.url, headers=headers) as client:
            for response in (
                client.get(f"/compatible-mode/v1/files/{file_id}"),
                client.get(f"/compatible-mode/v1/files/{file_id}/content"),
                client.post("/compatible-mode/v1/batches", json={"input_file_id": file_id}),
                client.get("/compatible-mode/v1/batches"),
            ):
                assert_compatible_error(response, 401, "invalid_api_key")
            assert_native_error(client.get("/api/v1/tasks"), 401, "InvalidApiKey")
    assert emu.batch.counters.content_downloads == 0


def test_counters(emu: Emulator, compat: httpx.Client) -> None:
    emu.batch.fail_lines(custom_ids=["bad"])
    records = [line("a", ["one two", "three"]), line("b", "four"), line("bad", "five")]
    data = jsonl(records)
    emu.batch.configure(delay_s=10)
    batch_id = created(compat, records)
    assert emu.batch.counters.lines_billed == 0  # not finished yet
    emu.batch.advance(10)
    counters = emu.batch.counters  # billed even though nobody polled the batch
    assert counters.uploads == 1 and counters.bytes_uploaded == len(data)
    assert counters.batches_created == 1
    assert counters.lines_billed == 2 and counters.tokens_billed == 4
    assert counters.content_downloads == 0
    content(compat, get_batch(compat, batch_id)["output_file_id"])
    assert emu.batch.counters.content_downloads == 1
    with pytest.raises(AttributeError):
        counters.uploads = 5
    emu.batch.reset()
    assert emu.batch.counters.uploads == 0
    assert_compatible_error(compat.get(f"/batches/{batch_id}"), 404, "not_found")


def test_controller_rejects_bad_settings(emu: Emulator) -> None:
    with pytest.raises(ValueError):
        emu.batch.configure(delay_s=-1)
    with pytest.raises(ValueError):
        emu.batch.fail_lines(custom_ids=[], marker=None)
    with pytest.raises(ValueError):
        emu.batch.fail_lines(custom_ids=["a"], status=200)
    with pytest.raises(ValueError):
        emu.batch.expire_next(1.5)
    with pytest.raises(ValueError):
        emu.batch.advance(-1)


# --- asynchronous tasks (§7a) -----------------------------------------------------------------


def task_body(url: str, **parameters: Any) -> dict[str, Any]:
    return {"model": ASYNC_V2.name, "input": {"url": url}, "parameters": parameters}


def test_task_lifecycle_and_result_file(emu: Emulator, native: httpx.Client) -> None:
    texts = ["how do I get a refund", "shipping takes five days", "refund policy"]
    emu.batch.register_url("https://example.com/in.txt", "\n".join(texts) + "\n")
    emu.batch.configure(delay_s=100)
    answer = emu.batch.create_task(task_body("https://example.com/in.txt", text_type="query"))
    assert answer["output"]["task_status"] == "PENDING" and UUID_RE.match(answer["request_id"])
    task_id = answer["output"]["task_id"]

    def poll() -> dict[str, Any]:
        response = native.get(f"/tasks/{task_id}")
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        assert body["request_id"] == response.headers["x-request-id"]
        return body

    assert poll()["output"]["task_status"] == "PENDING"
    emu.batch.advance(50)
    running = poll()["output"]
    assert running["task_status"] == "RUNNING" and "url" not in running
    emu.batch.advance(50)
    done = poll()
    output = done["output"]
    assert output["task_status"] == "SUCCEEDED"
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$", output["end_time"])
    assert output["submit_time"] <= output["scheduled_time"] <= output["end_time"]
    assert output["url"].startswith(emu.url + "/")

    downloaded = httpx.get(output["url"])  # a signed link: no Authorization header
    assert downloaded.status_code == 200
    rows = [json.loads(x) for x in gzip.decompress(downloaded.content).decode().splitlines()]
    assert [r["text_index"] for r in rows] != [0, 1, 2]
    vectors = {r["text_index"]: r["embedding"] for r in rows}
    realtime = native.post(
        "/services/embeddings/text-embedding/text-embedding",
        json={"model": "text-embedding-v2", "input": {"texts": texts}, "parameters": {}},
    )
    assert realtime.status_code == 200
    total = realtime.json()["usage"]["total_tokens"]
    assert done["usage"] == {"total_tokens": total}
    assert sorted(vectors) == [0, 1, 2]
    assert all(len(v) == 1536 for v in vectors.values())

    tampered = httpx.get(output["url"].replace("Signature=", "Signature=0"))
    assert tampered.status_code == 403 and b"SignatureDoesNotMatch" in tampered.content
    emu.batch.advance(2 * 24 * 3600)
    expired = httpx.get(output["url"])
    assert expired.status_code == 403 and b"Request has expired." in expired.content
    counters = emu.batch.counters
    assert counters.tasks_created == 1 and counters.result_downloads == 1
    assert counters.task_tokens_billed == total


def test_task_vectors_depend_on_text_type_and_are_deterministic(
    emu: Emulator, native: httpx.Client
) -> None:
    # The real-time endpoint refuses the async models (403 without X-DashScope-Async), so their
    # vectors cannot be fetched there for comparison; query and document vectors differ, and a
    # repeated task gives the same bytes.
    emu.batch.register_url("mem://a", ["alpha beta"])
    results = []
    for text_type in ("query", "document", "query"):
        task_id = emu.batch.create_task(task_body("mem://a", text_type=text_type))["output"][
            "task_id"
        ]
        url = native.get(f"/tasks/{task_id}").json()["output"]["url"]
        results.append(gzip.decompress(httpx.get(url).content))
    assert results[0] == results[2] != results[1]


def test_task_failures_cancel_unknown_and_list(emu: Emulator, native: httpx.Client) -> None:
    emu.batch.configure(delay_s=10)
    missing = emu.batch.create_task(task_body("https://example.com/nowhere.txt"))["output"]
    emu.batch.register_url("mem://long", ["word " * 3000])
    too_long = emu.batch.create_task(task_body("mem://long"))["output"]
    emu.batch.fail_next_task(code="InternalError", message="worker died")
    emu.batch.register_url("mem://ok", ["fine"])
    injected = emu.batch.create_task(task_body("mem://ok"))["output"]
    pending = emu.batch.create_task(task_body("mem://ok"))["output"]

    cancel = native.post(f"/tasks/{pending['task_id']}/cancel")
    assert cancel.status_code == 200 and cancel.json()["request_id"]
    emu.batch.advance(10)
    failed = {
        t["task_id"]: native.get(f"/tasks/{t['task_id']}").json()["output"]
        for t in (missing, too_long, injected)
    }
    assert all(out["task_status"] == "FAILED" for out in failed.values())
    assert failed[too_long["task_id"]]["code"] == "InvalidParameter"
    assert "2048" in failed[too_long["task_id"]]["message"]
    assert failed[injected["task_id"]]["message"] == "worker died"
    canceled = native.get(f"/tasks/{pending['task_id']}").json()["output"]
    assert canceled["task_status"] == "CANCELED"
    late = native.post(f"/tasks/{injected['task_id']}/cancel")
    assert_native_error(late, 400, "UnsupportedOperation")

    unknown = native.get("/tasks/no-such-task")
    assert unknown.status_code == 200
    assert unknown.json()["output"] == {"task_id": "no-such-task", "task_status": "UNKNOWN"}

    listed = native.get("/tasks", params={"page_size": 3}).json()
    assert listed["total"] == 4 and listed["total_page"] == 2 and len(listed["data"]) == 3
    assert listed["data"][0]["task_id"] == pending["task_id"]  # newest first
    only_failed = native.get("/tasks", params={"status": "FAILED"}).json()
    assert only_failed["total"] == 3
    assert_native_error(native.get("/tasks", params={"page_size": 0}), 400, "InvalidParameter")
    assert emu.batch.counters.task_tokens_billed == 0


def test_task_create_validation(emu: Emulator) -> None:
    from dashscope_embeddings.emulator._errors import ServiceError

    with pytest.raises(ServiceError, match=r"input\.url"):
        emu.batch.create_task({"model": ASYNC_V2.name, "input": {}})
    with pytest.raises(ServiceError, match="text_type"):
        emu.batch.create_task(task_body("mem://x", text_type="poem"))
    with pytest.raises(ValueError, match="not an asynchronous task model"):
        emu.batch.create_task(task_body("mem://x") | {"model": V4.name})
