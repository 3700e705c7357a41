"""Sparse (lexical) DashScope vectors for LlamaIndex, and the Qdrant hybrid-search functions.

``DashScopeSparseEmbedding`` is LlamaIndex's ``BaseSparseEmbedding``; ``qdrant_hybrid_fns``
gives ``QdrantVectorStore(enable_hybrid=True)`` its ``sparse_doc_fn`` / ``sparse_query_fn``.
Made from a dense ``DashScopeEmbedding`` (``from_dense`` / ``qdrant_hybrid_fns(embed_model)``),
both halves come from one ``dense&sparse`` request per text, whichever is asked for first.
Needs llama-index-core only.
"""

from __future__ import annotations

import typing
from collections.abc import Callable

from llama_index.core.base.embeddings.base_sparse import BaseSparseEmbedding, SparseEmbedding
from llama_index.core.bridge.pydantic import ConfigDict, PrivateAttr

from dashscope_embeddings._types import SparseVector, Usage
from dashscope_embeddings.llama_index.embedding import DashScopeEmbedding

__all__ = ["DashScopeSparseEmbedding", "SparseEncoder", "qdrant_hybrid_fns"]

SparseEncoder = Callable[[list[str]], tuple[list[list[int]], list[list[float]]]]
"""``texts -> (indices per text, values per text)``: the shape of LlamaIndex Qdrant's
``sparse_doc_fn`` / ``sparse_query_fn``."""


def paired_dense(dense: object, where: str) -> DashScopeEmbedding:
    """``dense``, checked and sharing its memo with a new sparse sibling.

    Raises:
        TypeError: ``dense`` is not a ``DashScopeEmbedding``.
        InvalidInputError: Its model has no sparse output, naming the models that have.
    """
    if not isinstance(dense, DashScopeEmbedding):
        raise TypeError(
            f"{where} needs a dashscope_embeddings.llama_index.DashScopeEmbedding, got "
            f"{type(dense).__name__}"
        )
    dense._share_halves()
    return dense


def sparse_of(
    dense: DashScopeEmbedding, texts: list[str], *, query: bool, method: str
) -> list[SparseVector]:
    """Sparse vectors of ``texts`` through ``dense`` (its memo when it has a sibling).

    ``method`` names the public sync method called (for the running-event-loop warning).
    """
    if not texts:
        return []
    return dense._embed_half(texts, query=query, want="sparse", method=method).sparse()


async def asparse_of(
    dense: DashScopeEmbedding, texts: list[str], *, query: bool
) -> list[SparseVector]:
    """Async :func:`sparse_of`."""
    if not texts:
        return []
    return (await dense._aembed_half(texts, query=query, want="sparse")).sparse()


class DashScopeSparseEmbedding(BaseSparseEmbedding):
    """DashScope sparse vectors (``{index: value}``) as a LlamaIndex ``BaseSparseEmbedding``.

    text-embedding-v3 and v4 only; indices unique, values as the service sends them.

    >>> from dashscope_embeddings.llama_index import DashScopeEmbedding, DashScopeSparseEmbedding
    >>> embed_model = DashScopeEmbedding(model_name="text-embedding-v4")
    >>> sparse = DashScopeSparseEmbedding.from_dense(embed_model)   # hybrid: one request per text
    >>> sparse.get_query_embedding("return window for order XK-4471")  # doctest: +SKIP
    {48213: 0.91, ...}

    ``DashScopeSparseEmbedding(model_name=..., **options)`` (the options of
    ``DashScopeEmbedding``) makes a sparse-only one. Settings live on the dense object
    (:attr:`dense`) and are read at call time.
    """

    model_config = ConfigDict(
        protected_namespaces=("pydantic_model_",), arbitrary_types_allowed=True
    )

    _dense: DashScopeEmbedding = PrivateAttr()

    def __init__(self, model_name: str = "text-embedding-v4", **kwargs: typing.Any) -> None:
        embed_batch_size = kwargs.pop("embed_batch_size", 25)
        num_workers = kwargs.pop("num_workers", None)
        dense = DashScopeEmbedding(
            model_name=model_name, embed_batch_size=embed_batch_size, **kwargs
        )
        dense._check_sparse()
        super().__init__(
            model_name=dense.model_name, embed_batch_size=embed_batch_size, num_workers=num_workers
        )
        self._dense = dense

    @classmethod
    def from_dense(cls, dense: DashScopeEmbedding) -> DashScopeSparseEmbedding:
        """The sparse sibling of ``dense``: same client, model, options, usage and memo.

        Raises:
            TypeError: ``dense`` is not a ``DashScopeEmbedding``.
            InvalidInputError: Its model has no sparse output (text-embedding-v3 / v4 on the
                native protocol have), naming the models that have.
        """
        paired = paired_dense(dense, f"{cls.__name__}.from_dense")
        self = cls.model_construct(
            model_name=paired.model_name,
            embed_batch_size=paired.embed_batch_size,
            num_workers=paired.num_workers,
        )
        self._dense = paired
        return self

    @classmethod
    def class_name(cls) -> str:
        """Name used in serialised LlamaIndex configs."""
        return "DashScopeSparseEmbedding"

    @property
    def dense(self) -> DashScopeEmbedding:
        """The dense object whose settings, client and usage this one uses."""
        return self._dense

    @property
    def usage(self) -> Usage:
        """Tokens and estimated cost so far, shared with the dense object."""
        return self._dense.usage

    def _get_query_embedding(self, query: str) -> SparseEmbedding:
        vectors = sparse_of(self._dense, [query], query=True, method="get_query_embedding")
        return vectors[0].as_dict()

    async def _aget_query_embedding(self, query: str) -> SparseEmbedding:
        return (await asparse_of(self._dense, [query], query=True))[0].as_dict()

    def _get_text_embedding(self, text: str) -> SparseEmbedding:
        vectors = sparse_of(self._dense, [text], query=False, method="get_text_embedding")
        return vectors[0].as_dict()

    async def _aget_text_embedding(self, text: str) -> SparseEmbedding:
        return (await asparse_of(self._dense, [text], query=False))[0].as_dict()

    def _get_text_embeddings(self, texts: list[str]) -> list[SparseEmbedding]:
        vectors = sparse_of(self._dense, texts, query=False, method="get_text_embedding_batch")
        return [v.as_dict() for v in vectors]

    async def _aget_text_embeddings(self, texts: list[str]) -> list[SparseEmbedding]:
        return [v.as_dict() for v in await asparse_of(self._dense, texts, query=False)]


def _columns(vectors: list[SparseVector]) -> tuple[list[list[int]], list[list[float]]]:
    return [list(v.indices) for v in vectors], [list(v.values) for v in vectors]


def qdrant_hybrid_fns(
    embed_model: DashScopeEmbedding | DashScopeSparseEmbedding,
) -> tuple[SparseEncoder, SparseEncoder]:
    """``(sparse_doc_fn, sparse_query_fn)`` for LlamaIndex's ``QdrantVectorStore``.

    Documents get ``text_type="document"`` (the model's ``text_type``), queries
    ``text_type="query"`` (with ``instruct``). Given the dense ``DashScopeEmbedding`` of the
    index, they share its memo: inserting nodes and querying cost one request per text.

    >>> from llama_index.vector_stores.qdrant import QdrantVectorStore  # doctest: +SKIP
    >>> embed_model = DashScopeEmbedding(model_name="text-embedding-v4")
    >>> doc_fn, query_fn = qdrant_hybrid_fns(embed_model)
    >>> store = QdrantVectorStore(  # doctest: +SKIP
    ...     "docs", client=client, enable_hybrid=True,
    ...     sparse_doc_fn=doc_fn, sparse_query_fn=query_fn,
    ... )

    Raises:
        TypeError: ``embed_model`` is neither a ``DashScopeEmbedding`` nor a
            ``DashScopeSparseEmbedding``.
        InvalidInputError: Its model has no sparse output, naming the models that have.
    """
    if isinstance(embed_model, DashScopeSparseEmbedding):
        dense = embed_model.dense
    else:
        dense = paired_dense(embed_model, "qdrant_hybrid_fns")

    def sparse_doc_fn(texts: list[str]) -> tuple[list[list[int]], list[list[float]]]:
        return _columns(sparse_of(dense, texts, query=False, method="sparse_doc_fn"))

    def sparse_query_fn(texts: list[str]) -> tuple[list[list[int]], list[list[float]]]:
        return _columns(sparse_of(dense, texts, query=True, method="sparse_query_fn"))

    return sparse_doc_fn, sparse_query_fn
