"""An adapter's runtime leases its clients: a call ends on the client it started with.

No sockets: the adapters' own ``httpx.Client`` goes through an ``httpx.MockTransport`` that
answers as the native text endpoint does, and can hold an answer back until released.
"""

from __future__ import annotations

import json
import pickle
import threading
import typing

import httpx
import pytest

from dashscope_embeddings import DashScopeClient
from dashscope_embeddings.langchain import DashScopeEmbeddings

DIMENSION = 64


class Service:
    """A native text endpoint that holds answers while ``gate`` is closed."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.arrived = threading.Semaphore(0)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        texts = json.loads(request.content)["input"]["texts"]
        self.arrived.release()
        assert self.gate.wait(timeout=30)
        body = {
            "output": {
                "embeddings": [
                    {"embedding": [0.5] * DIMENSION, "text_index": i} for i in range(len(texts))
                ]
            },
            "usage": {"total_tokens": 3 * len(texts)},
            "request_id": "r",
        }
        return httpx.Response(200, json=body)


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[DashScopeClient]:
    clients: list[DashScopeClient] = []
    init = DashScopeClient.__init__

    def record(self: DashScopeClient, *args: typing.Any, **kwargs: typing.Any) -> None:
        init(self, *args, **kwargs)
        clients.append(self)

    monkeypatch.setattr(DashScopeClient, "__init__", record)
    return clients


def test_a_call_in_flight_keeps_its_client_until_it_ends(made: list[DashScopeClient]) -> None:
    service = Service()
    with httpx.Client(transport=httpx.MockTransport(service)) as http:
        emb = DashScopeEmbeddings(
            model="text-embedding-v4", api_key="sk-unit", dimension=DIMENSION, http_client=http
        )
        service.gate.clear()
        results: list[list[list[float]]] = []
        slow = threading.Thread(target=lambda: results.append(emb.embed_documents(["held"])))
        slow.start()
        assert service.arrived.acquire(timeout=30)  # the first call is on the wire
        emb.max_retries = 2  # shapes the client: the next call gets a new one
        service.gate.set()
        assert len(emb.embed_documents(["next"])) == 1
        slow.join()
        assert len(results) == 1 and len(results[0]) == 1
    assert len(made) == 2
    assert made[0].closed and not made[1].closed
    assert emb.usage.requests == 2 and emb.usage.total_tokens == 6


def test_the_old_client_stays_open_while_its_call_runs(made: list[DashScopeClient]) -> None:
    service = Service()
    with httpx.Client(transport=httpx.MockTransport(service)) as http:
        emb = DashScopeEmbeddings(
            model="text-embedding-v4", api_key="sk-unit", dimension=DIMENSION, http_client=http
        )
        service.gate.clear()
        slow = threading.Thread(target=lambda: emb.embed_documents(["held"]))
        slow.start()
        assert service.arrived.acquire(timeout=30)
        emb.max_retries = 2
        emb.close()  # retires the current client; the running call still owns it
        assert not made[0].closed
        service.gate.set()
        slow.join()
    assert made[0].closed


def test_usage_is_kept_across_rebuilds_close_and_pickling() -> None:
    service = Service()
    with httpx.Client(transport=httpx.MockTransport(service)) as http:
        emb = DashScopeEmbeddings(
            model="text-embedding-v4", api_key="sk-unit", dimension=DIMENSION, http_client=http
        )
        emb.embed_documents(["a", "b"])
        emb.max_retries = 1
        emb.embed_documents(["c"])
        emb.close()
        total = emb.usage
        assert (total.requests, total.total_tokens) == (2, 9)
        emb.http_client = None  # an injected client does not cross processes
        restored = pickle.loads(pickle.dumps(emb))
    assert restored.usage == total
