"""The engine behind a framework adapter: its clients, its usage total and its calls.

An adapter's pydantic model holds settings only (:mod:`dashscope_embeddings._adapter`); each
call takes a :class:`CallSettings` snapshot of them and runs here, on an
:class:`AdapterRuntime` the adapter keeps in a private attribute.

Clients are leased, not shared blindly: a call holds the client it started on until it ends.
When a setting that shapes the client changes, the next call gets a new client and the old one
is closed once its last call has ended, so a call in flight never loses its connections.

The usage total grows as answers arrive: it adds the running totals of the clients this
runtime made (each client counts every billed answer it reads, whatever becomes of the call)
to what retired clients had counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import threading
import typing
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence

from dashscope_embeddings._inputs import Text
from dashscope_embeddings._memo import Half, HalvesMemo, Handoff, Settings
from dashscope_embeddings._types import Usage

# The clients (and with them httpx and the transport) load when the first one is made.
if typing.TYPE_CHECKING:
    import httpx
    from pydantic import SecretStr

    from dashscope_embeddings._client import AsyncDashScopeClient, DashScopeClient
    from dashscope_embeddings._registry import ModelSpec
    from dashscope_embeddings._types import EmbeddingResult, TextType
    from dashscope_embeddings.resources._text_input import LongText

__all__ = ["AdapterRuntime", "CallSettings"]

logger = logging.getLogger("dashscope_embeddings.adapters")

# Sync methods whose async twin is not named "a" + their name (None: no twin).
_ASYNC_TWINS: dict[str, str | None] = {
    "encode_documents": "async_encode_documents",
    "encode_queries": "async_encode_queries",
    "sparse_doc_fn": None,
    "sparse_query_fn": None,
}

_Client = typing.TypeVar("_Client", bound="DashScopeClient | AsyncDashScopeClient")


@dataclasses.dataclass(frozen=True)
class CallSettings:
    """What one call needs from an adapter's settings, read when the call starts."""

    owner: str  # the adapter's class name, for messages
    spec: ModelSpec
    api_key: SecretStr
    client_key: tuple[typing.Any, ...]  # equal keys: the same client serves
    client_options: Mapping[str, typing.Any]
    http_client: httpx.Client | None
    http_async_client: httpx.AsyncClient | None
    dimension: int | None
    instruct: str | None
    document_type: TextType | None
    query_type: TextType | None
    extra_body: Mapping[str, typing.Any] | None
    long_text: LongText
    memo: HalvesMemo | None  # set when dense calls feed a sparse sibling

    def text_kwargs(self, query: bool) -> dict[str, typing.Any]:
        """Keyword arguments of ``embed_texts`` for documents or queries."""
        return {
            "model": self.spec,
            "dimension": self.dimension,
            "text_type": self.query_type if query else self.document_type,
            "instruct": self.instruct if query else None,
            "extra_body": self.extra_body,
            "long_text": self.long_text,
        }

    def media_kwargs(self, query: bool, fps: float | None) -> dict[str, typing.Any]:
        """Keyword arguments of ``embed_multimodal``."""
        return {
            "model": self.spec,
            "dimension": self.dimension,
            "fps": fps,
            "instruct": self.instruct if query else None,
            "extra_body": self.extra_body,
        }

    def halves_settings(self, query: bool) -> Settings:
        """What a vector in the sparse/dense hand-off memo depends on."""
        extra = self.extra_body
        return (
            self.spec.name,
            self.dimension,
            self.query_type if query else self.document_type,
            self.instruct if query else None,
            json.dumps(extra, sort_keys=True, default=repr) if extra else None,
            self.long_text,
        )


class _Lease(typing.Generic[_Client]):
    """One client and the number of calls running on it."""

    def __init__(self, key: tuple[typing.Any, ...], client: _Client) -> None:
        self.key = key
        self.client: _Client = client
        self.calls = 0
        self.retired = False


class AdapterRuntime:
    """An adapter object's clients, usage total and calls; never shared by two adapters.

    Pickles as its usage total alone: clients hold sockets and threads, and a pickled adapter
    builds its own on first use.
    """

    def __init__(self, owner: int | None, usage: Usage | None = None) -> None:
        self.owner = owner  # id() of the adapter object; a copy of it makes its own runtime
        self._lock = threading.Lock()
        self._banked = usage or Usage()  # what clients no longer held had counted
        self._live: list[_Lease[typing.Any]] = []
        self._sync: _Lease[DashScopeClient] | None = None
        self._async: _Lease[AsyncDashScopeClient] | None = None
        self._warned_blocking = False

    def __getstate__(self) -> dict[str, typing.Any]:
        return {"usage": self.usage}

    def __setstate__(self, state: dict[str, typing.Any]) -> None:
        self.__init__(None, state["usage"])  # type: ignore[misc]

    # --- usage ----------------------------------------------------------------------------

    @property
    def usage(self) -> Usage:
        """Every billed answer read so far by this runtime's clients, retired ones included."""
        with self._lock:
            total = self._banked
            for lease in self._live:
                total = total + lease.client.usage
            return total

    # --- leases -----------------------------------------------------------------------------

    def _release(self, lease: _Lease[_Client]) -> _Client | None:
        """Under the lock: the client to close if ``lease`` is retired and idle."""
        if not lease.retired or lease.calls or lease not in self._live:
            return None
        self._live.remove(lease)
        self._banked = self._banked + lease.client.usage
        return lease.client

    def _take(
        self,
        current: _Lease[_Client] | None,
        key: tuple[typing.Any, ...],
        build: Callable[[], _Client],
    ) -> tuple[_Lease[_Client], _Client | None]:
        """Under the lock: the lease for ``key`` (new if the settings changed), counted."""
        stale = None
        if current is None or current.key != key:
            fresh = _Lease(key, build())
            self._live.append(fresh)
            if current is not None:
                current.retired = True
                stale = self._release(current)
            current = fresh
        current.calls += 1
        return current, stale

    @contextlib.contextmanager
    def sync_client(self, call: CallSettings) -> Iterator[DashScopeClient]:
        """The sync client for ``call``, held until the block ends."""

        def build() -> DashScopeClient:
            from dashscope_embeddings._client import DashScopeClient

            return DashScopeClient(
                call.api_key, http_client=call.http_client, **call.client_options
            )

        with self._lock:
            lease, stale = self._take(self._sync, call.client_key, build)
            self._sync = lease
        if stale is not None:
            stale.close()
        try:
            yield lease.client
        finally:
            with self._lock:
                lease.calls -= 1
                stale = self._release(lease)
            if stale is not None:
                stale.close()

    @contextlib.asynccontextmanager
    async def async_client(self, call: CallSettings) -> AsyncIterator[AsyncDashScopeClient]:
        """The async client for ``call``, held until the block ends."""

        def build() -> AsyncDashScopeClient:
            from dashscope_embeddings._client import AsyncDashScopeClient

            return AsyncDashScopeClient(
                call.api_key, http_client=call.http_async_client, **call.client_options
            )

        with self._lock:
            lease, stale = self._take(self._async, call.client_key, build)
            self._async = lease
        if stale is not None:
            await stale.aclose()
        try:
            yield lease.client
        finally:
            with self._lock:
                lease.calls -= 1
                stale = self._release(lease)
            if stale is not None:
                await stale.aclose()

    def close(self) -> None:
        """Retire the sync client: closed now, or when its last call ends."""
        with self._lock:
            lease, self._sync = self._sync, None
            if lease is not None:
                lease.retired = True
            stale = self._release(lease) if lease is not None else None
        if stale is not None:
            stale.close()

    async def aclose(self) -> None:
        """Retire the async client: closed now, or when its last call ends."""
        with self._lock:
            lease, self._async = self._async, None
            if lease is not None:
                lease.retired = True
            stale = self._release(lease) if lease is not None else None
        if stale is not None:
            await stale.aclose()

    # --- calls ------------------------------------------------------------------------------

    def check_blocking(self, call: CallSettings, method: str) -> None:
        """Warn once if a sync ``method`` runs on a thread with a running event loop."""
        if self._warned_blocking:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self._warned_blocking = True
        twin = _ASYNC_TWINS.get(method, f"a{method}")
        instead = f"await {call.owner}.{twin}" if twin else f"use {call.owner}'s async methods"
        logger.warning(
            "%s.%s was called inside a running event loop: it blocks the loop until every "
            "request is answered; %s instead",
            call.owner,
            method,
            instead,
        )

    def embed(
        self,
        call: CallSettings,
        texts: Sequence[str],
        *,
        query: bool,
        method: str,
        progress: bool = False,
    ) -> list[list[float]]:
        """Dense vectors of ``texts`` (documents or queries), in input order."""
        self.check_blocking(call, method)
        if not texts:
            return []
        if call.spec.endpoint == "multimodal":
            return self._media(call, [Text(t) for t in texts], query=query, fps=None)
        if call.memo is not None:
            return self.embed_half(
                call, texts, query=query, want="dense", progress=progress
            ).dense()
        with self.sync_client(call) as client:
            result: EmbeddingResult = client.embed_texts(
                texts, on_error="raise", progress=progress or None, **call.text_kwargs(query)
            )
        return result.embeddings

    async def aembed(
        self, call: CallSettings, texts: Sequence[str], *, query: bool, progress: bool = False
    ) -> list[list[float]]:
        """Async :meth:`embed`."""
        if not texts:
            return []
        if call.spec.endpoint == "multimodal":
            return await self._amedia(call, [Text(t) for t in texts], query=query, fps=None)
        if call.memo is not None:
            handoff = await self.aembed_half(
                call, texts, query=query, want="dense", progress=progress
            )
            return handoff.dense()
        async with self.async_client(call) as client:
            result = await client.embed_texts(
                texts, on_error="raise", progress=progress or None, **call.text_kwargs(query)
            )
        return result.embeddings

    # A sparse sibling (``from_dense``) shares its dense object's memo: once it exists, a dense
    # call asks for dense&sparse and leaves the sparse half there for the sibling, and the
    # sibling does the reverse, so a hybrid store pays once per text whichever half comes first.

    def embed_half(
        self,
        call: CallSettings,
        texts: Sequence[str],
        *,
        query: bool,
        want: Half,
        progress: bool = False,
        method: str | None = None,
    ) -> Handoff:
        """One half of ``texts``: what the memo holds, the rest fetched (both halves if paired)."""
        if method is not None:
            self.check_blocking(call, method)
        handoff = Handoff(call.memo, want, call.halves_settings(query), texts)
        if handoff.missing:
            with self.sync_client(call) as client:
                result: EmbeddingResult = client.embed_texts(
                    handoff.missing,
                    on_error="raise",
                    progress=progress or None,
                    output_type=handoff.output_type,
                    **call.text_kwargs(query),
                )
            handoff.fill(result)
        return handoff

    async def aembed_half(
        self,
        call: CallSettings,
        texts: Sequence[str],
        *,
        query: bool,
        want: Half,
        progress: bool = False,
    ) -> Handoff:
        """Async :meth:`embed_half`."""
        handoff = Handoff(call.memo, want, call.halves_settings(query), texts)
        if handoff.missing:
            async with self.async_client(call) as client:
                result = await client.embed_texts(
                    handoff.missing,
                    on_error="raise",
                    progress=progress or None,
                    output_type=handoff.output_type,
                    **call.text_kwargs(query),
                )
            handoff.fill(result)
        return handoff

    def embed_media(
        self,
        call: CallSettings,
        inputs: Sequence[object],
        *,
        query: bool,
        fps: float | None,
        method: str,
    ) -> list[list[float]]:
        """Vectors of multimodal inputs (``Image``, ``Video``, ``Text``...), in input order."""
        self.check_blocking(call, method)
        if not inputs:
            return []
        return self._media(call, inputs, query=query, fps=fps)

    async def aembed_media(
        self, call: CallSettings, inputs: Sequence[object], *, query: bool, fps: float | None
    ) -> list[list[float]]:
        """Async :meth:`embed_media`."""
        if not inputs:
            return []
        return await self._amedia(call, inputs, query=query, fps=fps)

    def _media(
        self, call: CallSettings, inputs: Sequence[object], *, query: bool, fps: float | None
    ) -> list[list[float]]:
        with self.sync_client(call) as client:
            result = client.embed_multimodal(
                inputs, on_error="raise", **call.media_kwargs(query, fps)
            )
        return result.embeddings

    async def _amedia(
        self, call: CallSettings, inputs: Sequence[object], *, query: bool, fps: float | None
    ) -> list[list[float]]:
        async with self.async_client(call) as client:
            result = await client.embed_multimodal(
                inputs, on_error="raise", **call.media_kwargs(query, fps)
            )
        return result.embeddings
