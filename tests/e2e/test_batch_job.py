"""BatchJob / AsyncBatchJob against the bundled emulator's Batch API, over loopback HTTP.

Time is moved with ``emu.batch.advance`` rather than slept. What the service did (uploads,
batches created, lines billed) is counted at the emulator (``emu.batch.counters``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dashscope_embeddings import (
    AsyncDashScopeClient,
    DashScopeClient,
    InvalidInputError,
    get_model_spec,
)
from dashscope_embeddings.batch import (
    AsyncBatchJob,
    BatchJob,
    BatchStateError,
    IncompleteBatchError,
    JobStatus,
    WaitTimeoutError,
)
from dashscope_embeddings.emulator import Emulator
from tests.conftest import TEST_KEY

MODEL = "text-embedding-v4"
DIM = 64
V4 = get_model_spec(MODEL)


def corpus(n: int) -> list[str]:
    words = ["apple", "river", "stone", "cloud", "lamp", "forest", "engine", "violin"]
    return [f"{words[i % 8]} {words[(i * 3) % 8]} note {i}" for i in range(n)]


@pytest.fixture
def emu(emulator: Emulator) -> Iterator[Emulator]:
    emulator.batch.reset()
    yield emulator
    emulator.batch.reset()


@pytest.fixture
def client(emu: Emulator) -> Iterator[DashScopeClient]:
    with DashScopeClient(TEST_KEY, base_url=emu.url) as c:
        yield c


def direct(client: DashScopeClient, texts: list[str]) -> list[list[float]]:
    """What the real-time compatible endpoint answers for the same texts (deterministic)."""
    return client.embed_texts(texts, model=MODEL, dimension=DIM, protocol="compatible").embeddings


def input_lines(client: DashScopeClient, file_id: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in client.files.content(file_id).decode().splitlines()]


def test_a_job_split_into_files_joins_shuffled_output_back_in_input_order(
    emu: Emulator, client: DashScopeClient, tmp_path: Path
) -> None:
    texts = corpus(95)
    ids = [f"doc-{i}" for i in range(95)]
    state = tmp_path / "job.json"
    job = BatchJob.submit(
        texts,
        model=MODEL,
        dimension=DIM,
        state_path=state,
        client=client,
        ids=ids,
        max_lines_per_file=3,
    )
    # 95 texts -> 10 lines of <= 10 texts -> files of 3, 3, 3 and 1 lines, one batch each.
    assert emu.batch.counters.uploads == 4 and emu.batch.counters.batches_created == 4
    batches = client.batches.list()[::-1]  # the list is newest first
    assert [b.id for b in batches] == job.batch_ids
    sent: list[str] = []
    for batch in batches:
        lines = input_lines(client, batch.input_file_id or "")
        assert 1 <= len(lines) <= 3
        for line in lines:
            body = line["body"]
            assert line["url"] == "/v1/embeddings" and line["method"] == "POST"
            assert body["model"] == MODEL and body["encoding_format"] == "float"
            assert body["dimensions"] == DIM and 1 <= len(body["input"]) <= V4.max_batch_size
            sent += body["input"]
    assert sent == texts  # every text exactly once, files in order

    status = job.wait(poll_interval=0)
    assert status.done and status.statuses == {"completed": 4}
    assert status.finished_lines == status.lines == 10

    # The service writes output lines in its own order, not input order.
    first = next(b for b in client.batches.list() if b.request_counts.get("total") == 3)
    first = client.batches.retrieve(first.id)
    order = [
        json.loads(x)["custom_id"]
        for x in client.files.content(first.output_file_id or "").decode().splitlines()
    ]
    assert order != sorted(order, key=lambda c: int(c.split("-")[1]))

    results = job.results()
    assert results.complete and not results.failed and not results.pending
    assert results.indices == tuple(range(95)) and list(results.ids) == ids
    assert list(results.texts) == texts
    assert results.embeddings == direct(client, texts)
    billed = emu.batch.counters
    assert billed.lines_billed == 10
    assert results.usage.total_tokens == billed.tokens_billed > 0
    assert results.usage.requests == 10
    assert results.usage.currency == "CNY"
    assert results.usage.cost == pytest.approx(billed.tokens_billed * 0.00025 / 1000)
    assert results.text_embeddings()[5] == (texts[5], results.embeddings[5])

    # The key is nowhere on disk.
    for path in [state, *state.with_name("job.json.d").iterdir()]:
        assert TEST_KEY not in path.read_text(encoding="utf-8")


def test_polling_follows_the_batch_through_its_statuses(
    emu: Emulator, client: DashScopeClient, tmp_path: Path
) -> None:
    emu.batch.configure(delay_s=100.0)
    texts = corpus(40)  # 4 lines
    job = BatchJob.submit(
        texts, model=MODEL, dimension=DIM, state_path=tmp_path / "s.json", client=client
    )
    assert job.status().parts[0].status == "validating"
    with pytest.raises(WaitTimeoutError) as timed_out:
        job.wait(poll_interval=0.01, timeout=0.05)
    assert not timed_out.value.status.done

    emu.batch.advance(50.0)  # half way through in_progress: 2 of 4 lines done
    status = job.status()
    assert status.parts[0].status == "in_progress" and status.completed_lines == 2
    partial = job.results()
    assert partial.pending == tuple(range(40)) and not partial.result.embeddings
    with pytest.raises(IncompleteBatchError, match="40 pending"):
        _ = partial.embeddings

    seen: list[str] = []

    def tick(s: JobStatus) -> None:
        seen.append(s.parts[0].status)
        emu.batch.advance(20.0)

    started = time.monotonic()
    final = job.wait(poll_interval=0, progress=tick)
    assert time.monotonic() - started < 5
    assert seen == ["in_progress", "in_progress", "finalizing", "completed"]
    assert final.done and job.results().embeddings == direct(client, texts)


def test_failed_lines_are_reported_then_resubmitted_alone(
    emu: Emulator, client: DashScopeClient, tmp_path: Path
) -> None:
    texts = corpus(30)  # lines t0-0-9, t0-10-19, t0-20-29
    texts[25] = "a text carrying __BAD__ content"
    emu.batch.fail_lines(
        custom_ids=["t0-10-19"], status=500, code="InternalError", message="try again later"
    )
    emu.batch.fail_lines(
        marker="__BAD__", status=400, code="DataInspectionFailed", message="inappropriate content"
    )
    job = BatchJob.submit(
        texts, model=MODEL, dimension=DIM, state_path=tmp_path / "s.json", client=client
    )
    job.wait(poll_interval=0)
    results = job.results()
    assert [f.index for f in results.failed] == list(range(10, 30))
    first = results.failed[0]
    assert (first.code, first.status_code, first.message, first.custom_id, first.id) == (
        "InternalError",
        500,
        "try again later",
        "t0-10-19",
        "10",
    )
    assert first.request_id
    assert {f.code for f in results.failed[10:]} == {"DataInspectionFailed"}
    assert results.indices == tuple(range(10))
    assert results.result.embeddings == direct(client, texts[:10])
    with pytest.raises(IncompleteBatchError, match="20 failed") as error:
        _ = results.embeddings
    assert "input 10 (id '10'): HTTP 500 InternalError: try again later" in str(error.value)

    assert job.resubmit_failed() == 20
    assert emu.batch.counters.uploads == 2
    retry = client.batches.retrieve(job.batch_ids[-1])
    assert [line["custom_id"] for line in input_lines(client, retry.input_file_id or "")] == [
        "t1-10-19",
        "t1-20-29",
    ]
    job.wait(poll_interval=0)
    results = job.results()
    # The transient failure is gone; the content failure fails again, now under its new line.
    assert [f.custom_id for f in results.failed] == ["t1-20-29"] * 10
    assert results.indices == tuple(range(20))
    assert results.result.embeddings == direct(client, texts[:20])
    assert emu.batch.counters.lines_billed == 2  # t0-0-9 and t1-10-19, each billed once
    assert results.usage.requests == 2


def test_expired_batch_keeps_its_finished_part_and_the_rest_is_resubmitted(
    emu: Emulator, client: DashScopeClient, tmp_path: Path
) -> None:
    texts = corpus(40)
    emu.batch.expire_next(completed_fraction=0.5)
    job = BatchJob.submit(
        texts, model=MODEL, dimension=DIM, state_path=tmp_path / "s.json", client=client
    )
    status = job.wait(poll_interval=0)
    assert status.statuses == {"expired": 1}
    results = job.results()
    assert len(results.indices) == 20 and len(results.failed) == 20
    assert {f.code for f in results.failed} == {"batch_expired"}
    kept = dict(zip(results.indices, results.result.embeddings, strict=True))
    expected = direct(client, texts)
    assert all(kept[i] == expected[i] for i in kept)
    assert emu.batch.counters.lines_billed == 2

    assert job.resubmit_failed() == 20
    job.wait(poll_interval=0)
    results = job.results()
    assert results.complete and results.embeddings == expected
    assert emu.batch.counters.lines_billed == 4
    assert results.usage.total_tokens == emu.batch.counters.tokens_billed


def test_cancel_keeps_lines_done_before_it(
    emu: Emulator, client: DashScopeClient, tmp_path: Path
) -> None:
    emu.batch.configure(delay_s=100.0)
    texts = corpus(40)
    job = BatchJob.submit(
        texts, model=MODEL, dimension=DIM, state_path=tmp_path / "s.json", client=client
    )
    emu.batch.advance(50.0)
    assert job.cancel().parts[0].status in ("cancelling", "cancelled")
    assert job.wait(poll_interval=0).statuses == {"cancelled": 1}
    results = job.results()
    assert len(results.indices) == 20
    assert {f.code for f in results.failed} == {"batch_cancelled"} and len(results.failed) == 20
    assert emu.batch.counters.lines_billed == 2
    assert job.cancel().statuses == {"cancelled": 1}  # nothing left to cancel


def test_a_batch_that_fails_validation_fails_every_input_with_its_error(
    emu: Emulator, client: DashScopeClient, tmp_path: Path
) -> None:
    emu.batch.fail_next(code="InvalidParameter", message="the file is not acceptable")
    job = BatchJob.submit(corpus(12), model=MODEL, state_path=tmp_path / "s.json", client=client)
    assert job.wait(poll_interval=0).statuses == {"failed": 1}
    results = job.results()
    assert [f.index for f in results.failed] == list(range(12))
    assert {(f.code, f.message) for f in results.failed} == {
        ("InvalidParameter", "the file is not acceptable")
    }
    assert job.resubmit_failed() == 12
    job.wait(poll_interval=0)
    assert job.results().complete


def test_bad_input_is_refused_before_anything_is_written_or_sent(
    emu: Emulator, client: DashScopeClient, tmp_path: Path
) -> None:
    state = tmp_path / "s.json"
    texts = corpus(5)
    texts[3] = "   "
    with pytest.raises(InvalidInputError, match="input 3 is only whitespace") as error:
        BatchJob.submit(texts, model=MODEL, state_path=state, client=client)
    assert error.value.index == 3
    with pytest.raises(InvalidInputError, match="not served by the Batch API"):
        BatchJob.submit(corpus(2), model="text-embedding-async-v2", state_path=state, client=client)
    with pytest.raises(InvalidInputError, match=r"id 2 \('a'\) repeats id 0") as error:
        BatchJob.submit(
            corpus(3), model=MODEL, state_path=state, client=client, ids=["a", "b", "a"]
        )
    assert error.value.index == 2
    with pytest.raises(InvalidInputError, match="dimension 100 is not offered"):
        BatchJob.submit(corpus(2), model=MODEL, dimension=100, state_path=state, client=client)
    assert not state.exists() and not list(tmp_path.iterdir())
    assert emu.batch.counters.uploads == 0

    BatchJob.submit(corpus(2), model=MODEL, state_path=state, client=client)
    with pytest.raises(BatchStateError, match="already holds a batch job"):
        BatchJob.submit(corpus(2), model=MODEL, state_path=state, client=client)
    assert emu.batch.counters.uploads == 1
    with pytest.raises(BatchStateError, match="no batch job state"):
        BatchJob.resume(tmp_path / "missing.json", client)


def test_nodes_for_llama_index_keep_ids_and_vectors(
    emu: Emulator, client: DashScopeClient, tmp_path: Path
) -> None:
    from llama_index.core import VectorStoreIndex

    from dashscope_embeddings.llama_index import DashScopeEmbedding

    texts = ["refunds take five days", "shipping is free over fifty", "passwords reset by email"]
    job = BatchJob.submit(
        texts,
        model=MODEL,
        state_path=tmp_path / "s.json",
        client=client,
        ids=["refunds", "shipping", "passwords"],
    )
    job.wait(poll_interval=0)
    nodes = job.results().to_nodes()
    assert [(n.node_id, n.text) for n in nodes] == list(
        zip(["refunds", "shipping", "passwords"], texts, strict=True)
    )
    emu.clear_requests()
    embed_model = DashScopeEmbedding(model_name=MODEL, api_key=TEST_KEY, base_url=emu.url)
    index = VectorStoreIndex(nodes, embed_model=embed_model)
    assert not [r for r in emu.requests if "embeddings" in r.path]  # vectors reused, not re-sent
    hit = index.as_retriever(similarity_top_k=1).retrieve("how do I reset my password by email")
    assert hit[0].node.node_id == "passwords"


CRASHING_SUBMIT = textwrap.dedent(
    """
    import sys, time
    import httpx
    from dashscope_embeddings import DashScopeClient
    from dashscope_embeddings.batch import BatchJob

    mode, state, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    creates = 0

    class Held(httpx.HTTPTransport):
        def handle_request(self, request):
            global creates
            create = request.method == "POST" and request.url.path.endswith("/batches")
            creates += create
            if create and creates == 2 and mode == "before-create":
                print("HELD", flush=True); time.sleep(60)
            response = super().handle_request(request)
            if create and creates == 2 and mode == "after-create":
                response.read()
                print("HELD", flush=True); time.sleep(60)
            return response

    def Client():
        return DashScopeClient(http_client=httpx.Client(transport=Held()))

    texts = [f"line {i} of a corpus about rivers" for i in range(n)]
    BatchJob.submit(texts, model="text-embedding-v4", state_path=state, client=Client(),
                    max_lines_per_file=2)
    print("DONE", flush=True)
    """
)


@pytest.mark.parametrize("mode", ["before-create", "after-create"])
def test_a_job_killed_mid_submission_resumes_without_sending_or_billing_twice(
    emu: Emulator, client: DashScopeClient, tmp_path: Path, mode: str
) -> None:
    # 45 texts -> 5 lines -> 3 files of 2, 2 and 1 lines. The child is killed while its second
    # batch is being created: after its upload was recorded, either before the create request
    # was sent or after the service created the batch but before the answer was recorded.
    state = tmp_path / "job.json"
    env = dict(os.environ, DASHSCOPE_API_KEY=TEST_KEY, DASHSCOPE_BASE_URL=emu.url)
    child = subprocess.Popen(
        [sys.executable, "-c", CRASHING_SUBMIT, mode, str(state), "45"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "HELD", (
            child.stderr.read() if child.stderr else ""
        )
    finally:
        child.terminate()
        child.communicate(timeout=10)
    assert child.returncode != 0
    before = emu.batch.counters
    assert before.uploads == 2
    assert before.batches_created == (1 if mode == "before-create" else 2)

    job = BatchJob.resume(state, client)
    assert len(job.batch_ids) == 3
    job.wait(poll_interval=0)
    results = job.results()
    texts = [f"line {i} of a corpus about rivers" for i in range(45)]
    assert results.complete
    assert (
        results.embeddings
        == client.embed_texts(texts, model=MODEL, protocol="compatible").embeddings
    )
    after = emu.batch.counters
    assert (after.uploads, after.batches_created, after.lines_billed) == (3, 3, 5)
    assert results.usage.total_tokens == after.tokens_billed
    # Resuming a finished job sends nothing new.
    again = BatchJob.resume(state, client)
    again.wait(poll_interval=0)
    assert again.results().embeddings == results.embeddings
    assert emu.batch.counters.uploads == 3 and emu.batch.counters.batches_created == 3


async def test_async_job_submits_waits_resubmits_and_joins(emu: Emulator, tmp_path: Path) -> None:
    texts = corpus(25)  # 3 lines: t0-0-8, t0-9-16, t0-17-24
    emu.batch.fail_lines(custom_ids=["t0-9-16"])
    async with AsyncDashScopeClient(TEST_KEY, base_url=emu.url) as aclient:
        job = await AsyncBatchJob.submit(
            texts, model=MODEL, dimension=DIM, state_path=tmp_path / "s.json", client=aclient
        )
        await job.wait(poll_interval=0)
        results = await job.results()
        assert [f.index for f in results.failed] == list(range(9, 17))
        assert await job.resubmit_failed() == 8
        await job.wait(poll_interval=0)
        results = await job.results()
        resumed = await AsyncBatchJob.resume(tmp_path / "s.json", aclient)
        assert (await resumed.status()).done
    with DashScopeClient(TEST_KEY, base_url=emu.url) as sync_client:
        assert results.complete and results.embeddings == direct(sync_client, texts)
    assert emu.batch.counters.batches_created == 2 and emu.batch.counters.lines_billed == 3




def test_a_batch_the_service_does_not_know_is_a_clear_state_error(
    emu: Emulator, client: DashScopeClient, tmp_path: Path
) -> None:
    emu.batch.configure(delay_s=100.0)
    job = BatchJob.submit(corpus(3), model=MODEL, state_path=tmp_path / "s.json", client=client)
    emu.batch.reset()  # as if resumed against another region's host
    with pytest.raises(BatchStateError, match="is unknown to the service: resume with a client"):
        job.status()


class _UploadAnswerLost(httpx.BaseTransport):
    """Forwards to the emulator; the answer to the first ``uploads`` uploads never arrives.

    The emulator has stored each file by then, as the service does when an upload's answer
    comes after the client's deadline. ``crash`` raises ``KeyboardInterrupt`` instead of a
    timeout: the process stops between the service storing the file and the job recording it.
    """

    def __init__(self, uploads: int = 1, *, crash: bool = False) -> None:
        self.inner = httpx.HTTPTransport()
        self.to_lose, self.crash = uploads, crash

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "POST" and request.url.path.endswith("/files") and self.to_lose:
            self.to_lose -= 1
            response.read()
            response.close()
            if self.crash:
                raise KeyboardInterrupt
            raise httpx.ReadTimeout("the answer came after the deadline", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


def test_an_upload_stored_but_answered_too_late_is_reused_not_sent_again(
    emu: Emulator, tmp_path: Path
) -> None:
    texts = corpus(45)  # 5 lines -> files of 2, 2 and 1 lines
    lost = _UploadAnswerLost(uploads=2)
    with httpx.Client(transport=lost) as http:
        with DashScopeClient(TEST_KEY, base_url=emu.url, http_client=http, timeout=30) as client:
            job = BatchJob.submit(
                texts,
                model=MODEL,
                dimension=DIM,
                state_path=tmp_path / "job.json",
                client=client,
                max_lines_per_file=2,
            )
            assert lost.to_lose == 0  # both answers were lost
            stored = client.files.list()
            assert emu.batch.counters.uploads == 3
            assert len(stored) == 3  # one file per part, no orphan copy
            recorded = json.loads((tmp_path / "job.json").read_text())["parts"]
            assert sorted(f.id for f in stored) == sorted(p["file_id"] for p in recorded)
            job.wait(poll_interval=0)
            results = job.results()
    assert results.complete and len(results.embeddings) == 45
    assert emu.batch.counters.batches_created == 3


def stored_name(state: Path) -> str:
    """The name a job gives its first part's file at the service."""
    return f"{json.loads(state.read_text())['job_id']}-part-0000.jsonl"


def test_resume_after_a_crash_mid_upload_reuses_the_stored_file(
    emu: Emulator, client: DashScopeClient, tmp_path: Path
) -> None:
    texts = corpus(25)  # 3 lines -> one file
    state = tmp_path / "job.json"
    with httpx.Client(transport=_UploadAnswerLost(crash=True)) as http:
        with DashScopeClient(TEST_KEY, base_url=emu.url, http_client=http) as crashing:
            with pytest.raises(KeyboardInterrupt):
                BatchJob.submit(
                    texts, model=MODEL, dimension=DIM, state_path=state, client=crashing
                )
    assert emu.batch.counters.uploads == 1  # the service has the file; the job has no id

    job = BatchJob.resume(state, client)
    assert emu.batch.counters.uploads == 1
    assert len([f for f in client.files.list() if f.filename == stored_name(state)]) == 1
    job.wait(poll_interval=0)
    assert job.results().complete
    assert emu.batch.counters.batches_created == 1
