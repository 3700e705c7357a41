"""One model's settings over both core clients: what the framework adapters wrap.

A :class:`TextEmbedder` validates its settings once, creates its clients lazily (so it can be
pickled and sent to worker processes), and answers the four calls every framework needs:
documents and queries, sync and async.
"""

from __future__ import annotations

import threading
import typing
from collections.abc import Sequence

import httpx
from pydantic import SecretStr

from dashscope_embeddings._base import ClientOptions, Protocol
from dashscope_embeddings._batching import check_options
from dashscope_embeddings._client import AsyncDashScopeClient, DashScopeClient
from dashscope_embeddings._config import resolve_api_key, resolve_endpoints
from dashscope_embeddings._constants import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT_S,
)
from dashscope_embeddings._errors import InvalidInputError, ResponseValidationError
from dashscope_embeddings._registry import ModelSpec, get_model_spec
from dashscope_embeddings._types import EmbeddingResult, TextType, Usage

__all__ = ["TextEmbedder"]


def _dense(result: EmbeddingResult) -> list[list[float]]:
    if result.embeddings is None:  # pragma: no cover - dense is always asked for here
        raise ResponseValidationError("no dense embeddings in the result")
    return result.embeddings


class TextEmbedder:
    """Dense text embeddings of one model, for documents and queries, sync and async.

    Args:
        model: Model name or spec.
        api_key: Key, or ``None`` for ``DASHSCOPE_API_KEY`` (checked now, read again lazily).
        document_text_type: ``text_type`` sent with documents (``None`` sends none).
        dimension: Output size, checked against the registry now.
        instruct: Instruction sent with queries (text-embedding-v4).
        max_batch_size: Override of the registry's inputs-per-request cap.
        http_client: An ``httpx.Client`` for the sync client (not pickled, not closed).
        async_http_client: An ``httpx.AsyncClient`` for the async one (same).
        **client_kwargs: ``region``, ``base_url``, ``workspace``, ``protocol``,
            ``max_retries``, ``timeout``, ``max_concurrency``.
    """

    def __init__(
        self,
        model: str | ModelSpec,
        *,
        api_key: str | SecretStr | None = None,
        document_text_type: TextType | None = "document",
        dimension: int | None = None,
        instruct: str | None = None,
        max_batch_size: int | None = None,
        region: str | None = None,
        base_url: str | None = None,
        workspace: str | None = None,
        protocol: Protocol = "native",
        max_retries: int = DEFAULT_MAX_RETRIES,
        timeout: float | None = DEFAULT_TIMEOUT_S,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
    ) -> None:
        overrides = {"max_batch_size": max_batch_size} if max_batch_size is not None else {}
        self.spec = get_model_spec(model, **overrides)
        compatible = protocol == "compatible"
        if compatible:
            # The OpenAI-compatible endpoint has no text_type: everything is embedded as the
            # service's default, "document". Asking for anything else there is an error.
            if document_text_type not in (None, "document"):
                raise InvalidInputError(
                    f"text_type={document_text_type!r} needs the native endpoint; the "
                    "OpenAI-compatible one embeds everything as documents"
                )
            document_text_type = None
        query_text_type: TextType | None = None if compatible else "query"
        sides: tuple[tuple[TextType | None, str | None], ...] = (
            (document_text_type, None),
            (query_text_type, instruct),
        )
        for text_type, instruction in sides:
            check_options(
                self.spec,
                dimension=dimension,
                text_type=text_type,
                output_type="dense",
                instruct=instruction,
                compatible=compatible,
            )
        self._api_key: SecretStr | None = resolve_api_key(api_key) if api_key is not None else None
        if self._api_key is None:
            resolve_api_key(None)  # fail now, not at the first call, when the env has no key
        self.document_text_type = document_text_type
        self.query_text_type = query_text_type
        self.dimension = dimension
        self.instruct = instruct
        resolve_endpoints(region=region, base_url=base_url, workspace=workspace)  # fail now
        self._client_options = ClientOptions(
            region=region,
            base_url=base_url,
            workspace=workspace,
            protocol=protocol,
            max_retries=max_retries,
            timeout=timeout,
            max_concurrency=max_concurrency,
        )
        self._http_client = http_client
        self._async_http_client = async_http_client
        self._client: DashScopeClient | None = None
        self._aclient: AsyncDashScopeClient | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TextEmbedder(model={self.spec.name!r}, dimension={self.dimension!r})"

    def __getstate__(self) -> dict[str, typing.Any]:
        state = self.__dict__.copy()
        for name in ("_client", "_aclient", "_http_client", "_async_http_client", "_lock"):
            state[name] = None
        return state

    def __setstate__(self, state: dict[str, typing.Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def client(self) -> DashScopeClient:
        """The sync core client, created on first use."""
        with self._lock:
            if self._client is None:
                self._client = DashScopeClient(
                    self._api_key, http_client=self._http_client, **self._client_options
                )
            return self._client

    @property
    def aclient(self) -> AsyncDashScopeClient:
        """The async core client, created on first use."""
        with self._lock:
            if self._aclient is None:
                self._aclient = AsyncDashScopeClient(
                    self._api_key, http_client=self._async_http_client, **self._client_options
                )
            return self._aclient

    @property
    def usage(self) -> Usage:
        """Tokens and estimated cost of everything embedded so far, sync and async."""
        total = Usage()
        for client in (self._client, self._aclient):
            if client is not None:
                total = total + client.usage
        return total

    def _doc_options(self) -> dict[str, typing.Any]:
        return {
            "model": self.spec,
            "dimension": self.dimension,
            "text_type": self.document_text_type,
        }

    def _query_options(self) -> dict[str, typing.Any]:
        return {
            "model": self.spec,
            "dimension": self.dimension,
            "text_type": self.query_text_type,
            "instruct": self.instruct,
        }

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed stored chunks (``text_type`` document); one vector per text, in order."""
        if not texts:
            return []
        return _dense(self.client.embed_texts(texts, **self._doc_options()))

    def embed_query(self, text: str) -> list[float]:
        """Embed a question (``text_type`` query, with ``instruct`` when set)."""
        return _dense(self.client.embed_texts([text], **self._query_options()))[0]

    async def aembed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Async :meth:`embed_documents`."""
        if not texts:
            return []
        return _dense(await self.aclient.embed_texts(texts, **self._doc_options()))

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query`."""
        return _dense(await self.aclient.embed_texts([text], **self._query_options()))[0]

    def close(self) -> None:
        """Close the sync client's connections and threads."""
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        """Close the async client's connection pool for the running loop."""
        if self._aclient is not None:
            await self._aclient.aclose()
