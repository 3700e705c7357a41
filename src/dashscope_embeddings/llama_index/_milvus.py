"""``DashScopeMilvusSparseFunction``: the sparse function of LlamaIndex's ``MilvusVectorStore``."""

from __future__ import annotations

import typing

try:
    from llama_index.vector_stores.milvus.utils import BaseSparseEmbeddingFunction
except ImportError as exc:  # pragma: no cover - exercised in a venv without the extra
    raise ImportError(
        "DashScopeMilvusSparseFunction needs llama-index-vector-stores-milvus: "
        'pip install "dashscope-embeddings[milvus]" '
        "(or pip install llama-index-vector-stores-milvus)"
    ) from exc

from dashscope_embeddings._types import Usage
from dashscope_embeddings.llama_index.embedding import DashScopeEmbedding
from dashscope_embeddings.llama_index.sparse import asparse_of, paired_dense, sparse_of

__all__ = ["DashScopeMilvusSparseFunction"]


class DashScopeMilvusSparseFunction(BaseSparseEmbeddingFunction):
    """DashScope sparse vectors (``{index: value}``) for ``MilvusVectorStore(enable_sparse=True)``.

    text-embedding-v3 and v4 only.

    >>> from llama_index.vector_stores.milvus import MilvusVectorStore  # doctest: +SKIP
    >>> embed_model = DashScopeEmbedding(model_name="text-embedding-v4")
    >>> store = MilvusVectorStore(  # doctest: +SKIP
    ...     uri="./milvus.db", dim=1024, overwrite=True, enable_sparse=True,
    ...     sparse_embedding_function=DashScopeMilvusSparseFunction.from_dense(embed_model),
    ... )

    ``from_dense(embed_model)`` shares the index's dense model and its memo, so inserting costs
    one request per node for both halves, and a hybrid query one request. The store encodes
    ``node.text`` (without metadata) for the sparse half, while the index embeds the text with
    its metadata: nodes whose embedded text carries metadata cost a second, sparse-only request
    each. ``DashScopeMilvusSparseFunction(model_name=..., **options)`` makes a sparse-only one.
    """

    _dense: DashScopeEmbedding

    def __init__(self, model_name: str = "text-embedding-v4", **options: typing.Any) -> None:
        dense = DashScopeEmbedding(model_name=model_name, **options)
        dense._check_sparse()
        self._dense = dense

    @classmethod
    def from_dense(cls, dense: DashScopeEmbedding) -> DashScopeMilvusSparseFunction:
        """The sparse sibling of ``dense``: same client, model, options, usage and memo.

        Raises:
            TypeError: ``dense`` is not a ``DashScopeEmbedding``.
            InvalidInputError: Its model has no sparse output, naming the models that have.
        """
        self = cls.__new__(cls)
        self._dense = paired_dense(dense, f"{cls.__name__}.from_dense")
        return self

    @property
    def dense(self) -> DashScopeEmbedding:
        """The dense object whose settings, client and usage this one uses."""
        return self._dense

    @property
    def usage(self) -> Usage:
        """Tokens and estimated cost so far, shared with the dense object."""
        return self._dense.usage

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model_name={self._dense.model_name!r})"

    def encode_documents(self, documents: list[str]) -> list[dict[int, float]]:
        """Sparse vectors of documents (the model's ``text_type``), in input order."""
        return [v.as_dict() for v in sparse_of(
            self._dense, documents, query=False, method="encode_documents"
        )]

    def encode_queries(self, queries: list[str]) -> list[dict[int, float]]:
        """Sparse vectors of queries (``text_type="query"``, with ``instruct``)."""
        return [v.as_dict() for v in sparse_of(
            self._dense, queries, query=True, method="encode_queries"
        )]

    async def async_encode_documents(self, documents: list[str]) -> list[dict[int, float]]:
        """Async :meth:`encode_documents` (the async client, no thread)."""
        return [v.as_dict() for v in await asparse_of(self._dense, documents, query=False)]

    async def async_encode_queries(self, queries: list[str]) -> list[dict[int, float]]:
        """Async :meth:`encode_queries`."""
        return [v.as_dict() for v in await asparse_of(self._dense, queries, query=True)]
