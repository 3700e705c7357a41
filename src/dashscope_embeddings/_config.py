"""Resolving the API key, region and base URLs from arguments and the environment."""

from __future__ import annotations

import os
import typing
from dataclasses import dataclass

import httpx
from pydantic import SecretStr

from dashscope_embeddings._constants import (
    API_KEY_ENV,
    BASE_URL_ENVS,
    COMPATIBLE_PREFIX,
    DEFAULT_REGION,
    NATIVE_PREFIX,
    REGION_HOSTS,
    WORKSPACE_ENV,
)
from dashscope_embeddings._errors import DashScopeError

__all__ = ["ConfigurationError", "Endpoints", "resolve_api_key", "resolve_endpoints"]


class ConfigurationError(DashScopeError, ValueError):
    """The client cannot be set up: no API key, an unknown region, a malformed base URL."""


@dataclass(frozen=True)
class Endpoints:
    """Where requests go: the native and OpenAI-compatible bases, and the billing region."""

    native_base: str
    compatible_base: str
    region: str
    workspace: str | None = None


def resolve_api_key(api_key: str | SecretStr | None) -> SecretStr:
    """The key from the argument, else ``DASHSCOPE_API_KEY``.

    Raises:
        ConfigurationError: If neither gives a non-empty key.
    """
    if isinstance(api_key, SecretStr):
        api_key = api_key.get_secret_value()
    if api_key is None:
        api_key = os.environ.get(API_KEY_ENV)
    if not api_key or not api_key.strip():
        raise ConfigurationError(
            f"no DashScope API key: pass api_key=... or set the {API_KEY_ENV} environment variable"
        )
    return SecretStr(api_key.strip())


def _split_base(url: str) -> tuple[str, str]:
    """Native and compatible bases from any of: a host, a native base, a compatible base."""
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigurationError(f"base_url must be an http(s) URL, got {url!r}")
    root = url.rstrip("/")
    for prefix in (NATIVE_PREFIX, COMPATIBLE_PREFIX):
        if root.endswith(prefix):
            root = root[: -len(prefix)]
            break
    return root + NATIVE_PREFIX, root + COMPATIBLE_PREFIX


def resolve_endpoints(
    *,
    region: str | None = None,
    base_url: str | None = None,
    workspace: str | None = None,
    environ: typing.Mapping[str, str] | None = None,
) -> Endpoints:
    """Work out where requests go.

    Order: the ``base_url`` argument, then ``region``, then ``DASHSCOPE_BASE_URL``, then
    ``DASHSCOPE_HTTP_BASE_URL``, then the default region (cn-beijing). ``region`` also picks
    the currency of cost estimates when a base URL is given.

    Raises:
        ConfigurationError: For an unknown region or a malformed URL.
    """
    env = os.environ if environ is None else environ
    if region is not None and region not in REGION_HOSTS:
        raise ConfigurationError(
            f"unknown region {region!r}; choose one of {', '.join(REGION_HOSTS)} or pass base_url="
        )
    if base_url is None and region is None:
        base_url = next((env[name] for name in BASE_URL_ENVS if env.get(name)), None)
    if base_url is None:
        base_url = REGION_HOSTS[region or DEFAULT_REGION]
    native, compatible = _split_base(base_url)
    if region is None:  # a known host tells its region (and so the currency of cost estimates)
        host = httpx.URL(base_url).host
        region = next((r for r, h in REGION_HOSTS.items() if httpx.URL(h).host == host), None)
    return Endpoints(
        native_base=native,
        compatible_base=compatible,
        region=region or DEFAULT_REGION,
        workspace=workspace or env.get(WORKSPACE_ENV) or None,
    )
