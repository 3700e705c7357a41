"""LangChain embeddings for DashScope: a drop-in for ``langchain_community``'s class.

Setup:
    .. code-block:: bash

        pip install "dashscope-embeddings[langchain]"
        export DASHSCOPE_API_KEY="sk-..."

Migrating: replace ``from langchain_community.embeddings import DashScopeEmbeddings`` with
``from dashscope_embeddings.langchain import DashScopeEmbeddings``; the arguments ``model``,
``dashscope_api_key`` and ``max_retries`` mean what they meant.
"""

from dashscope_embeddings.langchain.embeddings import DashScopeEmbeddings

__all__ = ["DashScopeEmbeddings"]
