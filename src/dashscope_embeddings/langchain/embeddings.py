"""``DashScopeEmbeddings``: LangChain's ``Embeddings`` over the core client."""

from __future__ import annotations

import typing
from collections.abc import Mapping

try:
    from langchain_core.embeddings import Embeddings
    from langchain_core.load.serializable import Serializable
    from langchain_core.utils import secret_from_env
except ImportError as exc:  # pragma: no cover - exercised in a venv without the extra
    raise ImportError(
        "dashscope_embeddings.langchain needs langchain-core: "
        'pip install "dashscope-embeddings[langchain]"'
    ) from exc

from pydantic import ConfigDict, Field, SecretStr

from dashscope_embeddings._adapter import AdapterSettings, options_section
from dashscope_embeddings._errors import InvalidInputError

__all__ = ["DashScopeEmbeddings"]


class DashScopeEmbeddings(AdapterSettings, Embeddings, Serializable):
    """DashScope (Alibaba Cloud Model Studio) text and multimodal embedding models for LangChain.

    Documents are sent with ``text_type="document"``, queries with ``text_type="query"``
    (plus ``instruct`` when set). Inputs are split by the model's real per-request limit,
    sent several at a time, retried on 429/5xx, and returned in input order. Settings hold at
    call time: change a field and the next call uses it.

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

    Images (multimodal models):
        .. code-block:: python

            mm = DashScopeEmbeddings(model="tongyi-embedding-vision-plus")
            image_vectors = mm.embed_image(["photos/shoe.png", "https://example.com/a.jpg"])
            query = mm.embed_query("a red running shoe")  # same vector space as the images

        ``embed_image`` is what LangChain's Chroma (``add_images``,
        ``similarity_search_by_image``) calls. With a multimodal model, ``embed_documents`` and
        ``embed_query`` use the multimodal endpoint too, so texts and images compare.

    Cost:
        ``embeddings.usage`` holds the tokens and estimated price of all calls so far; it grows
        as answers arrive and survives pickling.

    Key:
        ``api_key=`` is kept (and pickled) with the object; without it the key is read from
        ``DASHSCOPE_API_KEY`` at each call and never pickled.

    Errors:
        Bad settings raise ``ConfigurationError`` (a ``DashScopeError`` and a ``ValueError``)
        at construction, naming the option.
    """

    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, protected_namespaces=(), arbitrary_types_allowed=True
    )

    model: str = Field(
        default="text-embedding-v4",
        description="Model name (alias `model_name`). `langchain_community`'s default was "
        "`text-embedding-v1`: pass it to keep an existing index's vectors.",
    )
    """Model name; ``text-embedding-v4`` by default (sparse, instruct, dimensions 64-2048).
    ``langchain_community``'s default was ``text-embedding-v1``: pass it to keep an existing
    index's vectors."""
    dashscope_api_key: SecretStr | None = Field(
        alias="api_key",
        default_factory=secret_from_env("DASHSCOPE_API_KEY", default=None),
        description="API key (alias `api_key`); else `DASHSCOPE_API_KEY`.",
    )
    """API key. Resolution order:

    1. ``api_key`` / ``dashscope_api_key`` argument (pickled with the object);
    2. the ``DASHSCOPE_API_KEY`` environment variable, read again at each call (never
       pickled)."""
    show_progress_bar: bool = Field(
        default=False,
        description="Show a tqdm bar (the `progress` extra) counting texts as requests come "
        "back.",
    )
    model_kwargs: dict[str, typing.Any] = Field(
        default_factory=dict,
        description="Extra service parameters merged into every request's `parameters`.",
    )
    """Extra service parameters merged into every request's ``parameters`` (native protocol)
    or body (compatible protocol), for a parameter this package does not know yet."""

    @classmethod
    def is_lc_serializable(cls) -> bool:
        """``dumpd`` / ``dumps`` serialise it, the key as a secret reference only."""
        return True

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        """Where ``langchain_core.load`` finds the class."""
        return ["dashscope_embeddings", "langchain"]

    @property
    def lc_secrets(self) -> dict[str, str]:
        """The key is serialised as a reference to ``DASHSCOPE_API_KEY``, never its value."""
        return {"dashscope_api_key": "DASHSCOPE_API_KEY"}

    def __init__(self, **kwargs: typing.Any) -> None:
        """Build from keyword arguments (the options below).

        Raises:
            ConfigurationError: No key, an unknown option or region, a value out of range
                (a ``DashScopeError`` and a ``ValueError``), naming the option.
        """
        key_given = "api_key" in kwargs or "dashscope_api_key" in kwargs
        with self._settings_errors():
            super().__init__(**kwargs)
        self._finish_init(key_given=key_given)

    def __getstate__(self) -> dict[str, typing.Any]:
        return self._pickle_state()

    def __setstate__(self, state: dict[str, typing.Any]) -> None:
        self._restore_state(state)

    def _model(self) -> str:
        return self.model

    def _extra_parameters(self) -> Mapping[str, typing.Any] | None:
        return self.model_kwargs

    _ALIASES: typing.ClassVar[dict[str, str]] = {"dimensions": "dimension", "model_name": "model"}
    _KEY_FIELD: typing.ClassVar[str] = "dashscope_api_key"

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents for storage; one vector per text, in input order.

        Raises:
            PartialEmbeddingError: The service rejected some texts; the others' vectors are on
                the error (LangChain's contract of one vector per text is kept by raising).
            DashScopeError: Any other failure, typed (see README's "Errors and limits").
        """
        return self._embed(
            texts, query=False, method="embed_documents", progress=self.show_progress_bar
        )

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query."""
        return self._embed([text], query=True, method="embed_query")[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents for storage, asynchronously."""
        return await self._aembed(texts, query=False, progress=self.show_progress_bar)

    async def aembed_query(self, text: str) -> list[float]:
        """Embed a search query, asynchronously."""
        return (await self._aembed([text], query=True))[0]

    def embed_image(self, uris: list[str]) -> list[list[float]]:
        """Embed images with a multimodal model; one vector per image, in input order.

        Args:
            uris: Local paths, http(s) URLs (passed to the service, never fetched here) or
                ``data:image/...;base64`` URIs. A local file is sent byte for byte as a data URI
                after checking it is a regular file within the model's size limit.

        Raises:
            InvalidInputError: On a text model (the message names the multimodal models), or
                for a bad image, naming its index and the limit, before anything is sent.
        """
        from dashscope_embeddings._inputs import Image

        return self._embed_media([Image(uri) for uri in _listed(uris)], method="embed_image")

    async def aembed_image(self, uris: list[str]) -> list[list[float]]:
        """Embed images asynchronously; see :meth:`embed_image`."""
        from dashscope_embeddings._inputs import Image

        return await self._aembed_media([Image(uri) for uri in _listed(uris)])


DashScopeEmbeddings.__doc__ = (DashScopeEmbeddings.__doc__ or "") + options_section(
    DashScopeEmbeddings
)


def _listed(uris: list[str]) -> list[str]:
    if isinstance(uris, str):  # a common slip: one path where a list is expected
        raise InvalidInputError("uris must be a list of paths or URLs; wrap one in a list")
    return uris
