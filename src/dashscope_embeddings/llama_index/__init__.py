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
"""

from dashscope_embeddings.llama_index.embedding import (
    DashScopeBatchTextEmbeddingModels,
    DashScopeEmbedding,
    DashScopeTextEmbeddingModels,
    DashScopeTextEmbeddingType,
)

__all__ = [
    "DashScopeBatchTextEmbeddingModels",
    "DashScopeEmbedding",
    "DashScopeTextEmbeddingModels",
    "DashScopeTextEmbeddingType",
]
