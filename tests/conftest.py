"""Shared fixtures: a hermetic environment and the bundled emulator on 127.0.0.1."""

from __future__ import annotations

import os
import typing
from collections.abc import Iterator

import pytest

# Ray (tests/e2e/test_ray.py) as a one-machine cluster on 127.0.0.1, so its own traffic stays on
# loopback; Ray reads this when it is imported, so it is set before any test module loads.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

TEST_KEY = "sk-test-0123456789"
NATIVE_PATH = "/api/v1/services/embeddings/text-embedding/text-embedding"
COMPAT_PATH = "/compatible-mode/v1/embeddings"


def sent_bodies(emulator: typing.Any, path: str = NATIVE_PATH) -> list[dict[str, typing.Any]]:
    """JSON bodies of the requests the emulator received on ``path``, in arrival order."""
    return [r.json for r in emulator.requests if r.path == path]


_AMBIENT = (
    "DASHSCOPE_API_KEY",
    "DASHSCOPE_BASE_URL",
    "DASHSCOPE_HTTP_BASE_URL",
    "DASHSCOPE_WORKSPACE_ID",
    "DASHSCOPE_REGION",
)


@pytest.fixture(autouse=True)
def hermetic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ambient key or base URL leaks into a test; tests set what they need."""
    for name in _AMBIENT:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def _emulator_session() -> Iterator[object]:
    from dashscope_embeddings.emulator import Emulator

    with Emulator(api_key=TEST_KEY) as emu:
        yield emu


@pytest.fixture
def emulator(_emulator_session: object) -> Iterator[object]:
    """The session's emulator, with its request log and fault queue cleared for each test."""
    emu = _emulator_session
    emu.clear_requests()  # type: ignore[attr-defined]
    emu.clear_faults()  # type: ignore[attr-defined]
    yield emu
    emu.clear_faults()  # type: ignore[attr-defined]


@pytest.fixture
def emulator_env(emulator: object, monkeypatch: pytest.MonkeyPatch) -> object:
    """Point DASHSCOPE_API_KEY / DASHSCOPE_BASE_URL at the emulator."""
    monkeypatch.setenv("DASHSCOPE_API_KEY", TEST_KEY)
    monkeypatch.setenv("DASHSCOPE_BASE_URL", emulator.url)  # type: ignore[attr-defined]
    return emulator


def pytest_report_header() -> str:
    return f"DASHSCOPE_API_KEY set in outer env: {'DASHSCOPE_API_KEY' in os.environ}"
