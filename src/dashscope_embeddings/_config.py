"""Resolving the API key, region and base URLs from arguments and the environment."""

from __future__ import annotations

import ipaddress
import os
import typing
import warnings
from dataclasses import dataclass

from pydantic import SecretStr

from dashscope_embeddings._constants import (
    API_KEY_ENV,
    BASE_URL_ENVS,
    COMPATIBLE_PREFIX,
    DEFAULT_REGION,
    NATIVE_PREFIX,
    REGION_ENV,
    REGION_HOSTS,
    WORKSPACE_ENV,
)
from dashscope_embeddings._errors import ConfigurationError

__all__ = [
    "Endpoints",
    "check_transport_security",
    "checked_endpoints",
    "is_loopback",
    "resolve_api_key",
    "resolve_endpoints",
]



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
    import httpx

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

    Arguments beat the environment, and a URL beats a region. The host is the first of: the
    ``base_url`` argument, the ``region`` argument, ``DASHSCOPE_BASE_URL``,
    ``DASHSCOPE_HTTP_BASE_URL``, ``DASHSCOPE_REGION``, the default region (cn-beijing).
    A region that does not pick the host still picks the currency of cost estimates; a
    ``UserWarning`` says when a region argument or a base URL in the environment is passed
    over, so a host is never chosen silently.

    Raises:
        ConfigurationError: For an unknown region or a malformed URL.
    """
    env = os.environ if environ is None else environ
    for given in (region, env.get(REGION_ENV) or None):
        if given is not None and given not in REGION_HOSTS:
            raise ConfigurationError(
                f"unknown region {given!r}; choose one of {', '.join(REGION_HOSTS)} "
                "or pass base_url="
            )
    env_url = next((env[name] for name in BASE_URL_ENVS if env.get(name)), None)
    if base_url is not None and region is not None:
        warnings.warn(
            f"both base_url and region={region!r} were given: requests go to base_url, and the "
            "region only sets the currency of cost estimates",
            UserWarning,
            stacklevel=4,
        )
    elif region is not None and env_url is not None:
        warnings.warn(
            f"region={region!r} was given, so DASHSCOPE_BASE_URL / DASHSCOPE_HTTP_BASE_URL "
            f"({env_url}) is not used; drop the region argument to use it",
            UserWarning,
            stacklevel=4,
        )
    if base_url is None and region is None:
        base_url = env_url
    if base_url is None and region is None:
        region = env.get(REGION_ENV) or None
    if base_url is None:
        base_url = REGION_HOSTS[region or DEFAULT_REGION]
    native, compatible = _split_base(base_url)
    if region is None:  # a known host tells its region (and so the currency of cost estimates)
        import httpx

        host = httpx.URL(base_url).host
        region = next((r for r, h in REGION_HOSTS.items() if httpx.URL(h).host == host), None)
    return Endpoints(
        native_base=native,
        compatible_base=compatible,
        region=region or DEFAULT_REGION,
        workspace=workspace or env.get(WORKSPACE_ENV) or None,
    )


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_transport_security(endpoints: Endpoints, *, allow_insecure_http: bool) -> None:
    """Refuse a plain-HTTP base URL to another machine unless the user opted in.

    The key travels in a header: over ``http://`` anyone on the path can read it. Loopback
    (the bundled emulator, a local proxy) is fine.

    Raises:
        ConfigurationError: Naming the URL and the option that allows it.
    """
    import httpx

    url = httpx.URL(endpoints.native_base)
    if url.scheme == "http" and not is_loopback(url.host) and not allow_insecure_http:
        raise ConfigurationError(
            f"base URL {endpoints.native_base} is plain http:// to another machine: the API key "
            "would cross the network unencrypted. Use https://, or pass "
            "allow_insecure_http=True if the network is yours"
        )


class _Placement(typing.Protocol):
    """The settings that say where requests go (a client's or an adapter's)."""

    @property
    def region(self) -> str | None: ...
    @property
    def base_url(self) -> str | None: ...
    @property
    def workspace(self) -> str | None: ...
    @property
    def allow_insecure_http(self) -> bool: ...


def checked_endpoints(settings: _Placement) -> Endpoints:
    """Where ``settings`` send requests, checked by :func:`check_transport_security`.

    One place for what every client, adapter and front door does before its first request.

    Raises:
        ConfigurationError: An unknown region, a bad URL, or plain HTTP off this machine.
    """
    endpoints = resolve_endpoints(
        region=settings.region, base_url=settings.base_url, workspace=settings.workspace
    )
    check_transport_security(endpoints, allow_insecure_http=settings.allow_insecure_http)
    return endpoints
