"""The adapters' docstrings list every option with its default, rendered from the fields."""

from __future__ import annotations

import re

import pytest
from pydantic import BaseModel

from dashscope_embeddings._adapter import options_section
from dashscope_embeddings.langchain import DashScopeEmbeddings
from dashscope_embeddings.llama_index import DashScopeEmbedding

LLAMA_INDEX_OWN = ("callback_manager", "num_workers", "embeddings_cache", "rate_limiter")


@pytest.mark.parametrize("cls", [DashScopeEmbeddings, DashScopeEmbedding])
def test_every_option_is_in_the_docstring_with_its_true_default(cls: type[BaseModel]) -> None:
    doc = cls.__doc__ or ""
    for name, field in cls.model_fields.items():
        if name in LLAMA_INDEX_OWN:
            continue
        line = next((ln for ln in doc.splitlines() if ln.strip().startswith(f"- ``{name}``")), "")
        assert line, f"{cls.__name__} docstring misses option {name}"
        if field.default_factory is None:
            assert f"({field.default!r})" in line, line
    for option in ("rpm", "tpm", "adaptive_concurrency", "allow_insecure_http", "long_text"):
        assert f"``{option}``" in doc


@pytest.mark.parametrize("cls", [DashScopeEmbeddings, DashScopeEmbedding])
def test_no_docstring_claims_a_default_the_code_does_not_have(cls: type[BaseModel]) -> None:
    doc = re.sub(r"\s+", " ", cls.__doc__ or "")
    assert "defaults to ``text-embedding-v2``" not in doc
    assert "(default 2)" not in doc
    assert "default matches" not in doc
    name = "model" if "model" in cls.model_fields else "model_name"
    assert f"- ``{name}`` / " in doc or f"- ``{name}`` ('text-embedding-v4')" in doc


def test_the_options_section_renders_descriptions_and_aliases() -> None:
    section = options_section(DashScopeEmbeddings)
    assert "- ``dashscope_api_key`` / ``api_key`` (from the environment)" in section
    assert "- ``max_retries`` (5)" in section
