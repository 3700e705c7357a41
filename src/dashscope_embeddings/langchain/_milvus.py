"""``DashScopeMilvusSparseEmbeddings``: langchain-milvus's ``BaseSparseEmbedding``."""

from __future__ import annotations

try:
    from langchain_milvus.utils.sparse import BaseSparseEmbedding
except ImportError as exc:  # pragma: no cover - exercised in a venv without the extra
    raise ImportError(
        "DashScopeMilvusSparseEmbeddings needs langchain-milvus: "
        'pip install "dashscope-embeddings[milvus]" (or pip install langchain-milvus)'
    ) from exc

from dashscope_embeddings.langchain.sparse import SparseHalf

__all__ = ["DashScopeMilvusSparseEmbeddings"]


class DashScopeMilvusSparseEmbeddings(SparseHalf, BaseSparseEmbedding):
    """DashScope sparse (lexical) vectors for ``langchain_milvus.Milvus``, as ``{index: value}``.

    text-embedding-v3 and v4 only. Milvus treats an embedding function as sparse when it is a
    ``BaseSparseEmbedding``, which this is.

    Hybrid search, one request per text for both halves:
        .. code-block:: python

            from langchain_milvus import Milvus
            from dashscope_embeddings.langchain import (
                DashScopeEmbeddings,
                DashScopeMilvusSparseEmbeddings,
            )

            dense = DashScopeEmbeddings(model="text-embedding-v4")
            store = Milvus(
                embedding_function=[dense, DashScopeMilvusSparseEmbeddings.from_dense(dense)],
                vector_field=["dense", "sparse"],
                connection_args={"uri": "http://localhost:19530"},
            )

    See README ("Hybrid search") for Milvus Lite, which needs a few extra arguments.
    """

    def embed_documents(self, texts: list[str]) -> list[dict[int, float]]:
        """Sparse vectors of documents (``text_type="document"``), in input order."""
        return [v.as_dict() for v in self._documents(texts)]

    def embed_query(self, query: str) -> dict[int, float]:
        """Sparse vector of a query (``text_type="query"``, with ``instruct`` when set)."""
        return self._query(query).as_dict()

    async def aembed_documents(self, texts: list[str]) -> list[dict[int, float]]:
        """Async :meth:`embed_documents` (the async client, no thread)."""
        return [v.as_dict() for v in await self._adocuments(texts)]

    async def aembed_query(self, query: str) -> dict[int, float]:
        """Async :meth:`embed_query`."""
        return (await self._aquery(query)).as_dict()
