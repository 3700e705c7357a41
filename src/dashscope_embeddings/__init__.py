"""DashScope (Alibaba Cloud Model Studio) embeddings: one fast sync + async core client.

>>> from dashscope_embeddings import DashScopeClient
>>> with DashScopeClient() as client:  # DASHSCOPE_API_KEY from the environment
...     result = client.embed_texts(["hello"], model="text-embedding-v4", text_type="query")

Framework adapters live in :mod:`dashscope_embeddings.langchain` and
:mod:`dashscope_embeddings.llama_index`; importing this package never imports a framework.
"""

import importlib
import typing

from dashscope_embeddings._version import __version__

if typing.TYPE_CHECKING:
    from dashscope_embeddings._client import AsyncDashScopeClient, DashScopeClient
    from dashscope_embeddings._errors import (
        APIConnectionError,
        APIError,
        APIStatusError,
        APITimeoutError,
        AuthenticationError,
        BadRequestError,
        ClientClosedError,
        ConfigurationError,
        ContentRejectedError,
        DashScopeError,
        InvalidInputError,
        NotFoundError,
        PartialEmbeddingError,
        PermissionDeniedError,
        QuotaExhaustedError,
        RateLimitError,
        ResponseValidationError,
        ServerError,
    )
    from dashscope_embeddings._inputs import (
        Audio,
        Fused,
        Image,
        ImageSource,
        MultiImages,
        MultimodalInput,
        Text,
        Video,
    )
    from dashscope_embeddings._limiter import RateBudget, RateWindow
    from dashscope_embeddings._options import NOT_GIVEN, ClientOptions, ClientSettings, NotGiven
    from dashscope_embeddings._registry import MODELS, ModelSpec, get_model_spec, list_models
    from dashscope_embeddings._tokens import estimate_tokens
    from dashscope_embeddings._types import (
        EmbeddingResult,
        FailedInput,
        OnError,
        OutputType,
        PartialResult,
        SparseVector,
        TextType,
        Usage,
        WireProtocol,
    )

__all__ = [
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
    # multimodal input kinds (a bare str is always text)
    "Audio",
    "Fused",
    "Image",
    "ImageSource",
    "MultiImages",
    "MultimodalInput",
    "Text",
    "Video",
]

# Public name -> the module that defines it. Each loads on first access (module __getattr__),
# so importing the package, or an adapter, does not load httpx, the transport or the clients.
_LAZY_MODULES: dict[str, tuple[str, ...]] = {
    "dashscope_embeddings._client": ("AsyncDashScopeClient", "DashScopeClient"),
    "dashscope_embeddings._errors": (
        "APIConnectionError",
        "APIError",
        "APIStatusError",
        "APITimeoutError",
        "AuthenticationError",
        "BadRequestError",
        "ClientClosedError",
        "ConfigurationError",
        "ContentRejectedError",
        "DashScopeError",
        "InvalidInputError",
        "NotFoundError",
        "PartialEmbeddingError",
        "PermissionDeniedError",
        "QuotaExhaustedError",
        "RateLimitError",
        "ResponseValidationError",
        "ServerError",
    ),
    "dashscope_embeddings._inputs": (
        "Audio",
        "Fused",
        "Image",
        "ImageSource",
        "MultiImages",
        "MultimodalInput",
        "Text",
        "Video",
    ),
    "dashscope_embeddings._limiter": ("RateBudget", "RateWindow"),
    "dashscope_embeddings._options": ("NOT_GIVEN", "ClientOptions", "ClientSettings", "NotGiven"),
    "dashscope_embeddings._registry": ("MODELS", "ModelSpec", "get_model_spec", "list_models"),
    "dashscope_embeddings._tokens": ("estimate_tokens",),
    "dashscope_embeddings._types": (
        "EmbeddingResult",
        "FailedInput",
        "OnError",
        "OutputType",
        "PartialResult",
        "SparseVector",
        "TextType",
        "Usage",
        "WireProtocol",
    ),
}
_LAZY = {name: module for module, names in _LAZY_MODULES.items() for name in names}


def __getattr__(name: str) -> typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
