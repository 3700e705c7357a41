"""LlamaIndex embeddings for DashScope: a drop-in for ``llama-index-embeddings-dashscope``.

Setup:
    .. code-block:: bash

        pip install "dashscope-embeddings[llama-index]"
        export DASHSCOPE_API_KEY="sk-..."

Migrating: replace ``from llama_index.embeddings.dashscope import DashScopeEmbedding`` with
``from dashscope_embeddings.llama_index import DashScopeEmbedding``. ``model_name``,
``text_type``, ``api_key`` and ``embed_batch_size`` keep their meaning, and the enums
``DashScopeTextEmbeddingModels`` / ``DashScopeTextEmbeddingType`` are here too. Unlike the old
class, ``text_type`` really reaches the service, failures raise instead of returning empty
vectors, and async is truly async.

Hybrid search (sparse + dense, one request per text for both halves):
``DashScopeSparseEmbedding`` (a ``BaseSparseEmbedding``) and ``qdrant_hybrid_fns`` for
``QdrantVectorStore(enable_hybrid=True)`` need llama-index-core only;
``DashScopeMilvusSparseFunction`` for ``MilvusVectorStore(enable_sparse=True)`` raises
``ImportError`` naming the pip command without the ``milvus`` extra. The sparse names load on
first use, so importing this module loads no LlamaIndex module a ``llama_index.core`` app has
not loaded.
"""

from __future__ import annotations

import importlib
import typing

from dashscope_embeddings.llama_index.embedding import (
    DashScopeBatchTextEmbeddingModels,
    DashScopeEmbedding,
    DashScopeTextEmbeddingModels,
    DashScopeTextEmbeddingType,
)

if typing.TYPE_CHECKING:
    from dashscope_embeddings.llama_index._milvus import (
        DashScopeMilvusSparseFunction as DashScopeMilvusSparseFunction,
    )
    from dashscope_embeddings.llama_index.sparse import (
        DashScopeSparseEmbedding as DashScopeSparseEmbedding,
    )
    from dashscope_embeddings.llama_index.sparse import qdrant_hybrid_fns as qdrant_hybrid_fns

# Names loaded on first use (they need a framework module or an engine package), and the module
# that defines each.
_LAZY = {
    "DashScopeSparseEmbedding": "dashscope_embeddings.llama_index.sparse",
    "qdrant_hybrid_fns": "dashscope_embeddings.llama_index.sparse",
    "DashScopeMilvusSparseFunction": "dashscope_embeddings.llama_index._milvus",
}

__all__ = [
    "DashScopeBatchTextEmbeddingModels",
    "DashScopeEmbedding",
    "DashScopeSparseEmbedding",
    "DashScopeTextEmbeddingModels",
    "DashScopeTextEmbeddingType",
    "qdrant_hybrid_fns",
]


def __getattr__(name: str) -> typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
