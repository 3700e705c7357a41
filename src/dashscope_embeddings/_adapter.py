"""What both framework adapters share: their settings, validated one way.

:class:`AdapterSettings` is a pydantic model each adapter inherits next to its framework's base
class. Its fields are the core client's (:class:`~dashscope_embeddings.ClientSettings`) plus the
embedding options (``dimension``, ``instruct``, ``long_text``...); it holds fields and
validation only. The engine (clients, usage, sparse pairing, calls) is an
:class:`~dashscope_embeddings._adapter_runtime.AdapterRuntime` kept in a private attribute.

Settings hold at call time: every call takes a snapshot of the adapter's current fields, so
``emb.dimension = 256`` or ``emb.model_copy(update={"model": ...})`` take effect at the next
call. A call runs to its end on the client it started with; a setting that shapes the client
(key, host, timeout, retries, concurrency, an injected client) gives the next call a new one.
The usage total belongs to the adapter object: it survives ``close()``, client rebuilds and
pickling; a copy starts its own.

A key read from ``DASHSCOPE_API_KEY`` is read again at each call and never pickled; a key given
as an argument is pickled with the object.

Each adapter supplies its framework's names: the model field, the key field, the document
``text_type`` and the name of its extra-parameters field.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
import threading
import typing
from collections.abc import Iterator, Mapping, Sequence

from pydantic import (
    BaseModel,
    Field,
    PlainValidator,
    PrivateAttr,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from dashscope_embeddings._constants import API_KEY_ENV
from dashscope_embeddings._errors import ConfigurationError, InvalidInputError
from dashscope_embeddings._options import ClientSettings
from dashscope_embeddings._registry import ModelSpec, get_model_spec, list_models
from dashscope_embeddings._types import TextType, Usage
from dashscope_embeddings.resources._text_input import LongText, check_options

# What a call needs (the runtime, the memo, the endpoint checks; the clients and httpx through
# them) loads when first used: importing or building an adapter stays light.
if typing.TYPE_CHECKING:
    import httpx

    from dashscope_embeddings._adapter_runtime import AdapterRuntime, CallSettings
    from dashscope_embeddings._memo import Half, HalvesMemo, Handoff

__all__ = ["AdapterSettings", "options_section"]

_CLIENT_FIELDS = tuple(ClientSettings.model_fields)
_HALVES_LOCK = threading.Lock()  # makes each object's HalvesMemo once
_RUNTIME_LOCK = threading.Lock()  # makes each object's AdapterRuntime once



def _httpx_instance(kind: str) -> typing.Callable[[object], object]:
    """A validator accepting an ``httpx.<kind>`` without importing httpx to define the field.

    A value can only be an httpx client if httpx is loaded already, so the check looks there.
    """

    def check(value: object) -> object:
        httpx_module = sys.modules.get("httpx")
        cls = getattr(httpx_module, kind, None)
        if cls is None or not isinstance(value, cls):
            raise ValueError(f"expected an httpx.{kind}, got {type(value).__name__}")
        return value

    return check


# The field types of the injected clients: httpx's classes for type checkers; at run time a
# check that needs no import of httpx, so defining an adapter class does not load it.
if typing.TYPE_CHECKING:
    _SyncHTTPClient: typing.TypeAlias = httpx.Client
    _AsyncHTTPClient: typing.TypeAlias = httpx.AsyncClient
else:
    _SyncHTTPClient = typing.Annotated[typing.Any, PlainValidator(_httpx_instance("Client"))]
    _AsyncHTTPClient = typing.Annotated[
        typing.Any, PlainValidator(_httpx_instance("AsyncClient"))
    ]

OFFLINE_HINT = (
    "To work offline, start the bundled emulator (python -m dashscope_embeddings.emulator) "
    f"and set DASHSCOPE_BASE_URL to the address it prints, with any {API_KEY_ENV}"
)


def _problem(error: typing.Mapping[str, typing.Any], secret_fields: set[str]) -> str:
    """One pydantic error as a sentence naming the option (never echoing a key)."""
    context = error.get("ctx") or {}
    if error["type"] == "value_error" and "error" in context:
        return str(context["error"])
    name = ".".join(str(part) for part in error["loc"]) or "options"
    if error["type"] == "extra_forbidden":
        return f"unknown option {name!r}"
    if name in secret_fields:
        return f"{name}: {error['msg']}"
    return f"{name}={error.get('input')!r}: {error['msg']}"


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
    long_text: LongText = Field(
        default="error",
        description="A text over the model's token limit: `error` (refused before sending), "
        "`truncate` (cut to the limit) or `chunk` (split, embedded, averaged).",
    )
    max_batch_size: int | None = Field(
        default=None,
        ge=1,
        description="Override of the registry's texts-per-request cap, for a model it lacks.",
    )
    http_client: _SyncHTTPClient | None = Field(
        default=None,
        exclude=True,
        description="Your own `httpx.Client` (proxies, custom TLS); never closed by us.",
    )
    http_async_client: _AsyncHTTPClient | None = Field(
        default=None,
        exclude=True,
        description="Your own `httpx.AsyncClient`; never closed by us.",
    )

    _runtime_state: AdapterRuntime | None = PrivateAttr(default=None)
    _halves_memo: HalvesMemo | None = PrivateAttr(default=None)
    _env_key: SecretStr | None = PrivateAttr(default=None)  # the key field's value, if from env

    # The other framework's (or the old integration's) spelling of an option -> ours.
    _ALIASES: typing.ClassVar[dict[str, str]] = {"dimensions": "dimension"}
    _KEY_FIELD: typing.ClassVar[str] = "api_key"

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
                import difflib

                close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
                hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
                raise ValueError(f"{cls.__name__} has no option {name!r}{hint}")
        return data

    # --- construction: one kind of error for both adapters -----------------------------------

    @classmethod
    @contextlib.contextmanager
    def _settings_errors(cls) -> Iterator[None]:
        """Raise what goes wrong while building the settings as one ``ConfigurationError``.

        pydantic wraps errors of validators in a ``ValidationError``; the user gets ours (a
        ``DashScopeError`` and a ``ValueError``), its message naming each bad option. An option
        the model lacks stays an ``InvalidInputError`` (also both), as the core raises it.
        """
        secret_fields = {cls._KEY_FIELD, "api_key"}
        try:
            yield
        except ValidationError as exc:
            problems = [_problem(e, secret_fields) for e in exc.errors()]
            raise ConfigurationError(f"{cls.__name__}: " + "; ".join(problems)) from None

    def _finish_init(self, *, key_given: bool) -> None:
        """After pydantic built the fields: remember an env key, refuse bad settings now."""
        if not key_given:
            value = getattr(self, self._KEY_FIELD)
            self._env_key = value if isinstance(value, SecretStr) else None
        with self._settings_errors():
            self._check()

    # --- what each adapter supplies --------------------------------------------------------

    def _model(self) -> str:
        raise NotImplementedError

    def _document_text_type(self) -> TextType | None:
        return "document"

    def _extra_parameters(self) -> Mapping[str, typing.Any] | None:
        return None

    # --- settings read at call time ---------------------------------------------------------

    def _secret(self) -> SecretStr | None:
        """The key given as an argument; ``None`` when it comes from the environment."""
        value = getattr(self, self._KEY_FIELD)
        if value is None or (self._env_key is not None and value is self._env_key):
            return None
        return value if isinstance(value, SecretStr) else SecretStr(str(value))

    def _api_key(self) -> SecretStr:
        """The key to send: the argument, else ``DASHSCOPE_API_KEY`` as it is now."""
        from dashscope_embeddings._config import resolve_api_key

        try:
            return resolve_api_key(self._secret())
        except ConfigurationError as exc:
            raise ConfigurationError(f"{exc}. {OFFLINE_HINT}") from None

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
        if spec.endpoint == "multimodal":
            self._check_media()
        else:
            doc_type, query_type = self._sides()
            if self.protocol == "compatible" and self._document_text_type() not in (
                None,
                "document",
            ):
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
        from dashscope_embeddings._config import checked_endpoints

        self._api_key()
        checked_endpoints(self)

    def _extra_body(self) -> dict[str, typing.Any] | None:
        extra = self._extra_parameters()
        if not extra:
            return None
        return {"parameters": dict(extra)} if self.protocol == "native" else dict(extra)

    def _runtime(self) -> AdapterRuntime:
        runtime = self._runtime_state
        if runtime is not None and runtime.owner == id(self):
            return runtime
        with _RUNTIME_LOCK:  # one runtime per object, even when threads start together
            runtime = self._runtime_state
            if runtime is None or runtime.owner != id(self):  # new, or a copy of another
                from dashscope_embeddings._adapter_runtime import AdapterRuntime

                runtime = AdapterRuntime(id(self))
                self._runtime_state = runtime
            return runtime

    def _client_options(self) -> dict[str, typing.Any]:
        injected = self.http_client is not None or self.http_async_client is not None
        return {
            name: getattr(self, name)
            for name in _CLIENT_FIELDS
            if name != "timeout" or self.timeout_given() or not injected
        }

    def _call(self) -> CallSettings:
        """A snapshot of the settings for one call."""
        from dashscope_embeddings._adapter_runtime import CallSettings

        key = self._api_key()
        options = self._client_options()
        digest = hashlib.sha256(key.get_secret_value().encode()).hexdigest()
        values = tuple(
            id(value) if name == "token_counter" else value for name, value in options.items()
        )
        doc_type, query_type = self._sides()
        return CallSettings(
            owner=type(self).__name__,
            spec=self._spec(),
            api_key=key,
            client_key=(digest, id(self.http_client), id(self.http_async_client), values),
            client_options=options,
            http_client=self.http_client,
            http_async_client=self.http_async_client,
            dimension=self.dimension,
            instruct=self.instruct,
            document_type=doc_type,
            query_type=query_type,
            extra_body=self._extra_body(),
            long_text=self.long_text,
            memo=self._halves_memo if self._paired() else None,
        )

    # --- calls (run by the runtime) -----------------------------------------------------------

    def _embed(
        self, texts: Sequence[str], *, query: bool, method: str, progress: bool = False
    ) -> list[list[float]]:
        """Dense vectors; ``method`` names the public sync method (for the event-loop warning)."""
        return self._runtime().embed(
            self._call(), texts, query=query, method=method, progress=progress
        )

    async def _aembed(
        self, texts: Sequence[str], *, query: bool, progress: bool = False
    ) -> list[list[float]]:
        return await self._runtime().aembed(self._call(), texts, query=query, progress=progress)

    def _embed_half(
        self,
        texts: Sequence[str],
        *,
        query: bool,
        want: Half,
        method: str,
        progress: bool = False,
    ) -> Handoff:
        if want == "sparse":
            self._check_sparse()
        return self._runtime().embed_half(
            self._call(), texts, query=query, want=want, progress=progress, method=method
        )

    async def _aembed_half(
        self, texts: Sequence[str], *, query: bool, want: Half, progress: bool = False
    ) -> Handoff:
        if want == "sparse":
            self._check_sparse()
        return await self._runtime().aembed_half(
            self._call(), texts, query=query, want=want, progress=progress
        )

    def _embed_media(
        self,
        inputs: Sequence[object],
        *,
        method: str,
        query: bool = False,
        what: str = "images",
        fps: float | None = None,
    ) -> list[list[float]]:
        """Embed multimodal inputs (``Image``, ``Video``, ``Text``...) with the current model."""
        self._require_media(what)
        return self._runtime().embed_media(
            self._call(), inputs, query=query, fps=fps, method=method
        )

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
        return await self._runtime().aembed_media(self._call(), inputs, query=query, fps=fps)

    # --- public -----------------------------------------------------------------------------

    @property
    def cache_namespace(self) -> str:
        """A namespace for caches of this object's vectors.

        It names everything a vector depends on — model, dimension, protocol, the
        ``text_type`` of documents and of queries, a hash of ``instruct`` and ``long_text``
        when it is not ``error`` — so a cache keyed on it never serves a vector made with
        other settings. Keep documents and queries in two stores (their vectors differ), e.g.
        with LangChain's ``CacheBackedEmbeddings``::

            CacheBackedEmbeddings.from_bytes_store(
                emb, doc_store, namespace=emb.cache_namespace, query_embedding_cache=query_store
            )
        """
        spec = self._spec()
        doc_type, query_type = self._sides()
        instruct = self.instruct or ""
        digest = hashlib.sha256(instruct.encode()).hexdigest()[:12] if instruct else "-"
        dimension = self.dimension or spec.default_dimension or "default"
        long_text = f"long_text={self.long_text}:" if self.long_text != "error" else ""
        return (
            f"dashscope:{spec.name}:{dimension}:{self.protocol}:"
            f"doc={doc_type or 'default'}:query={query_type or 'default'}:instruct={digest}:"
            f"{long_text}"
        )

    @property
    def usage(self) -> Usage:
        """Tokens and estimated cost of every answer this object's calls read.

        It grows as each answer arrives, whatever becomes of the call (a call that failed in
        part or was cancelled counts what the service billed). Kept across ``close()`` and
        pickling; a copy made with ``model_copy`` starts its own.
        """
        return self._runtime().usage

    def close(self) -> None:
        """Release the sync client's connections and threads (they reopen on next use).

        Calls still running finish first: the client is closed when the last one ends.
        """
        self._runtime().close()

    async def aclose(self) -> None:
        """Release the async client's connections for the running loop (reopen on next use)."""
        await self._runtime().aclose()

    # --- pickling: settings and usage; never a key read from the environment ------------------

    def _pickle_state(self) -> dict[str, typing.Any]:
        for name in ("http_client", "http_async_client"):
            if getattr(self, name) is not None:
                raise TypeError(
                    f"a {type(self).__name__} with {name}= cannot be pickled: an httpx client "
                    "holds connections of this process. Build the adapter (and its client) in "
                    "each process instead"
                )
        state: dict[str, typing.Any] = BaseModel.__getstate__(self)
        fields = dict(state["__dict__"])
        if self._env_key is not None and fields.get(self._KEY_FIELD) is self._env_key:
            fields[self._KEY_FIELD] = None
        private = dict(state.get("__pydantic_private__") or {})
        private.update(_env_key=None, _runtime_state=self._runtime())
        return {**state, "__dict__": fields, "__pydantic_private__": private}

    def _restore_state(self, state: dict[str, typing.Any]) -> None:
        BaseModel.__setstate__(self, state)
        runtime = self._runtime_state
        if runtime is not None:
            runtime.owner = id(self)  # this object's own, with the pickled usage total

    # --- sparse siblings: one dense&sparse request feeds both halves --------------------------

    def _share_halves(self) -> HalvesMemo:
        """The memo shared with sparse siblings, made by the first ``from_dense``."""
        self._check_sparse()
        with _HALVES_LOCK:
            if self._halves_memo is None:
                from dashscope_embeddings._memo import HalvesMemo

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

    # --- multimodal models: text, images and video in one vector space ------------------------

    def _check_media(self) -> None:
        """Construction checks for a multimodal model (the text endpoint's do not apply)."""
        spec = self._spec()
        if self.protocol != "native":
            raise ConfigurationError(
                f"{spec.name} is a multimodal model, served only on the native endpoint; "
                "leave protocol='native'"
            )
        from dashscope_embeddings.resources.multimodal import check_multimodal_options

        check_multimodal_options(spec, dimension=self.dimension, fps=None, instruct=self.instruct)

    def _require_media(self, what: str) -> None:
        spec = self._spec()
        if spec.endpoint != "multimodal":
            models = ", ".join(s.name for s in list_models("multimodal"))
            raise InvalidInputError(
                f"{what} need a multimodal model, and {spec.name} is a {spec.endpoint} model; "
                f"use one of: {models}"
            )


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return "from the environment" if field.alias == "api_key" else "empty"
    if field.default is PydanticUndefined:
        return "required"
    return repr(field.default)


def options_section(cls: type[BaseModel], *, skip: typing.Collection[str] = ()) -> str:
    """The "Options" part of an adapter's docstring, rendered from its fields.

    One line per field: name, default and the field's description (the text README's options
    table shows), so the docstring cannot name a wrong default or miss an option.
    """
    lines = ["", "    Options (keyword arguments; defaults in parentheses):", ""]
    for name, field in cls.model_fields.items():
        if name in skip:
            continue
        alias = f" / ``{field.alias}``" if field.alias and field.alias != name else ""
        description = (field.description or "").replace("`", "``")
        lines.append(f"    - ``{name}``{alias} ({_default(field)}): {description}")
    return "\n".join(lines) + "\n"
