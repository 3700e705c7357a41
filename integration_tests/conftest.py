"""Live tests against the real DashScope service: skipped unless DASHSCOPE_API_KEY is set.

Region from DASHSCOPE_REGION (default cn-beijing). These reach the network, so the loopback-only
socket guard of the unit tests is lifted here.
"""

from __future__ import annotations

import os

import pytest

HAS_KEY = bool(os.environ.get("DASHSCOPE_API_KEY"))
REGION = os.environ.get("DASHSCOPE_REGION") or None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration_tests" in str(item.path):
            item.add_marker(pytest.mark.enable_socket)
            if not HAS_KEY:
                item.add_marker(pytest.mark.skip(reason="DASHSCOPE_API_KEY is not set"))
