"""LangChain embeddings for DashScope: a drop-in for ``langchain_community``'s class.

Setup:
    .. code-block:: bash

        pip install "dashscope-embeddings[langchain]"
        export DASHSCOPE_API_KEY="sk-..."

Migrating: replace ``from langchain_community.embeddings import DashScopeEmbeddings`` with
``from dashscope_embeddings.langchain import DashScopeEmbeddings``; the arguments ``model``,
``dashscope_api_key`` and ``max_retries`` mean what they meant.
"""

from __future__ import annotations

import typing

try:
    from langchain_core.embeddings import Embeddings
    from langchain_core.utils import secret_from_env
except ImportError as exc:  # pragma: no cover - exercised in a venv without the extra
    raise ImportError(
        "dashscope_embeddings.langchain needs langchain-core: "
        'pip install "dashscope-embeddings[langchain]"'
    ) from exc

from pydantic import ConfigDict, Field, SecretStr, model_validator

from dashscope_embeddings._settings import EmbeddingSettings

__all__ = ["DashScopeEmbeddings"]


class DashScopeEmbeddings(EmbeddingSettings, Embeddings):
    """DashScope (Alibaba Cloud Model Studio) text embedding models for LangChain.

    Documents are sent with ``text_type="document"``, queries with ``text_type="query"``
    (plus ``instruct`` when set). Inputs are split by the model's real per-request limit,
    sent several at a time, retried on 429/5xx, and returned in input order.

    Instantiate:
        .. code-block:: python

            from dashscope_embeddings.langchain import DashScopeEmbeddings

            embeddings = DashScopeEmbeddings(model="text-embedding-v4", dimension=1024)

    Embed:
        .. code-block:: python

            vectors = embeddings.embed_documents(["Returns are free.", "Shipping is fast."])
            query = embeddings.embed_query("How do I return an item?")

    Async:
        .. code-block:: python

            vectors = await embeddings.aembed_documents(["Returns are free."])
            query = await embeddings.aembed_query("How do I return an item?")

    Cost:
        ``embeddings.usage`` holds the tokens and estimated price of all calls so far.

    Other options (shared with the LlamaIndex adapter): ``dimension``, ``instruct``,
    ``region``, ``base_url``, ``workspace``, ``protocol``, ``timeout``, ``max_concurrency``,
    ``max_batch_size``.
    """

    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, protected_namespaces=(), arbitrary_types_allowed=True
    )

    model: str = "text-embedding-v1"
    """Model name. The default matches ``langchain_community``; ``text-embedding-v4`` is the
    newest (sparse, instruct, dimensions 64-2048)."""
    dashscope_api_key: SecretStr | None = Field(
        alias="api_key", default_factory=secret_from_env("DASHSCOPE_API_KEY", default=None)
    )
    """API key. Resolution order:

    1. ``api_key`` / ``dashscope_api_key`` argument;
    2. the ``DASHSCOPE_API_KEY`` environment variable."""
    max_retries: int = Field(default=5, ge=0)
    """Retries per request on 429, 5xx and transport errors (never on 4xx input errors); 5 as
    in ``langchain_community``."""
    http_client: typing.Any = Field(default=None, exclude=True)
    """Your own ``httpx.Client`` (proxies, custom TLS); never closed by this class."""
    http_async_client: typing.Any = Field(default=None, exclude=True)
    """Your own ``httpx.AsyncClient``; never closed by this class."""

    @model_validator(mode="after")
    def _build(self) -> DashScopeEmbeddings:
        self._make_embedder(
            self.model,
            self.dashscope_api_key,
            "document",
            http_client=self.http_client,
            async_http_client=self.http_async_client,
        )
        return self

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents for storage; one vector per text, in input order."""
        return self._embedder.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query."""
        return self._embedder.embed_query(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents for storage, asynchronously."""
        return await self._embedder.aembed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        """Embed a search query, asynchronously."""
        return await self._embedder.aembed_query(text)
