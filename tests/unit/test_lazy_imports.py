"""Importing the package or an adapter loads no more than the framework app already has.

Each check runs in a fresh interpreter: the framework app's imports first, then ours, then a
look at ``sys.modules``. httpx, the transport, the clients, the emulator, numpy and tiktoken
load when a client is first made, not on import; building an adapter does not make a client.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import dashscope_embeddings

LANGCHAIN_APP = (
    "from langchain_core.embeddings import Embeddings\n"
    "from langchain_core.vectorstores import VectorStore\n"
)
LLAMA_INDEX_APP = "import llama_index.core\n"

# Loaded when a client is first made (the adapter's runtime makes one on its first call).
CLIENT_MODULES = [
    "dashscope_embeddings._transport",
    "dashscope_embeddings._client",
    "dashscope_embeddings._client_sync",
    "dashscope_embeddings._client_async",
    "dashscope_embeddings._fanout",
    "dashscope_embeddings.emulator",
    "numpy",
    "tiktoken",
]


def _loaded_after(setup: str, code: str) -> dict[str, list[str]]:
    """Modules a fresh interpreter loaded running ``code`` after ``setup``, by top package."""
    program = "\n".join(
        [
            "import json, sys",
            setup,
            "before = set(sys.modules)",
            code,
            'print(json.dumps({"new": sorted(set(sys.modules) - before), "all": sorted(sys.modules)}))',
        ]
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _present(modules: list[str], names: list[str]) -> list[str]:
    return [name for name in names if name in modules]


@pytest.mark.parametrize(
    ("app", "ours", "framework"),
    [
        (
            LANGCHAIN_APP,
            "from dashscope_embeddings.langchain import DashScopeEmbeddings",
            "langchain_core",
        ),
        (
            LLAMA_INDEX_APP,
            "from dashscope_embeddings.llama_index import DashScopeEmbedding",
            "llama_index",
        ),
    ],
    ids=["langchain", "llama_index"],
)
def test_an_adapter_import_adds_only_our_own_modules(app: str, ours: str, framework: str) -> None:
    loaded = _loaded_after(app, ours)
    assert _present(loaded["new"], CLIENT_MODULES) == []
    framework_added = [m for m in loaded["new"] if m.split(".")[0] == framework]
    assert framework_added == [], f"{ours} loaded {framework} modules the app had not"
    # What httpx would load on its own is left out here; the test below checks it is not loaded.
    with_httpx = set(_loaded_after(app, "import httpx")["new"])
    others = sorted(
        {m.split(".")[0] for m in loaded["new"] if m not in with_httpx}
        - {"dashscope_embeddings", *sys.stdlib_module_names}
    )
    assert others == [], f"{ours} loaded other packages: {others}"


@pytest.mark.parametrize(
    ("app", "ours"),
    [
        (LANGCHAIN_APP, "from dashscope_embeddings.langchain import DashScopeEmbeddings"),
        (LLAMA_INDEX_APP, "from dashscope_embeddings.llama_index import DashScopeEmbedding"),
    ],
    ids=["langchain", "llama_index"],
)
def test_an_adapter_import_leaves_httpx_unloaded(app: str, ours: str) -> None:
    assert "httpx" not in _loaded_after(app, ours)["all"]


@pytest.mark.parametrize(
    ("app", "build"),
    [
        (
            LANGCHAIN_APP,
            "from dashscope_embeddings.langchain import DashScopeEmbeddings\n"
            "emb = DashScopeEmbeddings(api_key='sk-test', dimension=512)\n"
            "assert emb.cache_namespace.startswith('dashscope:text-embedding-v4:512:')",
        ),
        (
            LLAMA_INDEX_APP,
            "from dashscope_embeddings.llama_index import DashScopeEmbedding\n"
            "emb = DashScopeEmbedding(api_key='sk-test', dimension=512)\n"
            "assert emb.cache_namespace.startswith('dashscope:text-embedding-v4:512:')",
        ),
    ],
    ids=["langchain", "llama_index"],
)
def test_building_an_adapter_makes_no_client(app: str, build: str) -> None:
    assert _present(_loaded_after(app, build)["new"], CLIENT_MODULES) == []


def test_the_core_import_loads_no_client_and_no_http_library() -> None:
    loaded = _loaded_after("", "import dashscope_embeddings")
    assert _present(loaded["all"], [*CLIENT_MODULES, "httpx"]) == []
    others = {m.split(".")[0] for m in loaded["new"]} - set(sys.stdlib_module_names)
    assert others == {"dashscope_embeddings"}


def test_a_public_name_loads_its_module_on_first_access() -> None:
    loaded = _loaded_after("", "from dashscope_embeddings import DashScopeClient")
    assert _present(loaded["all"], ["httpx", "dashscope_embeddings._transport"]) == [
        "httpx",
        "dashscope_embeddings._transport",
    ]


def test_every_public_name_resolves_and_dir_lists_them_all() -> None:
    for name in dashscope_embeddings.__all__:
        value = getattr(dashscope_embeddings, name)
        assert value is not None, name
    assert set(dashscope_embeddings.__all__) <= set(dir(dashscope_embeddings))
    with pytest.raises(AttributeError, match="no attribute 'NoSuchName'"):
        dashscope_embeddings.NoSuchName  # noqa: B018


def test_the_adapters_list_their_lazy_names() -> None:
    import dashscope_embeddings.langchain as lc
    import dashscope_embeddings.llama_index as li

    for module, names in (
        (
            lc,
            ["DashScopeEmbeddings", "DashScopeSparseEmbeddings", "DashScopeMilvusSparseEmbeddings"],
        ),
        (li, [*li.__all__, "DashScopeMilvusSparseFunction"]),
    ):
        assert set(names) <= set(dir(module)), module.__name__
    assert li.DashScopeSparseEmbedding.__module__ == "dashscope_embeddings.llama_index.sparse"
    assert callable(li.qdrant_hybrid_fns)
