"""Ray Data: the embedder in each batch format, the fleet's shared quota, failures, secrets.

Ray runs in local mode, started once for this module (2 CPUs, no dashboard); the emulator runs
in this process on 127.0.0.1, where Ray's worker processes reach it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import pathlib
import pickle
import subprocess
import sys
import time
import typing
from collections.abc import Collection, Iterator

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import pyarrow as pa  # type: ignore[import-untyped]
import pytest

pytest.importorskip("ray")
import ray
import ray.data

from dashscope_embeddings import ConfigurationError, DashScopeClient
from dashscope_embeddings.emulator import Emulator
from dashscope_embeddings.ray import (
    DashScopeEmbedder,
    RejectedRowsError,
    fleet_quota_stats,
    remove_fleet_quota,
)
from dashscope_embeddings.ray._budgets import FleetRate
from dashscope_embeddings.ray._quota import QuotaLimits, _QuotaActor
from tests.conftest import NATIVE_PATH, TEST_KEY

# Ray starts its node's processes itself and may drop their Popen objects while they run (seen
# once at start-up on a loaded machine); that is Ray's bookkeeping, not this package's.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:Exception ignored in. <function Popen\.__del__:pytest.PytestUnraisableExceptionWarning"
)

MODEL = "text-embedding-v4"
DIMENSION = 64
ROWS = 300
SECRET = "sk-ray-secret-8642"  # passed explicitly in one job; must appear in no log


def _texts(n: int, *, reject: Collection[int] = ()) -> list[str]:
    return [
        f"note {i} on {'refunds' if i % 2 else 'shipping'} and parcel {i % 7}"
        + (" __REJECT__" if i in reject else "")
        for i in range(n)
    ]


def _dataset(texts: list[str]) -> typing.Any:
    items = [{"id": i, "text": t, "lang": "en" if i % 3 else "zh"} for i, t in enumerate(texts)]
    return ray.data.from_items(items, override_num_blocks=4)


def _run(
    ds: typing.Any,
    *,
    batch_format: str = "numpy",
    actors: int = 2,
    batch_size: int = 64,
    **kwargs: typing.Any,
) -> list[dict[str, typing.Any]]:
    options = {"model": MODEL, "dimension": DIMENSION, **kwargs}
    out = ds.map_batches(
        DashScopeEmbedder,
        fn_constructor_kwargs=options,
        compute=ray.data.ActorPoolStrategy(size=actors),
        batch_size=batch_size,
        batch_format=batch_format,
        num_cpus=0.25,
    )
    return typing.cast(list[dict[str, typing.Any]], out.take_all())


def _reference(url: str, texts: list[str]) -> np.ndarray[typing.Any, np.dtype[np.float32]]:
    with DashScopeClient(TEST_KEY, base_url=url) as client:
        result = client.embed_texts(texts, model=MODEL, dimension=DIMENSION, text_type="document")
    return typing.cast("np.ndarray[typing.Any, np.dtype[np.float32]]", result.to_numpy())


def _start_ray(**kwargs: typing.Any) -> None:
    """``ray.init``, tried a second time when the node does not come up in time.

    On a loaded 2-core machine the raylet can miss Ray's own 30 s start-up wait; what failed is
    shut down before the second try, so no half-started process is left behind.
    """
    try:
        ray.init(**kwargs)
    except Exception:
        ray.shutdown()
        time.sleep(2)
        ray.init(**kwargs)


@pytest.fixture(scope="module")
def ray_local() -> Iterator[pathlib.Path]:
    """Ray on this machine, its workers started with the test key as their only DashScope
    variable; yields the session's log folder."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("DASHSCOPE_")]:
            patch.delenv(name)
        patch.setenv("DASHSCOPE_API_KEY", TEST_KEY)
        _start_ray(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
            configure_logging=False,
            # Every worker logs this package at DEBUG (one line per request attempt), so the
            # scan for the key below reads everything the package can log.
            runtime_env={
                "worker_process_setup_hook": lambda: (
                    __import__("logging").basicConfig(
                        level="WARNING", format="%(name)s %(levelname)s %(message)s"
                    )
                    or __import__("logging").getLogger("dashscope_embeddings").setLevel("DEBUG")
                )
            },
        )
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    try:
        node = ray._private.worker._global_node
        assert node is not None
        yield pathlib.Path(node.get_session_dir_path())
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def service() -> Iterator[Emulator]:
    with Emulator(api_key=TEST_KEY, latency=0.005) as emu:
        yield emu


def test_importing_the_core_does_not_import_ray() -> None:
    code = "import sys, dashscope_embeddings; assert 'ray' not in sys.modules, 'ray imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_without_ray_the_module_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "try:\n    import dashscope_embeddings.ray\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert 'pip install "dashscope-embeddings[ray]"' in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize("batch_format", ["numpy", "pandas", "pyarrow"])
def test_map_batches_every_row_once_in_order_with_exact_vectors(
    ray_local: pathlib.Path, service: Emulator, batch_format: str
) -> None:
    texts = _texts(ROWS)
    service.clear_requests()
    rows = _run(_dataset(texts), batch_format=batch_format, base_url=service.url)
    bodies = [r.json for r in service.requests if r.path == NATIVE_PATH]
    assert sum(len(b["input"]["texts"]) for b in bodies) == ROWS  # each text sent once
    assert all(b["parameters"]["text_type"] == "document" for b in bodies)

    assert [r["id"] for r in rows] == list(range(ROWS))
    assert [r["text"] for r in rows] == texts
    assert [r["lang"] for r in rows] == ["en" if i % 3 else "zh" for i in range(ROWS)]
    assert set(rows[0]) == {"id", "text", "lang", "embedding"}
    got = np.stack([np.asarray(r["embedding"], dtype=np.float32) for r in rows])
    assert got.shape == (ROWS, DIMENSION)
    np.testing.assert_array_equal(got, _reference(service.url, texts))


def test_batches_keep_their_format_and_column_types(service: Emulator) -> None:
    # The embedder called directly (no Ray needed): the same format back, columns added.
    embedder = DashScopeEmbedder(MODEL, dimension=DIMENSION, api_key=TEST_KEY, base_url=service.url)
    data = {"id": np.arange(12), "text": np.array(_texts(12), dtype=object)}
    as_numpy = embedder(data)
    assert set(as_numpy) == {"id", "text", "embedding"} and "embedding" not in data
    assert as_numpy["embedding"].dtype == np.float32 and as_numpy["embedding"].shape == (12, 64)
    as_pandas = embedder(pd.DataFrame(data))
    assert list(as_pandas.columns) == ["id", "text", "embedding"]
    assert as_pandas["embedding"].iloc[5].dtype == np.float32
    as_arrow = embedder(pa.table(data))
    assert as_arrow.schema.field("embedding").type == pa.list_(pa.float32(), DIMENSION)
    np.testing.assert_array_equal(np.stack(as_pandas["embedding"].to_list()), as_numpy["embedding"])
    embedder.close()


def test_dense_and_sparse_columns(service: Emulator) -> None:
    embedder = DashScopeEmbedder(
        MODEL, output_type="dense&sparse", api_key=TEST_KEY, base_url=service.url
    )
    out = embedder(pa.table({"text": _texts(5)}))
    sparse = out.column("embedding_sparse").to_pylist()
    with DashScopeClient(TEST_KEY, base_url=service.url) as client:
        want = client.embed_texts(_texts(5), output_type="dense&sparse", text_type="document")
    for row, vector in zip(sparse, want.sparse_embeddings, strict=True):
        assert row["indices"] == list(vector.indices)
        np.testing.assert_allclose(row["values"], vector.values, rtol=1e-6)
    embedder.close()


def test_the_fleet_shares_one_concurrency_cap(ray_local: pathlib.Path) -> None:
    cap = 3
    with Emulator(api_key=TEST_KEY, latency=0.03, max_in_flight=cap) as emu:
        texts = _texts(200)
        rows = _run(
            _dataset(texts),
            actors=2,
            batch_size=40,
            base_url=emu.url,
            max_concurrency=cap,
            quota_name="cap-test",
        )
        stats = emu.stats
    quota = fleet_quota_stats("cap-test")

    assert [r["id"] for r in rows] == list(range(200))
    assert all(r["embedding"] is not None for r in rows)
    assert stats.responses_by_status.get(429, 0) <= 2, stats  # few, and here none expected
    assert quota is not None and quota.peak_in_flight <= cap and quota.expired == 0
    assert quota.permits_granted == stats.requests and quota.processes == 2  # both actors
    assert remove_fleet_quota("cap-test") and fleet_quota_stats("cap-test") is None


def test_three_actors_with_defaults_adapt_as_one_fleet(ray_local: pathlib.Path) -> None:
    cap = 4
    with Emulator(api_key=TEST_KEY, latency=0.05, max_in_flight=cap) as emu:
        rows = _run(
            _dataset(_texts(1000)),
            actors=3,
            batch_size=100,
            base_url=emu.url,
            quota_name="adaptive-test",
        )
        stats = emu.stats
    quota = fleet_quota_stats("adaptive-test")

    assert [r["id"] for r in rows] == list(range(1000))
    assert all(r["embedding"] is not None for r in rows)
    throttled = stats.responses_by_status.get(429, 0)
    assert stats.billed_requests == 100  # 10 texts per request, each billed once
    assert throttled < 0.10 * stats.requests, stats
    # One limit for the fleet, at the coordinator: every attempt of every actor asked it.
    assert quota is not None and quota.permits_granted == stats.requests
    assert quota.processes >= 3 and quota.limits == QuotaLimits()  # nothing was declared
    (account,) = quota.fleet_limits
    assert account.endswith(f"@127.0.0.1:{emu.port}/{MODEL}") and TEST_KEY not in account
    assert remove_fleet_quota("adaptive-test")


def test_a_lost_coordinator_leaves_each_actor_its_own_limiter(ray_local: pathlib.Path) -> None:
    name = "lost-test"
    with Emulator(api_key=TEST_KEY, latency=0.1, max_in_flight=4) as emu:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            job = pool.submit(
                _run,
                _dataset(_texts(1000)),
                actors=3,
                batch_size=100,
                base_url=emu.url,
                quota_name=name,
            )
            deadline = time.monotonic() + 120
            while emu.stats.requests < 10 and not job.done() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert remove_fleet_quota(name)  # killed mid-run
            assert not job.done()
            rows = job.result(timeout=180)  # finishes: no actor waits for it forever
        stats = emu.stats

    assert [r["id"] for r in rows] == list(range(1000))
    assert all(r["embedding"] is not None for r in rows)
    assert stats.billed_requests == 100
    said = f"fleet quota {name!r} did not answer".encode()
    counts = [
        path.read_bytes().count(said) for path in ray_local.rglob("worker-*") if path.is_file()
    ]
    assert 1 <= sum(counts) <= 3 and max(counts) == 1, counts  # once per actor at most


def test_the_fleet_stays_under_one_rpm(ray_local: pathlib.Path) -> None:
    rpm, window = 8, 1.0
    # The service counts `rpm` per 1.0 s window; the fleet budgets it per 1.2 s (its clock
    # starts before a request is sent, the service's when it arrives).
    with Emulator(api_key=TEST_KEY, rpm=rpm, quota_window_s=window) as emu:
        texts = _texts(160)
        started = time.monotonic()
        rows = _run(
            _dataset(texts),
            batch_size=40,
            base_url=emu.url,
            rpm=rpm,
            rate_window_s=1.2 * window,
            quota_name="rpm-test",
        )
        elapsed = time.monotonic() - started
        stats = emu.stats
    quota = fleet_quota_stats("rpm-test")

    assert [r["id"] for r in rows] == list(range(160))
    assert stats.throttled_by_reason.get("rpm", 0) == 0, stats
    assert stats.requests == 16  # 10 texts per request, none sent twice
    assert quota is not None and quota.reserved_requests == stats.requests
    assert quota.rate_waits > 0 and quota.processes == 2  # both actors drew on it; it held back
    assert elapsed >= (stats.requests / rpm - 1) * window


def test_skip_gives_rejected_rows_a_null_vector_and_a_reason(
    ray_local: pathlib.Path, service: Emulator
) -> None:
    bad = frozenset({5, 77, 78, 150})
    texts = _texts(200, reject=bad)
    rows = _run(_dataset(texts), batch_format="pyarrow", base_url=service.url, on_error="skip")

    assert [r["id"] for r in rows] == list(range(200))
    for i, row in enumerate(rows):
        if i in bad:
            assert row["embedding"] is None
            assert "DataInspectionFailed" in row["embedding_error"]
        else:
            assert row["embedding_error"] is None
    good = [i for i in range(200) if i not in bad]
    got = np.asarray([rows[i]["embedding"] for i in good], dtype=np.float32)
    np.testing.assert_array_equal(got, _reference(service.url, [texts[i] for i in good]))


def test_raise_fails_the_batch_naming_the_rows_by_key(
    ray_local: pathlib.Path, service: Emulator
) -> None:
    items = [{"doc": f"kb-{i}", "text": t} for i, t in enumerate(_texts(100, reject={42, 43}))]
    with pytest.raises(Exception) as info:  # Ray wraps the actor's error
        _run(ray.data.from_items(items), base_url=service.url, key_column="doc")
    message = str(info.value)
    assert "RejectedRowsError" in message or isinstance(info.value, RejectedRowsError)
    assert "doc='kb-42'" in message and "doc='kb-43'" in message
    assert "DataInspectionFailed" in message and "on_error='skip'" in message


def test_rejected_rows_error_names_positions_and_pickles(service: Emulator) -> None:
    embedder = DashScopeEmbedder(MODEL, api_key=TEST_KEY, base_url=service.url)
    batch = {"text": np.array(["fine", None, "also fine", "x __REJECT__"], dtype=object)}
    with pytest.raises(RejectedRowsError) as info:
        embedder(batch)
    error = pickle.loads(pickle.dumps(info.value))
    assert error.rows == [1, 3] and sorted(error.failed) == [1, 3]
    assert "row 1: InvalidInput: no text (null)" in str(error)
    assert "pass key_column=" in str(error)
    embedder.close()


def test_the_embedder_pickles_without_its_client_or_an_env_key(
    service: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", TEST_KEY)
    embedder = DashScopeEmbedder(MODEL, dimension=DIMENSION, base_url=service.url)
    embedder({"text": np.array(["warm up the client"], dtype=object)})
    data = pickle.dumps(embedder)
    assert TEST_KEY.encode() not in data
    assert b"DashScopeClient" not in data and b"httpx" not in data
    copy = pickle.loads(data)
    assert copy._client is None  # made on first use, in the process that uses it
    out = copy({"text": np.array(["after unpickling"], dtype=object)})
    assert out["embedding"].shape == (1, DIMENSION)
    embedder.close()
    copy.close()


def test_an_explicit_key_is_never_shown(service: Emulator) -> None:
    embedder = DashScopeEmbedder(MODEL, api_key=SECRET, base_url=service.url)
    assert SECRET not in repr(embedder) and SECRET not in str(vars(embedder))
    embedder.close()


def test_the_key_is_in_no_log_of_the_cluster(
    ray_local: pathlib.Path, service: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    ds = _dataset(_texts(50, reject={3}))
    # A working job with the key passed explicitly (as a plain string), and a rejected row.
    with Emulator(api_key=SECRET) as own:
        rows = _run(ds, api_key=SECRET, base_url=own.url, on_error="skip", max_concurrency=4)
    assert len(rows) == 50 and rows[3]["embedding_error"] is not None
    with pytest.raises(Exception) as info:  # the same key where it is wrong: 401 in every actor
        _run(ds, actors=1, api_key=SECRET, base_url=service.url, max_retries=0)
    assert "AuthenticationError" in str(info.value)
    assert SECRET not in str(info.value) and SECRET not in caplog.text
    logs = {path: path.read_bytes() for path in ray_local.rglob("*") if path.is_file()}
    leaked = [str(path) for path, content in logs.items() if SECRET.encode() in content]
    assert not leaked, leaked
    # The scan did read what the actors logged: request lines and the skipped row's warning.
    everything = b"\n".join(logs.values())
    assert b"dashscope_embeddings.transport DEBUG POST" in everything
    assert b"rows of a Ray batch got no vector" in everything


# --- the quota actor's logic, in this process (no Ray needed) ---------------------------------


async def test_a_reservation_takes_both_budgets_or_neither() -> None:
    quota = _QuotaActor("unit")
    await quota.configure(QuotaLimits(rpm=3, tpm=100, window_s=60))
    assert await quota.reserve(1, 60) == 0.0
    assert await quota.reserve(1, 60) > 0  # the tokens do not fit: the request is not taken
    assert await quota.reserve(1, 40) == 0.0
    assert await quota.reserve(1, 0) == 0.0
    assert await quota.reserve(1, 0) > 0  # now the requests are spent
    stats = await quota.stats()
    assert (stats.reserved_requests, stats.reserved_tokens, stats.rate_waits) == (3, 100, 2)


async def test_permits_are_first_come_first_served_and_leases_expire() -> None:
    quota = _QuotaActor("unit")
    await quota.configure(QuotaLimits(max_concurrency=2))
    first, second = await quota.acquire(60), await quota.acquire(60)
    third = asyncio.ensure_future(quota.acquire(60))
    fourth = asyncio.ensure_future(quota.acquire(0.05))
    await asyncio.sleep(0.01)
    assert not third.done() and not fourth.done()
    await quota.release(first)
    await asyncio.sleep(0.01)
    assert third.done() and not fourth.done()  # the first waiter gets the permit given back
    await quota.release(second)
    lease = await asyncio.wait_for(fourth, 1)
    await asyncio.sleep(0.1)  # never given back: its lease runs out
    stats = await quota.stats()
    assert stats.expired == 1 and stats.in_flight == 1 and stats.peak_in_flight == 2
    await quota.release(lease)  # too late: ignored
    await quota.release(third.result())
    assert (await quota.stats()).in_flight == 0


class _FakeQuota:
    lost = False

    def __init__(self, waits: list[float]) -> None:
        self.waits = waits
        self.calls: list[tuple[int, int]] = []

    def reserve(self, requests: int, tokens: int) -> float:
        self.calls.append((requests, tokens))
        return self.waits.pop(0)


def test_a_fleet_rate_reserves_once_per_attempt() -> None:
    fake = _FakeQuota([0.0, 0.5, 0.0])
    rate = FleetRate(typing.cast(typing.Any, fake), tokens=True)
    assert rate.wait_time(120) == 0.0
    rate.spend(120)  # the reservation is used: no second round trip
    assert rate.wait_time(80) == 0.5
    assert rate.wait_time(80) == 0.0
    assert rate.wait_time(80) == 0.0  # reserved and not spent yet: the same reservation
    assert fake.calls == [(1, 120), (1, 80), (1, 80)]
    requests = FleetRate(typing.cast(typing.Any, _FakeQuota([0.0])), tokens=False)
    assert requests.wait_time(1) == 0.0
    assert typing.cast(_FakeQuota, requests.quota).calls == [(1, 0)]


def test_the_compatible_protocol_needs_no_text_type(service: Emulator) -> None:
    embedder = DashScopeEmbedder(
        MODEL, api_key=TEST_KEY, base_url=service.url, protocol="compatible"
    )
    out = embedder({"text": np.array(["hello there"], dtype=object)})
    assert out["embedding"].shape == (1, 1024)
    embedder.close()


def test_a_missing_column_is_named_with_the_columns_there_are(service: Emulator) -> None:
    embedder = DashScopeEmbedder(MODEL, api_key=TEST_KEY, base_url=service.url, key_column="doc")
    with pytest.raises(KeyError, match=r"column 'text' is not in this Ray batch.*body, doc"):
        embedder(pa.table({"body": ["a"], "doc": ["d-1"]}))
    with pytest.raises(KeyError, match=r"key_column 'doc' is not in this Ray batch.*text, id"):
        embedder({"text": np.array(["a"], dtype=object), "id": np.array([1])})
    embedder.close()


@pytest.mark.parametrize("mode", ["truncate", "chunk"])
def test_long_text_is_passed_to_the_core(
    service: Emulator, mode: typing.Literal["truncate", "chunk"]
) -> None:
    long = "word " * 9000  # over text-embedding-v4's 8,192 tokens
    refused = DashScopeEmbedder(MODEL, api_key=TEST_KEY, base_url=service.url)
    with pytest.raises(RejectedRowsError, match="long_text='truncate'"):
        refused({"text": np.array([long], dtype=object)})
    embedder = DashScopeEmbedder(MODEL, api_key=TEST_KEY, base_url=service.url, long_text=mode)
    out = embedder({"text": np.array([long, "short"], dtype=object)})
    assert len(out["embedding"]) == 2


def test_an_unknown_long_text_is_refused_at_construction(service: Emulator) -> None:
    with pytest.raises(ConfigurationError, match="long_text must be"):
        DashScopeEmbedder(MODEL, api_key=TEST_KEY, base_url=service.url, long_text="shorten")  # type: ignore[arg-type]
