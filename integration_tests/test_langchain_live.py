from __future__ import annotations

import typing

from langchain_tests.integration_tests import EmbeddingsIntegrationTests

from dashscope_embeddings.langchain import DashScopeEmbeddings

from .conftest import REGION


class TestLiveLangChain(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[DashScopeEmbeddings]:
        return DashScopeEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, typing.Any]:
        return {"model": "text-embedding-v4", "region": REGION}
