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

import difflib
import hashlib
import json
import threading
import typing
from collections.abc import Mapping, Sequence

import httpx
from pydantic import Field, PrivateAttr, SecretStr, model_validator

from dashscope_embeddings._client import AsyncDashScopeClient, DashScopeClient
from dashscope_embeddings._config import (
    check_transport_security,
    resolve_api_key,
    resolve_endpoints,
)
from dashscope_embeddings._errors import ConfigurationError, InvalidInputError
from dashscope_embeddings._inputs import Text
from dashscope_embeddings._memo import Half, HalvesMemo, Handoff, Settings
from dashscope_embeddings._options import ClientSettings
from dashscope_embeddings._registry import ModelSpec, get_model_spec, list_models
from dashscope_embeddings._types import EmbeddingResult, TextType, Usage
from dashscope_embeddings._usage import UsageTracker
from dashscope_embeddings.resources.multimodal import check_multimodal_options
from dashscope_embeddings.resources.text import check_options

__all__ = ["AdapterSettings"]

_CLIENT_FIELDS = tuple(ClientSettings.model_fields)
_HALVES_LOCK = threading.Lock()  # makes each object's HalvesMemo once


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

    # The other framework's (or the old integration's) spelling of an option -> ours.
    _ALIASES: typing.ClassVar[dict[str, str]] = {"dimensions": "dimension"}

    @model_validator(mode="before")
    @classmethod
    def _aliases_and_typos(cls, data: typing.Any) -> typing.Any:
        """Accept the other framework's spellings; name the likely option for a typo."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for alias, target in cls._ALIASES.items():
            if alias in data:
                if target in data and data[target] != data[alias]:
                    raise ValueError(
                        f"both {alias}= and {target}= were given; {alias} is another name for "
                        f"{target}: pass one"
                    )
                data[target] = data.pop(alias)
        known = set(cls.model_fields) | {
            f.alias for f in cls.model_fields.values() if f.alias is not None
        }
        for name in data:
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
                hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
                raise ValueError(f"{cls.__name__} has no option {name!r}{hint}")
        return data

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
        if self._spec().endpoint == "multimodal":
            return self._check_media()
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

    def _embed(
        self, texts: Sequence[str], *, query: bool, progress: bool = False
    ) -> list[list[float]]:
        if not texts:
            return []
        if self._spec().endpoint == "multimodal":
            return self._embed_media([Text(t) for t in texts], query=query)
        if self._paired():  # a sparse sibling shares one request per text (see below)
            return self._embed_half(texts, query=query, want="dense", progress=progress).dense()
        result: EmbeddingResult = self._sync_client().embed_texts(
            texts, on_error="raise", progress=progress or None, **self._call_kwargs(query)
        )
        self._runtime().usage.add(result.usage)
        return result.embeddings

    async def _aembed(
        self, texts: Sequence[str], *, query: bool, progress: bool = False
    ) -> list[list[float]]:
        if not texts:
            return []
        if self._spec().endpoint == "multimodal":
            return await self._aembed_media([Text(t) for t in texts], query=query)
        if self._paired():  # a sparse sibling shares one request per text (see below)
            handoff = await self._aembed_half(texts, query=query, want="dense", progress=progress)
            return handoff.dense()
        client = self._async_client()
        result = await client.embed_texts(
            texts, on_error="raise", progress=progress or None, **self._call_kwargs(query)
        )
        self._runtime().usage.add(result.usage)
        return result.embeddings

    # --- public -----------------------------------------------------------------------------

    @property
    def cache_namespace(self) -> str:
        """A namespace for caches of this object's vectors.

        It names everything a vector depends on — model, dimension, protocol, the
        ``text_type`` of documents and of queries, and a hash of ``instruct`` — so a cache keyed
        on it never serves a vector made with other settings. Keep documents and queries in two
        stores (their vectors differ), e.g. with LangChain's ``CacheBackedEmbeddings``::

            CacheBackedEmbeddings.from_bytes_store(
                emb, doc_store, namespace=emb.cache_namespace, query_embedding_cache=query_store
            )
        """
        spec = self._spec()
        doc_type, query_type = self._sides()
        instruct = self.instruct or ""
        digest = hashlib.sha256(instruct.encode()).hexdigest()[:12] if instruct else "-"
        dimension = self.dimension or spec.default_dimension or "default"
        return (
            f"dashscope:{spec.name}:{dimension}:{self.protocol}:"
            f"doc={doc_type or 'default'}:query={query_type or 'default'}:instruct={digest}:"
        )

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

    # --- sparse siblings (issue 10): one dense&sparse request feeds both halves ---------------
    # A sparse object made by ``from_dense`` shares this object's settings, clients, usage and
    # a HalvesMemo (_memo.py). Once it exists, a dense call asks for dense&sparse and leaves the
    # sparse half there for the sibling, and the sibling does the reverse, so a hybrid store
    # pays once per text whichever half it asks for first.

    _halves_memo: HalvesMemo | None = PrivateAttr(default=None)

    def _share_halves(self) -> HalvesMemo:
        """The memo shared with sparse siblings, made by the first ``from_dense``."""
        self._check_sparse()
        with _HALVES_LOCK:
            if self._halves_memo is None:
                self._halves_memo = HalvesMemo()
            return self._halves_memo

    def _check_sparse(self) -> None:
        """Refuse, before sending, a model or protocol without sparse output."""
        spec = self._spec()
        if spec.endpoint != "text" or not spec.supports_sparse:
            models = ", ".join(s.name for s in list_models("text") if s.supports_sparse)
            raise InvalidInputError(f"{spec.name} has no sparse output; models with it: {models}")
        doc_type, query_type = self._sides()
        for text_type, instruct in ((doc_type, None), (query_type, self.instruct)):
            check_options(
                spec,
                dimension=self.dimension,
                text_type=text_type,
                output_type="sparse",
                instruct=instruct,
                protocol=self.protocol,
            )

    def _paired(self) -> bool:
        """Whether dense calls feed a sparse sibling (one exists, and the model has sparse)."""
        if self._halves_memo is None or self.protocol != "native":
            return False
        spec = self._spec()
        return spec.endpoint == "text" and spec.supports_sparse

    def _halves_settings(self, kwargs: Mapping[str, typing.Any]) -> Settings:
        extra = kwargs["extra_body"]
        return (
            kwargs["model"].name,
            kwargs["dimension"],
            kwargs["text_type"],
            kwargs["instruct"],
            json.dumps(extra, sort_keys=True, default=repr) if extra else None,
        )

    def _start_half(
        self, texts: Sequence[str], query: bool, want: Half
    ) -> tuple[Handoff, dict[str, typing.Any]]:
        if want == "sparse":
            self._check_sparse()
        kwargs = self._call_kwargs(query)
        memo = self._halves_memo if self._paired() else None
        return Handoff(memo, want, self._halves_settings(kwargs), texts), kwargs

    def _embed_half(
        self, texts: Sequence[str], *, query: bool, want: Half, progress: bool = False
    ) -> Handoff:
        """One half of ``texts``: what the memo holds, the rest fetched (both halves if paired)."""
        handoff, kwargs = self._start_half(texts, query, want)
        if handoff.missing:
            result: EmbeddingResult = self._sync_client().embed_texts(
                handoff.missing,
                on_error="raise",
                progress=progress or None,
                output_type=handoff.output_type,
                **kwargs,
            )
            self._runtime().usage.add(result.usage)
            handoff.fill(result)
        return handoff

    async def _aembed_half(
        self, texts: Sequence[str], *, query: bool, want: Half, progress: bool = False
    ) -> Handoff:
        """Async :meth:`_embed_half`."""
        handoff, kwargs = self._start_half(texts, query, want)
        if handoff.missing:
            client = self._async_client()
            result = await client.embed_texts(
                handoff.missing,
                on_error="raise",
                progress=progress or None,
                output_type=handoff.output_type,
                **kwargs,
            )
            self._runtime().usage.add(result.usage)
            handoff.fill(result)
        return handoff

    # --- multimodal models (issue 11): text, images and video in one vector space ------------
    # With a model of the multimodal endpoint, _embed / _aembed send texts there too, so text
    # and image vectors can be compared. Image and video methods of the adapters come here.

    def _check_media(self) -> None:
        """Construction checks for a multimodal model (the text endpoint's do not apply)."""
        spec = self._spec()
        if self.protocol != "native":
            raise ConfigurationError(
                f"{spec.name} is a multimodal model, served only on the native endpoint; "
                "leave protocol='native'"
            )
        check_multimodal_options(spec, dimension=self.dimension, fps=None, instruct=self.instruct)
        resolve_api_key(self._secret())
        check_transport_security(
            resolve_endpoints(region=self.region, base_url=self.base_url, workspace=self.workspace),
            allow_insecure_http=self.allow_insecure_http,
        )

    def _require_media(self, what: str) -> None:
        spec = self._spec()
        if spec.endpoint != "multimodal":
            models = ", ".join(s.name for s in list_models("multimodal"))
            raise InvalidInputError(
                f"{what} need a multimodal model, and {spec.name} is a {spec.endpoint} model; "
                f"use one of: {models}"
            )

    def _media_kwargs(self, query: bool, fps: float | None) -> dict[str, typing.Any]:
        return {
            "model": self._spec(),
            "dimension": self.dimension,
            "fps": fps,
            "instruct": self.instruct if query else None,
            "extra_body": self._extra_body(),
        }

    def _embed_media(
        self,
        inputs: Sequence[object],
        *,
        query: bool = False,
        what: str = "images",
        fps: float | None = None,
    ) -> list[list[float]]:
        """Embed multimodal inputs (``Image``, ``Video``, ``Text``...) with the current model."""
        self._require_media(what)
        if not inputs:
            return []
        result = self._sync_client().embed_multimodal(
            inputs, on_error="raise", **self._media_kwargs(query, fps)
        )
        self._runtime().usage.add(result.usage)
        return result.embeddings

    async def _aembed_media(
        self,
        inputs: Sequence[object],
        *,
        query: bool = False,
        what: str = "images",
        fps: float | None = None,
    ) -> list[list[float]]:
        """Async :meth:`_embed_media`."""
        self._require_media(what)
        if not inputs:
            return []
        client = self._async_client()
        result = await client.embed_multimodal(
            inputs, on_error="raise", **self._media_kwargs(query, fps)
        )
        self._runtime().usage.add(result.usage)
        return result.embeddings
