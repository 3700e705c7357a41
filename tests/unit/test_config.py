from __future__ import annotations

import httpx
import pytest

from dashscope_embeddings import AsyncDashScopeClient, ConfigurationError, DashScopeClient
from dashscope_embeddings._config import resolve_endpoints
from dashscope_embeddings._options import RequestOptions
from dashscope_embeddings._transport import APIRequest

SECRET = "sk-very-secret-value-123"


def _headers(client: DashScopeClient) -> httpx.Headers:
    """The headers the client would send on a request (built, not sent)."""
    request = APIRequest("POST", client.endpoints.native_base + "/x", content=b"{}")
    built = client._transport.build(client._http, request, RequestOptions())
    return next(client._transport.auth.auth_flow(built)).headers


def test_missing_key_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="DASHSCOPE_API_KEY"):
        DashScopeClient()


def test_key_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", SECRET)
    with DashScopeClient() as client:
        assert _headers(client)["Authorization"] == f"Bearer {SECRET}"


@pytest.mark.parametrize(
    ("kwargs", "native", "compatible", "region"),
    [
        (
            {},
            "https://dashscope.aliyuncs.com/api/v1",
            "https://dashscope.aliyuncs.com/compatible-mode/v1",
            "cn-beijing",
        ),
        (
            {"region": "ap-southeast-1"},
            "https://dashscope-intl.aliyuncs.com/api/v1",
            "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
            "ap-southeast-1",
        ),
        (
            {"region": "cn-hongkong"},
            "https://cn-hongkong.dashscope.aliyuncs.com/api/v1",
            "https://cn-hongkong.dashscope.aliyuncs.com/compatible-mode/v1",
            "cn-hongkong",
        ),
        (
            {"base_url": "http://127.0.0.1:9/"},
            "http://127.0.0.1:9/api/v1",
            "http://127.0.0.1:9/compatible-mode/v1",
            "cn-beijing",
        ),
        (
            {"base_url": "http://127.0.0.1:9/api/v1"},
            "http://127.0.0.1:9/api/v1",
            "http://127.0.0.1:9/compatible-mode/v1",
            "cn-beijing",
        ),
        (
            {"base_url": "http://127.0.0.1:9/compatible-mode/v1"},
            "http://127.0.0.1:9/api/v1",
            "http://127.0.0.1:9/compatible-mode/v1",
            "cn-beijing",
        ),
        (
            {"base_url": "https://dashscope-intl.aliyuncs.com/api/v1"},
            "https://dashscope-intl.aliyuncs.com/api/v1",
            "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
            "ap-southeast-1",
        ),
    ],
)
def test_endpoints(kwargs: dict[str, str], native: str, compatible: str, region: str) -> None:
    ep = resolve_endpoints(environ={}, **kwargs)
    assert (ep.native_base, ep.compatible_base, ep.region) == (native, compatible, region)


def test_env_base_urls_in_order() -> None:
    env = {"DASHSCOPE_HTTP_BASE_URL": "http://127.0.0.1:2/api/v1"}
    assert resolve_endpoints(environ=env).native_base == "http://127.0.0.1:2/api/v1"
    env["DASHSCOPE_BASE_URL"] = "http://127.0.0.1:1"
    assert resolve_endpoints(environ=env).native_base == "http://127.0.0.1:1/api/v1"
    # an explicit region beats the environment, with a warning that says so
    with pytest.warns(UserWarning, match="not used"):
        endpoints = resolve_endpoints(region="cn-beijing", environ=env)
    assert endpoints.native_base.startswith("https://dashscope.")


def test_bad_region_and_url() -> None:
    with pytest.raises(ConfigurationError, match="unknown region 'mars'"):
        resolve_endpoints(region="mars", environ={})
    with pytest.raises(ConfigurationError, match="http"):
        resolve_endpoints(base_url="ftp://x", environ={})


def test_workspace_header() -> None:
    with DashScopeClient(SECRET, workspace="ws-1") as client:
        assert _headers(client)["X-DashScope-WorkSpace"] == "ws-1"


def test_two_clients_side_by_side_keep_their_own_settings() -> None:
    a = DashScopeClient("key-a", region="cn-beijing")
    b = DashScopeClient("key-b", region="ap-southeast-1")
    try:
        assert _headers(a)["Authorization"] == "Bearer key-a"
        assert _headers(b)["Authorization"] == "Bearer key-b"
        assert a.endpoints.native_base != b.endpoints.native_base
    finally:
        a.close()
        b.close()


def test_key_never_in_repr_or_str() -> None:
    for client in (DashScopeClient(SECRET), AsyncDashScopeClient(SECRET)):
        assert SECRET not in repr(client) and SECRET not in str(client)
        assert SECRET not in repr(vars(client))
    DashScopeClient(SECRET).close()


@pytest.mark.parametrize(
    "kwargs", [{"max_retries": -1}, {"max_concurrency": 0}, {"protocol": "grpc"}]
)
def test_bad_client_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DashScopeClient(SECRET, **kwargs)  # type: ignore[arg-type]


def test_per_call_protocol_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    with DashScopeClient(SECRET) as client, pytest.raises(ValueError, match="protocol"):
        client.embed_texts(["x"], protocol="grpc")  # type: ignore[call-overload]
