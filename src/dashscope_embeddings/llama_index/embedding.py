"""``DashScopeEmbedding``: LlamaIndex's ``MultiModalEmbedding`` over the core client."""

from __future__ import annotations

import typing
from collections.abc import Mapping
from enum import Enum

try:
    from llama_index.core.bridge.pydantic import ConfigDict, Field, SecretStr
    from llama_index.core.callbacks import CBEventType, EventPayload
    from llama_index.core.embeddings import MultiModalEmbedding
    from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
    from llama_index.core.instrumentation.events.embedding import (
        EmbeddingEndEvent,
        EmbeddingStartEvent,
    )
    from llama_index.core.schema import ImageType
except ImportError as exc:  # pragma: no cover - exercised in a venv without the extra
    raise ImportError(
        "dashscope_embeddings.llama_index needs llama-index-core: "
        'pip install "dashscope-embeddings[llama-index]"'
    ) from exc

from dashscope_embeddings._adapter import AdapterSettings, options_section
from dashscope_embeddings._types import TextType

dispatcher = get_dispatcher(__name__)

__all__ = [
    "DashScopeBatchTextEmbeddingModels",
    "DashScopeEmbedding",
    "DashScopeTextEmbeddingModels",
    "DashScopeTextEmbeddingType",
]


class DashScopeTextEmbeddingType(str, Enum):
    """``text_type`` values."""

    TEXT_TYPE_QUERY = "query"
    TEXT_TYPE_DOCUMENT = "document"


class DashScopeTextEmbeddingModels(str, Enum):
    """Text embedding model names."""

    TEXT_EMBEDDING_V1 = "text-embedding-v1"
    TEXT_EMBEDDING_V2 = "text-embedding-v2"
    TEXT_EMBEDDING_V3 = "text-embedding-v3"
    TEXT_EMBEDDING_V4 = "text-embedding-v4"


class DashScopeBatchTextEmbeddingModels(str, Enum):
    """Asynchronous file-task model names.

    The old integration also lists ``text-embedding-async-v3``; no service page documents
    such a model (only async-v1 and async-v2 exist), so it is not offered here.
    """

    TEXT_EMBEDDING_ASYNC_V1 = "text-embedding-async-v1"
    TEXT_EMBEDDING_ASYNC_V2 = "text-embedding-async-v2"


_DEFAULTS: dict[str, typing.Any] = {
    "model_name": "text-embedding-v4",
    "text_type": "document",
    "api_key": None,
    "embed_batch_size": 25,
}


class DashScopeEmbedding(MultiModalEmbedding, AdapterSettings):
    """DashScope (Alibaba Cloud Model Studio) text and multimodal embeddings for LlamaIndex.

    >>> from dashscope_embeddings.llama_index import DashScopeEmbedding
    >>> embed_model = DashScopeEmbedding(model_name="text-embedding-v4", dimension=1024)
    >>> vector = embed_model.get_query_embedding("How do I return an item?")  # doctest: +SKIP

    With a multimodal model (``qwen3-vl-embedding``, ``tongyi-embedding-vision-plus``...),
    texts, queries, images and videos share one vector space, so it works as both
    ``embed_model`` and ``image_embed_model`` of a ``MultiModalVectorStoreIndex``:

    >>> mm = DashScopeEmbedding(model_name="tongyi-embedding-vision-plus")  # doctest: +SKIP
    >>> mm.get_image_embedding("photos/shoe.png")   # a path, URL, data URI or BytesIO
    >>> mm.get_text_embedding("a red running shoe")  # the multimodal endpoint, same space
    >>> mm.get_video_embedding("https://example.com/clip.mp4")

    Images are what ``ImageNode.resolve_image()`` gives (a path string or a ``BytesIO``), an
    http(s) URL (passed to the service, never fetched here) or a ``data:image/...`` URI; local
    bytes go as base64 data URIs, checked against the model's size and format limits first.
    Image and video methods on a text model raise ``InvalidInputError`` naming the multimodal
    models. ``text_type`` does not apply to multimodal models (their endpoint has none).

    ``embed_batch_size`` only sets how many texts LlamaIndex hands over at once: requests never
    exceed the model's own limit (10 for v3/v4, 25 for v1/v2), and several are sent at a time.
    Settings hold at call time. The object pickles (e.g. ``IngestionPipeline(num_workers=...)``)
    with its usage total: clients are recreated on first use in each process. ``api_key=`` is
    pickled with it; without it the key is read from ``DASHSCOPE_API_KEY`` at each call and never
    pickled. Bad settings raise ``ConfigurationError`` (a ``DashScopeError`` and a
    ``ValueError``) at construction, naming the option.

    ``model_name``, ``text_type``, ``api_key`` and ``embed_batch_size`` may also be given
    positionally, in that order; ``model=`` and ``dashscope_api_key=`` are accepted as other
    spellings. LlamaIndex's own ``num_workers``, ``callback_manager``... are accepted too.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    # LangChain's and the old integration's spellings -> ours.
    _ALIASES: typing.ClassVar[dict[str, str]] = {
        "dimensions": "dimension",
        "model": "model_name",
        "dashscope_api_key": "api_key",
    }

    model_name: str = Field(
        default="text-embedding-v4",
        description="Model name (alias `model`). `llama-index-embeddings-dashscope`'s default "
        "was `text-embedding-v2`: pass it to keep an existing index's vectors.",
    )
    embed_batch_size: int = Field(
        default=25,
        gt=0,
        le=2048,
        description="Texts LlamaIndex hands over at once; requests are still cut by the "
        "model's own limit.",
    )
    text_type: TextType = Field(
        default="document", description="`text_type` of nodes; queries always use `query`."
    )
    api_key: SecretStr | None = Field(
        default=None, exclude=True, description="API key; else `DASHSCOPE_API_KEY`."
    )
    additional_kwargs: dict[str, typing.Any] = Field(
        default_factory=dict,
        description="Extra service parameters merged into every request's parameters.",
    )

    def __init__(
        self,
        model_name: str = _DEFAULTS["model_name"],
        text_type: str = _DEFAULTS["text_type"],
        api_key: str | None = _DEFAULTS["api_key"],
        embed_batch_size: int = _DEFAULTS["embed_batch_size"],
        **kwargs: typing.Any,
    ) -> None:
        given = {
            "model_name": model_name,
            "text_type": text_type,
            "api_key": api_key,
            "embed_batch_size": embed_batch_size,
        }
        aliased = {target for alias, target in self._ALIASES.items() if alias in kwargs}
        for name, value in given.items():
            if name in aliased and value == _DEFAULTS[name]:
                continue  # given under its other spelling (model=, dashscope_api_key=)
            kwargs[name] = value
        for name in ("model", "model_name", "text_type"):
            if isinstance(kwargs.get(name), Enum):
                kwargs[name] = kwargs[name].value
        key_given = kwargs.get("api_key") is not None or "dashscope_api_key" in kwargs
        with self._settings_errors():
            super().__init__(**kwargs)
        self._finish_init(key_given=key_given)

    def __getstate__(self) -> dict[str, typing.Any]:
        return self._pickle_state()

    def __setstate__(self, state: dict[str, typing.Any]) -> None:
        self._restore_state(state)

    @classmethod
    def class_name(cls) -> str:
        """Name used in serialised LlamaIndex configs."""
        return "DashScopeEmbedding"

    def _model(self) -> str:
        return self.model_name

    def _document_text_type(self) -> TextType | None:
        return self.text_type

    def _extra_parameters(self) -> Mapping[str, typing.Any] | None:
        return self.additional_kwargs

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embed([query], query=True, method="get_query_embedding")[0]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return (await self._aembed([query], query=True))[0]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embed([text], query=False, method="get_text_embedding")[0]

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return (await self._aembed([text], query=False))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embed(texts, query=False, method="get_text_embedding_batch")

    @dispatcher.span
    def get_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: typing.Any
    ) -> list[list[float]]:
        """Embed ``texts`` as one call, whatever ``embed_batch_size`` says.

        The core cuts them into the model's full requests and sends them side by side.

        LlamaIndex's callback and instrumentation events are emitted as for one batch;
        ``show_progress`` shows a bar counting texts. With an ``embeddings_cache`` or a
        ``rate_limiter`` set, LlamaIndex's own batching is used instead.
        """
        if self.embeddings_cache is not None or self.rate_limiter is not None or not texts:
            return super().get_text_embedding_batch(texts, show_progress=show_progress, **kwargs)
        payload = self.to_payload()
        dispatcher.event(EmbeddingStartEvent(model_dict=payload))
        with self.callback_manager.event(
            CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: payload}
        ) as event:
            embeddings = self._embed(
                texts, query=False, method="get_text_embedding_batch", progress=show_progress
            )
            event.on_end(
                payload={EventPayload.CHUNKS: texts, EventPayload.EMBEDDINGS: embeddings}
            )
        dispatcher.event(EmbeddingEndEvent(chunks=texts, embeddings=embeddings))
        return embeddings

    @dispatcher.span
    async def aget_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: typing.Any
    ) -> list[list[float]]:
        """Async :meth:`get_text_embedding_batch`."""
        if self.embeddings_cache is not None or self.rate_limiter is not None or not texts:
            return await super().aget_text_embedding_batch(
                texts, show_progress=show_progress, **kwargs
            )
        payload = self.to_payload()
        dispatcher.event(EmbeddingStartEvent(model_dict=payload))
        event_id = self.callback_manager.on_event_start(
            CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: payload}
        )
        embeddings = await self._aembed(texts, query=False, progress=show_progress)
        self.callback_manager.on_event_end(
            CBEventType.EMBEDDING,
            payload={EventPayload.CHUNKS: texts, EventPayload.EMBEDDINGS: embeddings},
            event_id=event_id,
        )
        dispatcher.event(EmbeddingEndEvent(chunks=texts, embeddings=embeddings))
        return embeddings

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return await self._aembed(texts, query=False)

    # --- images and video (multimodal models) ---------------------------------------------

    def _get_image_embedding(self, img_file_path: ImageType) -> list[float]:
        return self._embed_media(_images([img_file_path]), method="get_image_embedding")[0]

    async def _aget_image_embedding(self, img_file_path: ImageType) -> list[float]:
        return (await self._aembed_media(_images([img_file_path])))[0]

    def _get_image_embeddings(self, img_file_paths: list[ImageType]) -> list[list[float]]:
        return self._embed_media(
            _images(img_file_paths), method="get_image_embedding_batch"
        )

    async def _aget_image_embeddings(self, img_file_paths: list[ImageType]) -> list[list[float]]:
        return await self._aembed_media(_images(img_file_paths))

    def get_video_embedding(self, video_url: str, *, fps: float | None = None) -> list[float]:
        """Embed a video, given as a public http(s) URL.

        Args:
            video_url: Where the service downloads the video from.
            fps: Share of frames sampled, in [0, 1] (the service's default is 1.0).
        """
        return self.get_video_embeddings([video_url], fps=fps)[0]

    def get_video_embeddings(
        self, video_urls: list[str], *, fps: float | None = None
    ) -> list[list[float]]:
        """Embed videos given as public http(s) URLs, in input order."""
        return self._embed_media(
            _videos(video_urls),
            method="get_video_embeddings",
            what="videos",
            fps=fps,
        )

    async def aget_video_embedding(
        self, video_url: str, *, fps: float | None = None
    ) -> list[float]:
        """Async :meth:`get_video_embedding`."""
        return (await self.aget_video_embeddings([video_url], fps=fps))[0]

    async def aget_video_embeddings(
        self, video_urls: list[str], *, fps: float | None = None
    ) -> list[list[float]]:
        """Async :meth:`get_video_embeddings`."""
        return await self._aembed_media(_videos(video_urls), what="videos", fps=fps)


def _images(values: typing.Iterable[ImageType]) -> list[object]:
    """``Image`` inputs (their module loads on the first multimodal call)."""
    from dashscope_embeddings._inputs import Image

    return [Image(value) for value in values]


def _videos(urls: typing.Iterable[str]) -> list[object]:
    """``Video`` inputs (their module loads on the first multimodal call)."""
    from dashscope_embeddings._inputs import Video

    return [Video(url) for url in urls]


DashScopeEmbedding.__doc__ = (DashScopeEmbedding.__doc__ or "") + options_section(
    DashScopeEmbedding,
    skip=("callback_manager", "num_workers", "embeddings_cache", "rate_limiter"),
)
