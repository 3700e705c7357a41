"""Public surface, import hygiene, and the README's generated parts."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

import dashscope_embeddings

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_public_names_are_pinned() -> None:
    assert sorted(dashscope_embeddings.__all__, key=str.lower) == sorted(
        [
            "MODELS",
            "NOT_GIVEN",
            "APIConnectionError",
            "APIError",
            "APIStatusError",
            "APITimeoutError",
            "AsyncDashScopeClient",
            "AuthenticationError",
            "BadRequestError",
            "ClientClosedError",
            "ClientOptions",
            "ClientSettings",
            "ConfigurationError",
            "ContentRejectedError",
            "DashScopeClient",
            "DashScopeError",
            "EmbeddingResult",
            "FailedInput",
            "InvalidInputError",
            "ModelSpec",
            "NotFoundError",
            "NotGiven",
            "OnError",
            "OutputType",
            "PartialEmbeddingError",
            "PartialResult",
            "PermissionDeniedError",
            "QuotaExhaustedError",
            "RateBudget",
            "RateLimitError",
            "RateWindow",
            "ResponseValidationError",
            "ServerError",
            "SparseVector",
            "TextType",
            "Usage",
            "WireProtocol",
            "__version__",
            "estimate_tokens",
            "get_model_spec",
            "list_models",
            "Audio",
            "Fused",
            "Image",
            "ImageSource",
            "MultiImages",
            "MultimodalInput",
            "Text",
            "Video",
        ],
        key=str.lower,
    )
    for name in dashscope_embeddings.__all__:
        assert hasattr(dashscope_embeddings, name), name


def test_importing_the_core_imports_no_framework() -> None:
    result = _run(
        "import sys, dashscope_embeddings\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('langchain_core', 'llama_index', 'starlette', 'uvicorn')]\n"
        "print(bad)"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("module", "blocked", "extra"),
    [
        ("dashscope_embeddings.langchain", "langchain_core", "[langchain]"),
        ("dashscope_embeddings.llama_index", "llama_index", "[llama-index]"),
    ],
)
def test_adapter_without_its_extra_names_the_pip_command(
    module: str, blocked: str, extra: str
) -> None:
    result = _run(
        f"import sys\nsys.modules[{blocked!r}] = None\n"
        f"try:\n    import {module}\nexcept ImportError as e:\n    print(e)\nelse:\n    print('imported')"
    )
    assert result.returncode == 0, result.stderr
    assert f'pip install "dashscope-embeddings{extra}"' in result.stdout


def test_readme_model_table_is_generated_from_the_registry() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "readme_tables.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in dashscope_embeddings.MODELS:
        assert f"`{name}`" in readme


def test_readme_quick_start_is_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line for line in section.strip().splitlines() if line.strip()]
    assert [c.split("#")[0].strip() for c in commands] == [
        "bash scripts/quickstart.sh",
        "bash scripts/test.sh",
    ]


def test_readme_options_table_lists_every_option_of_every_class() -> None:
    from dashscope_embeddings import ClientSettings
    from dashscope_embeddings.langchain import DashScopeEmbeddings
    from dashscope_embeddings.llama_index import DashScopeEmbedding

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("<!-- options-table:begin") : readme.index("<!-- options-table:end")]
    framework_own = {"callback_manager", "num_workers", "embeddings_cache", "rate_limiter"}
    for cls in (ClientSettings, DashScopeEmbeddings, DashScopeEmbedding):
        for name in set(cls.model_fields) - framework_own:
            assert f"| `{name}`" in table, f"{cls.__name__}.{name} missing from README"
