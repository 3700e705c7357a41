"""The I/O-free half of the core client: settings, request planning, parsing, retry decisions.

:class:`BaseClient` holds everything the sync and async clients share; they add only their
send loops and fan-out (``_client.py``).
"""

from __future__ import annotations

import json
import logging
import platform
import typing
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from pydantic import SecretStr

from dashscope_embeddings._batching import check_options, check_texts, plan_batches
from dashscope_embeddings._config import resolve_api_key, resolve_endpoints
from dashscope_embeddings._constants import (
    COMPATIBLE_EMBEDDINGS_PATH,
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT_S,
    TEXT_EMBEDDING_PATH,
)
from dashscope_embeddings._errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
)
from dashscope_embeddings._payloads import (
    BatchOutput,
    body_error_code,
    compatible_body,
    decode_json,
    native_text_body,
    parse_compatible,
    parse_error,
    parse_native_text,
)
from dashscope_embeddings._registry import ModelSpec, get_model_spec
from dashscope_embeddings._retry import parse_retry_after, retry_delay, should_retry
from dashscope_embeddings._tokens import TokenCounter
from dashscope_embeddings._types import EmbeddingResult, OutputType, SparseVector, TextType, Usage
from dashscope_embeddings._usage import UsageTracker, usage_for
from dashscope_embeddings._version import __version__

__all__ = [
    "BaseClient",
    "Call",
    "ClientOptions",
    "Protocol",
    "Request",
    "TimeoutTypes",
    "transport_error",
]

logger = logging.getLogger("dashscope_embeddings")

Protocol = typing.Literal["native", "compatible"]
TimeoutTypes = typing.Union[float, httpx.Timeout, None]  # noqa: UP007 (runtime alias, py3.10)

_USER_AGENT = (
    f"dashscope-embeddings/{__version__} "
    f"python/{platform.python_version()} httpx/{httpx.__version__}"
)


class ClientOptions(typing.TypedDict, total=False):
    """Keyword arguments shared by :class:`DashScopeClient` and :class:`AsyncDashScopeClient`.

    Attributes:
        region: ``cn-beijing`` (default), ``ap-southeast-1`` or ``cn-hongkong``.
        base_url: An explicit host or base URL (overrides ``region``); else the environment's
            ``DASHSCOPE_BASE_URL`` / ``DASHSCOPE_HTTP_BASE_URL``.
        workspace: Sent as ``X-DashScope-WorkSpace``; defaults to ``DASHSCOPE_WORKSPACE_ID``.
        protocol: ``native`` (default; text_type, sparse, instruct) or ``compatible`` (the
            OpenAI-compatible endpoint: dense only, no text_type).
        max_retries: Retries per request on 429, 5xx and transport errors (default 2).
        timeout: Seconds per request, or an ``httpx.Timeout``; ``None`` waits forever.
        max_concurrency: Requests in flight at once (default 4).
        token_counter: Exact token counter for the pre-send length check.
    """

    region: str | None
    base_url: str | None
    workspace: str | None
    protocol: Protocol
    max_retries: int
    timeout: TimeoutTypes
    max_concurrency: int
    token_counter: TokenCounter | None


@dataclass(frozen=True)
class Request:
    """One planned HTTP request: where, the serialised body, and which inputs it carries."""

    url: str
    content: bytes
    indices: range


@dataclass(frozen=True)
class Call:
    """One ``embed_texts`` call, planned: the model, its options, and its requests."""

    spec: ModelSpec
    protocol: Protocol
    output_type: OutputType
    expected_dimension: int | None
    requests: list[Request]


def _timeout(timeout: TimeoutTypes) -> httpx.Timeout:
    if isinstance(timeout, httpx.Timeout):
        return timeout
    if timeout is None:
        return httpx.Timeout(None)
    return httpx.Timeout(timeout, connect=min(DEFAULT_CONNECT_TIMEOUT_S, timeout))


def _check_protocol(protocol: str) -> Protocol:
    if protocol not in ("native", "compatible"):
        raise ValueError(f"protocol must be 'native' or 'compatible', got {protocol!r}")
    return typing.cast(Protocol, protocol)


class BaseClient:
    """Settings, planning, parsing and retry decisions; no I/O."""

    def __init__(self, api_key: str | SecretStr | None, options: ClientOptions) -> None:
        protocol = options.get("protocol", "native")
        max_retries = options.get("max_retries", DEFAULT_MAX_RETRIES)
        max_concurrency = options.get("max_concurrency", DEFAULT_MAX_CONCURRENCY)
        _check_protocol(protocol)
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be >= 1")
        self._api_key = resolve_api_key(api_key)
        self.endpoints = resolve_endpoints(
            region=options.get("region"),
            base_url=options.get("base_url"),
            workspace=options.get("workspace"),
        )
        self.protocol: Protocol = protocol
        self.max_retries = max_retries
        self.max_concurrency = max_concurrency
        self.timeout = _timeout(options.get("timeout", DEFAULT_TIMEOUT_S))
        self.token_counter = options.get("token_counter")
        self._usage = UsageTracker()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.endpoints.native_base!r}, "
            f"region={self.endpoints.region!r}, protocol={self.protocol!r})"
        )

    @property
    def usage(self) -> Usage:
        """Tokens and estimated cost of every successful request this client has sent."""
        return self._usage.total

    def reset_usage(self) -> None:
        """Start the running usage total from zero."""
        self._usage.reset()

    def _headers(self) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self._api_key.get_secret_value()}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": _USER_AGENT,
        }
        if self.endpoints.workspace:
            headers["X-DashScope-WorkSpace"] = self.endpoints.workspace
        return headers

    def _plan(
        self,
        texts: Sequence[str],
        *,
        model: str | ModelSpec,
        dimension: int | None,
        text_type: TextType | None,
        output_type: OutputType,
        instruct: str | None,
        protocol: Protocol | None,
    ) -> Call:
        spec = get_model_spec(model)
        protocol = self.protocol if protocol is None else _check_protocol(protocol)
        compatible = protocol == "compatible"
        check_options(
            spec,
            dimension=dimension,
            text_type=text_type,
            output_type=output_type,
            instruct=instruct,
            compatible=compatible,
        )
        check_texts(texts, spec, token_counter=self.token_counter)
        requests = []
        for indices in plan_batches(len(texts), spec.max_batch_size):
            chunk = [texts[i] for i in indices]
            if compatible:
                url = self.endpoints.compatible_base + COMPATIBLE_EMBEDDINGS_PATH
                body = compatible_body(spec.name, chunk, dimension=dimension)
            else:
                url = self.endpoints.native_base + TEXT_EMBEDDING_PATH
                body = native_text_body(
                    spec.name,
                    chunk,
                    dimension=dimension,
                    text_type=text_type,
                    output_type=output_type,
                    instruct=instruct,
                )
            content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            requests.append(Request(url, content, indices))
        expected = dimension or spec.default_dimension
        return Call(spec, protocol, output_type, expected, requests)

    def _parse(self, call: Call, request: Request, response: httpx.Response) -> BatchOutput:
        """Turn one answer into a batch output, or raise its typed error."""
        header_id = response.headers.get("x-request-id")
        payload = decode_json(response.content)
        if response.status_code >= 400 or body_error_code(payload) is not None:
            raise parse_error(
                response.status_code,
                payload,
                text=response.text,
                header_request_id=header_id,
                retry_after=parse_retry_after(response.headers),
            )
        count = len(request.indices)
        if call.protocol == "compatible":
            output = parse_compatible(
                payload, count, expected_dimension=call.expected_dimension, request_id=header_id
            )
        else:
            output = parse_native_text(
                payload,
                count,
                output_type=call.output_type,
                expected_dimension=call.expected_dimension,
                request_id=header_id,
            )
        self._usage.add(usage_for(call.spec, output.total_tokens, 1, self.endpoints.region))
        return output

    def _retry_wait(
        self, attempt: int, error: APIError, headers: typing.Mapping[str, str] | None
    ) -> float | None:
        """Seconds to wait before sending again, or ``None`` to raise ``error`` now."""
        if attempt >= self.max_retries:
            return None
        if isinstance(error, APIStatusError):
            if not should_retry(error, headers or {}):
                return None
            delay = retry_delay(attempt, error.retry_after)
        elif isinstance(error, APIConnectionError):
            delay = retry_delay(attempt)
        else:
            return None
        if delay is not None:
            logger.info(
                "retrying in %.2fs (attempt %d of %d) after %s",
                delay,
                attempt + 1,
                self.max_retries,
                error,
            )
        return delay

    def _finish(self, call: Call, outputs: Sequence[BatchOutput]) -> EmbeddingResult:
        dense: list[list[float]] | None = None
        sparse: list[SparseVector] | None = None
        if call.output_type != "sparse":
            dense = [vector for out in outputs for vector in (out.dense or ())]
        if call.output_type != "dense":
            sparse = [vector for out in outputs for vector in (out.sparse or ())]
        tokens = sum(out.total_tokens for out in outputs)
        return EmbeddingResult(
            model=call.spec.name,
            embeddings=dense,
            sparse_embeddings=sparse,
            usage=usage_for(call.spec, tokens, len(outputs), self.endpoints.region),
            request_ids=tuple(out.request_id or "" for out in outputs),
        )


def transport_error(exc: httpx.TransportError, url: str) -> APIConnectionError:
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"no answer in time from {url} ({type(exc).__name__})")
    return APIConnectionError(f"could not reach {url}: {type(exc).__name__}: {exc}")
