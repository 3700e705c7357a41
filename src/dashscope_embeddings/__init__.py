"""DashScope (Alibaba Cloud Model Studio) embeddings: one fast sync + async core client.

>>> from dashscope_embeddings import DashScopeClient
>>> with DashScopeClient() as client:  # DASHSCOPE_API_KEY from the environment
...     result = client.embed_texts(["hello"], model="text-embedding-v4", text_type="query")

Framework adapters live in :mod:`dashscope_embeddings.langchain` and
:mod:`dashscope_embeddings.llama_index`; importing this package never imports a framework.
"""

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
from dashscope_embeddings._version import __version__

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
