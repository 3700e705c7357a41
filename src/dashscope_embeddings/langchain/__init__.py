"""LangChain embeddings for DashScope: a drop-in for ``langchain_community``'s class.

Setup:
    .. code-block:: bash

        pip install "dashscope-embeddings[langchain]"
        export DASHSCOPE_API_KEY="sk-..."

Migrating: replace ``from langchain_community.embeddings import DashScopeEmbeddings`` with
``from dashscope_embeddings.langchain import DashScopeEmbeddings``; the arguments ``model``,
``dashscope_api_key`` and ``max_retries`` mean what they meant.

Hybrid search (sparse + dense, one request per text for both halves):
``DashScopeSparseEmbeddings`` for ``langchain_qdrant`` (the ``qdrant`` extra) and
``DashScopeMilvusSparseEmbeddings`` for ``langchain_milvus`` (the ``milvus`` extra). They are
loaded on first use, so this module imports without those packages; using one without its
package raises ``ImportError`` naming the pip command.
"""

from __future__ import annotations

import importlib
import typing

from dashscope_embeddings.langchain.embeddings import DashScopeEmbeddings

if typing.TYPE_CHECKING:
    from dashscope_embeddings.langchain._milvus import (
        DashScopeMilvusSparseEmbeddings as DashScopeMilvusSparseEmbeddings,
    )
    from dashscope_embeddings.langchain._qdrant import (
        DashScopeSparseEmbeddings as DashScopeSparseEmbeddings,
    )

# Names that need an engine package, and the module that defines each.
_LAZY = {
    "DashScopeSparseEmbeddings": "dashscope_embeddings.langchain._qdrant",
    "DashScopeMilvusSparseEmbeddings": "dashscope_embeddings.langchain._milvus",
}

__all__ = ["DashScopeEmbeddings"]


def __getattr__(name: str) -> typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
