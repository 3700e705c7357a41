"""The settings both framework adapters share, as one pydantic model they inherit.

Each adapter adds only its framework's own names (``model`` / ``model_name``, the API key
field, the framework base class) and maps its hooks onto :class:`TextEmbedder`.
"""

from __future__ import annotations

import httpx
from pydantic import BaseModel, Field, PrivateAttr, SecretStr

from dashscope_embeddings._base import Protocol
from dashscope_embeddings._constants import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT_S,
)
from dashscope_embeddings._embedder import TextEmbedder
from dashscope_embeddings._types import TextType, Usage

__all__ = ["EmbeddingSettings"]


class EmbeddingSettings(BaseModel):
    """Options every adapter accepts on top of its framework's own."""

    dimension: int | None = Field(
        default=None,
        description="Output size (text-embedding-v3/v4); None for the model's default.",
    )
    instruct: str | None = Field(
        default=None, description="Task instruction sent with queries only (text-embedding-v4)."
    )
    region: str | None = Field(
        default=None,
        description="cn-beijing (default), ap-southeast-1 or cn-hongkong; keys are region-bound.",
    )
    base_url: str | None = Field(
        default=None,
        description="Explicit host or base URL, overriding region; else DASHSCOPE_BASE_URL / "
        "DASHSCOPE_HTTP_BASE_URL from the environment.",
    )
    workspace: str | None = Field(
        default=None, description="Workspace id sent as X-DashScope-WorkSpace."
    )
    protocol: Protocol = Field(
        default="native",
        description="native (text_type, instruct) or compatible (the OpenAI-compatible "
        "endpoint: dense only, queries and documents embedded alike).",
    )
    max_retries: int = Field(
        default=DEFAULT_MAX_RETRIES,
        ge=0,
        description="Retries per request on 429, 5xx and transport errors; never on 4xx.",
    )
    timeout: float | None = Field(
        default=DEFAULT_TIMEOUT_S, gt=0, description="Seconds per request; None waits forever."
    )
    max_concurrency: int = Field(
        default=DEFAULT_MAX_CONCURRENCY, ge=1, description="Requests in flight at once."
    )
    max_batch_size: int | None = Field(
        default=None,
        ge=1,
        description="Override of the registry's texts-per-request cap, for a model it lacks.",
    )

    _embedder: TextEmbedder = PrivateAttr()

    def _make_embedder(
        self,
        model: str,
        api_key: SecretStr | None,
        document_text_type: TextType | None,
        *,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._embedder = TextEmbedder(
            model,
            api_key=api_key,
            document_text_type=document_text_type,
            dimension=self.dimension,
            instruct=self.instruct,
            max_batch_size=self.max_batch_size,
            region=self.region,
            base_url=self.base_url,
            workspace=self.workspace,
            protocol=self.protocol,
            max_retries=self.max_retries,
            timeout=self.timeout,
            max_concurrency=self.max_concurrency,
            http_client=http_client,
            async_http_client=async_http_client,
        )

    @property
    def usage(self) -> Usage:
        """Tokens and estimated cost of every call so far (in this process)."""
        return self._embedder.usage

    def close(self) -> None:
        """Release the sync client's connections and threads (they reopen on next use)."""
        self._embedder.close()

    async def aclose(self) -> None:
        """Release the async client's connections for the running event loop."""
        await self._embedder.aclose()
