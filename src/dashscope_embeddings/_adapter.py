"""What both framework adapters share: their options, and the calls into the core clients.

:class:`AdapterSettings` is a pydantic model each adapter inherits next to its framework's base
class. Its fields are the core client's (:class:`~dashscope_embeddings.ClientSettings`) plus the
embedding options (``dimension``, ``instruct``, ...). Settings hold at call time: every call
reads the adapter's current fields, so ``emb.dimension = 256`` or
``emb.model_copy(update={"model": ...})`` take effect at the next call. Connections are kept
between calls and rebuilt only when a setting that shapes them (key, host, timeout, retries,
concurrency, an injected client) changed. The running usage total belongs to the adapter
object: it survives ``close()`` and client rebuilds; a copy starts its own.

Each adapter supplies its framework's names: the model field, the key field, the document
``text_type`` and the name of its extra-parameters field.
"""

from __future__ import annotations

import hashlib
import threading
import typing
from collections.abc import Mapping, Sequence

import httpx
from pydantic import Field, PrivateAttr, SecretStr

from dashscope_embeddings._client import AsyncDashScopeClient, DashScopeClient
from dashscope_embeddings._config import (
    check_transport_security,
    resolve_api_key,
    resolve_endpoints,
)
from dashscope_embeddings._errors import ConfigurationError
from dashscope_embeddings._options import ClientSettings
from dashscope_embeddings._registry import ModelSpec, get_model_spec
from dashscope_embeddings._types import EmbeddingResult, TextType, Usage
from dashscope_embeddings._usage import UsageTracker
from dashscope_embeddings.resources.text import check_options

__all__ = ["AdapterSettings"]

_CLIENT_FIELDS = tuple(ClientSettings.model_fields)


class _Runtime:
    """An adapter object's clients and usage total; never shared between two adapters."""

    def __init__(self, owner: int) -> None:
        self.owner = owner
        self.usage = UsageTracker()
        self.lock = threading.Lock()
        self.client: DashScopeClient | None = None
        self.client_key: tuple[typing.Any, ...] | None = None
        self.aclient: AsyncDashScopeClient | None = None
        self.aclient_key: tuple[typing.Any, ...] | None = None

    def __getstate__(self) -> dict[str, typing.Any]:
        # Clients hold sockets and threads: a pickled adapter builds its own on first use.
        return {"owner": self.owner, "usage": self.usage.total}

    def __setstate__(self, state: dict[str, typing.Any]) -> None:
        self.__init__(state["owner"])  # type: ignore[misc]
        self.usage.add(state["usage"])


class AdapterSettings(ClientSettings):
    """Options every adapter accepts on top of its framework's own (and the client's)."""

    dimension: int | None = Field(
        default=None,
        description="Output size (text-embedding-v3/v4); `None` for the model's default.",
    )
    instruct: str | None = Field(
        default=None,
        description="Task instruction sent with queries only (text-embedding-v4).",
    )
    max_batch_size: int | None = Field(
        default=None,
        ge=1,
        description="Override of the registry's texts-per-request cap, for a model it lacks.",
    )
    http_client: httpx.Client | None = Field(
        default=None,
        exclude=True,
        description="Your own `httpx.Client` (proxies, custom TLS); never closed by us.",
    )
    http_async_client: httpx.AsyncClient | None = Field(
        default=None,
        exclude=True,
        description="Your own `httpx.AsyncClient`; never closed by us.",
    )

    _runtime_state: _Runtime | None = PrivateAttr(default=None)

    # --- what each adapter supplies --------------------------------------------------------

    def _model(self) -> str:
        raise NotImplementedError

    def _secret(self) -> SecretStr | None:
        raise NotImplementedError

    def _document_text_type(self) -> TextType | None:
        return "document"

    def _extra_parameters(self) -> Mapping[str, typing.Any] | None:
        return None

    # --- settings read at call time ---------------------------------------------------------

    def _spec(self) -> ModelSpec:
        overrides = {"max_batch_size": self.max_batch_size} if self.max_batch_size else {}
        return get_model_spec(self._model(), **overrides)

    def _sides(self) -> tuple[TextType | None, TextType | None]:
        """``text_type`` of documents and of queries under the current protocol."""
        if self.protocol == "compatible":
            return None, None
        return self._document_text_type(), "query"

    def _check(self) -> None:
        """Refuse bad settings now rather than at the first call (used at construction)."""
        spec = self._spec()
        doc_type, query_type = self._sides()
        if self.protocol == "compatible" and self._document_text_type() not in (None, "document"):
            raise ConfigurationError(
                f"text_type={self._document_text_type()!r} needs the native endpoint; the "
                "OpenAI-compatible one embeds everything as documents"
            )
        for text_type, instruct in ((doc_type, None), (query_type, self.instruct)):
            check_options(
                spec,
                dimension=self.dimension,
                text_type=text_type,
                output_type="dense",
                instruct=instruct,
                protocol=self.protocol,
            )
        resolve_api_key(self._secret())
        check_transport_security(
            resolve_endpoints(region=self.region, base_url=self.base_url, workspace=self.workspace),
            allow_insecure_http=self.allow_insecure_http,
        )

    def _extra_body(self) -> dict[str, typing.Any] | None:
        extra = self._extra_parameters()
        if not extra:
            return None
        return {"parameters": dict(extra)} if self.protocol == "native" else dict(extra)

    def _runtime(self) -> _Runtime:
        runtime = self._runtime_state
        if runtime is None or runtime.owner != id(self):  # new, or a copy of another adapter
            runtime = _Runtime(id(self))
            self._runtime_state = runtime
        return runtime

    def _client_key(self, http: object) -> tuple[typing.Any, ...]:
        secret = self._secret()
        digest = (
            hashlib.sha256(secret.get_secret_value().encode()).hexdigest() if secret else None
        )
        values = tuple(
            id(getattr(self, name)) if name == "token_counter" else getattr(self, name)
            for name in _CLIENT_FIELDS
        )
        return (digest, id(http), values, "timeout" in self.model_fields_set)

    def _client_kwargs(self) -> dict[str, typing.Any]:
        return {
            name: getattr(self, name)
            for name in _CLIENT_FIELDS
            if name != "timeout" or "timeout" in self.model_fields_set or not self._injected()
        }

    def _injected(self) -> bool:
        return self.http_client is not None or self.http_async_client is not None

    def _sync_client(self) -> DashScopeClient:
        runtime = self._runtime()
        key = self._client_key(self.http_client)
        with runtime.lock:
            if runtime.client is None or runtime.client_key != key:
                old, runtime.client = runtime.client, None
                if old is not None:
                    old.close()
                runtime.client = DashScopeClient(
                    self._secret(), http_client=self.http_client, **self._client_kwargs()
                )
                runtime.client_key = key
            return runtime.client

    def _async_client(self) -> AsyncDashScopeClient:
        runtime = self._runtime()
        key = self._client_key(self.http_async_client)
        with runtime.lock:
            if runtime.aclient is None or runtime.aclient_key != key:
                runtime.aclient = AsyncDashScopeClient(
                    self._secret(), http_client=self.http_async_client, **self._client_kwargs()
                )
                runtime.aclient_key = key
            return runtime.aclient

    def _call_kwargs(self, query: bool) -> dict[str, typing.Any]:
        doc_type, query_type = self._sides()
        return {
            "model": self._spec(),
            "dimension": self.dimension,
            "text_type": query_type if query else doc_type,
            "instruct": self.instruct if query else None,
            "extra_body": self._extra_body(),
        }

    # --- calls ------------------------------------------------------------------------------

    def _embed(self, texts: Sequence[str], *, query: bool) -> list[list[float]]:
        if not texts:
            return []
        result: EmbeddingResult = self._sync_client().embed_texts(
            texts, on_error="raise", **self._call_kwargs(query)
        )
        self._runtime().usage.add(result.usage)
        return result.embeddings

    async def _aembed(self, texts: Sequence[str], *, query: bool) -> list[list[float]]:
        if not texts:
            return []
        client = self._async_client()
        result = await client.embed_texts(texts, on_error="raise", **self._call_kwargs(query))
        self._runtime().usage.add(result.usage)
        return result.embeddings

    # --- public -----------------------------------------------------------------------------

    @property
    def usage(self) -> Usage:
        """Tokens and estimated cost of every call this object made, kept across ``close()``.

        Counted in this process (a pickled copy in a worker counts its own).
        """
        return self._runtime().usage.total

    def close(self) -> None:
        """Release the sync client's connections and threads (they reopen on next use)."""
        runtime = self._runtime()
        with runtime.lock:
            client, runtime.client, runtime.client_key = runtime.client, None, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Release the async client's connections for the running loop (reopen on next use)."""
        runtime = self._runtime()
        with runtime.lock:
            client, runtime.aclient, runtime.aclient_key = runtime.aclient, None, None
        if client is not None:
            await client.aclose()
