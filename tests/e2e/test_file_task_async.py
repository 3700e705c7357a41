"""AsyncFileTaskJob against the bundled emulator, over loopback HTTP, next to FileTaskJob.

The input files are served by the threaded ``http.server`` of ``test_file_task``; the async job
must give the very vectors the sync job gives, share its state file (either one resumes the
other's job without a second task), renew an expired link, and leave a resumable state when the
task awaiting it is cancelled.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dashscope_embeddings import AsyncDashScopeClient, DashScopeClient
from dashscope_embeddings.batch import AsyncFileTaskJob, FileTaskJob, _file_task
from dashscope_embeddings.batch._file_task import FileTaskError, FileTaskStatus
from dashscope_embeddings.emulator import Emulator
from dashscope_embeddings.emulator._file_tasks import FileTaskController
from tests.conftest import TEST_KEY
from tests.e2e import test_file_task as _sync
from tests.e2e.test_file_task import _Files, corpus, serve

# The sync tests' fixtures (served input files, a reset emulator, a sync client), shared.
files = _sync.files
emu = _sync.emu
client = _sync.client


@pytest.fixture
async def aclient(emu: Emulator) -> AsyncIterator[AsyncDashScopeClient]:
    async with AsyncDashScopeClient(TEST_KEY, base_url=emu.url) as c:
        yield c


@pytest.fixture
def apauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The async job's pauses, recorded instead of slept."""
    recorded: list[float] = []

    async def record(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(_file_task, "_asleep", record)
    return recorded


def creates(emu: Emulator) -> int:
    return int(emu.batch.counters.tasks_created)


async def test_async_job_gives_the_vectors_of_the_sync_job(
    emu: Emulator,
    client: DashScopeClient,
    aclient: AsyncDashScopeClient,
    files: _Files,
    tmp_path: Path,
) -> None:
    texts = corpus(300)
    url = serve(files, "same.txt", texts)
    seen: list[FileTaskStatus] = []
    job = await AsyncFileTaskJob.submit(
        url, state_path=tmp_path / "a.json", client=aclient, lines=300
    )
    assert isinstance(job, AsyncFileTaskJob) and job.task_id
    status = await job.wait(progress=seen.append)
    assert status.status == "SUCCEEDED" and seen[-1] == status
    results = await job.results()
    with FileTaskJob.submit(url, state_path=tmp_path / "s.json", client=client, lines=300) as sync:
        expected = sync.results()
    assert len(results.embeddings) == 300
    assert results.embeddings == expected.embeddings
    assert results.usage == expected.usage
    downloads = [r for r in emu.requests if r.path.startswith("/oss/")]
    assert len(downloads) == 2  # one per job, both without the key
    for download in downloads:
        assert "authorization" not in {str(k).lower() for k in download.headers}
    assert creates(emu) == 2
    assert (tmp_path / "a.json.d" / "result.bin").exists()


async def test_from_texts_takes_an_async_upload_and_uploads_once(
    emu: Emulator, aclient: AsyncDashScopeClient, files: _Files, tmp_path: Path
) -> None:
    texts = corpus(4)
    uploads: list[Path] = []

    async def upload(path: Path) -> str:
        await asyncio.sleep(0)
        uploads.append(path)
        return serve(files, "aup.txt", path.read_text(encoding="utf-8").splitlines())

    state = tmp_path / "t.json"
    job = await AsyncFileTaskJob.from_texts(texts, upload=upload, state_path=state, client=aclient)
    async with await AsyncFileTaskJob.resume(state, aclient, upload=upload) as resumed:
        assert resumed.task_id == job.task_id
        vectors = (await resumed.results()).embeddings
    assert vectors == (await aclient.embed_texts(texts, model="text-embedding-v2")).embeddings
    assert len(uploads) == 1 and creates(emu) == 1

    def sync_upload(path: Path) -> str:
        uploads.append(path)
        return serve(files, "sup.txt", path.read_text(encoding="utf-8").splitlines())

    other = await AsyncFileTaskJob.from_texts(
        texts, upload=sync_upload, state_path=tmp_path / "u.json", client=aclient
    )
    assert (await other.results()).embeddings == vectors
    assert len(uploads) == 2 and creates(emu) == 2


async def test_async_resumes_a_sync_job_and_sync_resumes_an_async_job(
    emu: Emulator,
    client: DashScopeClient,
    aclient: AsyncDashScopeClient,
    files: _Files,
    tmp_path: Path,
    apauses: list[float],
) -> None:
    emu.batch.configure(delay_s=4)
    texts = corpus(7)
    url = serve(files, "r.txt", texts)
    expected = (await aclient.embed_texts(texts, model="text-embedding-v2")).embeddings

    sync_state = tmp_path / "sync.json"
    first = FileTaskJob.submit(url, state_path=sync_state, client=client)
    resumed = await AsyncFileTaskJob.resume(sync_state, aclient)
    assert resumed.task_id == first.task_id

    async def tick(seconds: float) -> None:
        apauses.append(seconds)
        emu.batch.advance(seconds)

    _file_task._asleep = tick  # the monkeypatch of apauses restores it
    assert (await resumed.wait()).status == "SUCCEEDED"
    assert apauses[:3] == [1.0, 2.0, 4.0]  # 1 s doubling, as the sync job polls
    assert (await resumed.results()).embeddings == expected
    assert creates(emu) == 1

    async_state = tmp_path / "async.json"
    started = await AsyncFileTaskJob.submit(url, state_path=async_state, client=aclient)
    again = FileTaskJob.resume(async_state, client)
    assert again.task_id == started.task_id
    emu.batch.advance(10)
    assert again.results().embeddings == expected
    assert creates(emu) == 2
    # Either flavour reads the result the other one downloaded, without downloading it again.
    downloads = emu.batch.counters.result_downloads
    assert (await (await AsyncFileTaskJob.resume(async_state, aclient)).results()).embeddings == (
        expected
    )
    assert FileTaskJob.resume(sync_state, client).results().embeddings == expected
    assert emu.batch.counters.result_downloads == downloads == 2
    assert creates(emu) == 2


async def test_expired_link_is_renewed_by_polling(
    emu: Emulator, aclient: AsyncDashScopeClient, files: _Files, tmp_path: Path
) -> None:
    state = tmp_path / "t.json"
    job = await AsyncFileTaskJob.submit(
        serve(files, "x.txt", corpus(3)), state_path=state, client=aclient
    )
    await job.wait()
    assert json.loads(state.read_text())["result_url"]
    FileTaskController.of(emu).expire_links()
    resumed = await AsyncFileTaskJob.resume(state, aclient)
    assert len((await resumed.results()).embeddings) == 3
    polls = [r for r in emu.requests if r.path == f"/api/v1/tasks/{job.task_id}"]
    assert len(polls) >= 2  # a second poll fetched a fresh link
    fetches = [r for r in emu.requests if r.path.startswith("/oss/")]
    assert len(fetches) == 2  # the expired link was refused, the fresh one served
    counters = emu.batch.counters
    assert counters.tasks_created == 1 and counters.result_downloads == 1


async def test_failed_task_raises_file_task_error(
    emu: Emulator, aclient: AsyncDashScopeClient, files: _Files, tmp_path: Path
) -> None:
    emu.batch.fail_next_task(code="InternalError", message="worker died")
    job = await AsyncFileTaskJob.submit(
        serve(files, "f.txt", corpus(3)), state_path=tmp_path / "b.json", client=aclient
    )
    with pytest.raises(FileTaskError, match="FAILED: InternalError: worker died") as caught:
        await job.results()
    assert caught.value.task_id == job.task_id and caught.value.status == "FAILED"
    assert json.loads((tmp_path / "b.json").read_text())["status"] == "FAILED"


async def test_timeout_raises_timeout_error_and_the_task_goes_on(
    emu: Emulator, aclient: AsyncDashScopeClient, files: _Files, tmp_path: Path
) -> None:
    emu.batch.configure(delay_s=600)
    state = tmp_path / "t.json"
    job = await AsyncFileTaskJob.submit(
        serve(files, "w.txt", corpus(2)), state_path=state, client=aclient
    )
    with pytest.raises(TimeoutError, match=rf"file task {job.task_id} is PENDING after 0.2 s"):
        await job.wait(timeout=0.2)
    with pytest.raises(TimeoutError, match=str(state)):
        await job.results(timeout=0.1)
    emu.batch.advance(700)
    assert len((await job.results()).embeddings) == 2
    assert creates(emu) == 1


async def test_cancelling_the_awaiting_task_leaves_a_resumable_state(
    emu: Emulator,
    client: DashScopeClient,
    aclient: AsyncDashScopeClient,
    files: _Files,
    tmp_path: Path,
) -> None:
    emu.batch.configure(delay_s=600)
    texts = corpus(5)
    state = tmp_path / "t.json"
    job = await AsyncFileTaskJob.submit(
        serve(files, "c.txt", texts), state_path=state, client=aclient
    )
    polled: list[FileTaskStatus] = []
    waiting = asyncio.ensure_future(job.wait(progress=polled.append))
    for _ in range(200):  # until it has polled once and sleeps before the next poll
        if polled:
            break
        await asyncio.sleep(0.01)
    assert polled and not waiting.done()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    saved = json.loads(state.read_text())
    assert saved["task_id"] == job.task_id and not saved["downloaded"]
    emu.batch.advance(700)
    resumed = await AsyncFileTaskJob.resume(state, aclient)
    assert (await resumed.results()).embeddings == (
        await aclient.embed_texts(texts, model="text-embedding-v2")
    ).embeddings
    assert FileTaskJob.resume(state, client).task_id == job.task_id
    assert creates(emu) == 1


async def test_an_owned_client_is_closed_and_a_given_one_is_not(
    emu: Emulator, emulator_env: Emulator, files: _Files, tmp_path: Path
) -> None:
    job = await AsyncFileTaskJob.submit(
        serve(files, "o.txt", corpus(2)), state_path=tmp_path / "t.json"
    )
    async with job:
        assert len((await job.results()).embeddings) == 2
    assert job._client._closed
    async with AsyncDashScopeClient() as given:
        resumed = await AsyncFileTaskJob.resume(tmp_path / "t.json", given)
        await resumed.aclose()
        assert not given._closed
        assert len((await resumed.results()).embeddings) == 2
