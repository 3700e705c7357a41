"""Unit tests open no sockets at all: planning, parsing, retry decisions and the transport
(through ``httpx.MockTransport``) are tested without a peer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import pytest_socket


@pytest.fixture(autouse=True)
def _no_sockets() -> Iterator[None]:
    pytest_socket.disable_socket(allow_unix_socket=True)
    yield
    pytest_socket.enable_socket()
