"""``DashScopeSparseEmbeddings``: langchain-qdrant's ``SparseEmbeddings`` over DashScope."""

from __future__ import annotations

try:
    from langchain_qdrant import SparseEmbeddings
    from langchain_qdrant import SparseVector as QdrantSparseVector
except ImportError as exc:  # pragma: no cover - exercised in a venv without the extra
    raise ImportError(
        "DashScopeSparseEmbeddings needs langchain-qdrant: "
        'pip install "dashscope-embeddings[qdrant]" (or pip install langchain-qdrant)'
    ) from exc

from dashscope_embeddings._types import SparseVector
from dashscope_embeddings.langchain.sparse import SparseHalf

__all__ = ["DashScopeSparseEmbeddings"]


def _qdrant(vector: SparseVector) -> QdrantSparseVector:
    return QdrantSparseVector(indices=list(vector.indices), values=list(vector.values))


class DashScopeSparseEmbeddings(SparseHalf, SparseEmbeddings):
    """DashScope sparse (lexical) vectors for ``langchain_qdrant.QdrantVectorStore``.

    text-embedding-v3 and v4 only. Indices are unique and sorted; values are the service's.

    Hybrid search, one request per text for both halves:
        .. code-block:: python

            from langchain_qdrant import QdrantVectorStore, RetrievalMode
            from dashscope_embeddings.langchain import (
                DashScopeEmbeddings,
                DashScopeSparseEmbeddings,
            )

            dense = DashScopeEmbeddings(model="text-embedding-v4")
            store = QdrantVectorStore.from_texts(
                texts,
                embedding=dense,
                sparse_embedding=DashScopeSparseEmbeddings.from_dense(dense),
                retrieval_mode=RetrievalMode.HYBRID,
                location=":memory:",
            )

    Sparse only (``RetrievalMode.SPARSE``): ``DashScopeSparseEmbeddings(model=...)`` with the
    options of ``DashScopeEmbeddings``.
    """

    def embed_documents(self, texts: list[str]) -> list[QdrantSparseVector]:
        """Sparse vectors of documents (``text_type="document"``), in input order."""
        return [_qdrant(v) for v in self._documents(texts)]

    def embed_query(self, text: str) -> QdrantSparseVector:
        """Sparse vector of a query (``text_type="query"``, with ``instruct`` when set)."""
        return _qdrant(self._query(text))

    async def aembed_documents(self, texts: list[str]) -> list[QdrantSparseVector]:
        """Async :meth:`embed_documents` (the async client, no thread)."""
        return [_qdrant(v) for v in await self._adocuments(texts)]

    async def aembed_query(self, text: str) -> QdrantSparseVector:
        """Async :meth:`embed_query`."""
        return _qdrant(await self._aquery(text))
