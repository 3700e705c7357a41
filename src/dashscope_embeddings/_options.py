"""The client's options, defined once.

:class:`ClientSettings` is the single definition of every option the core clients take: its
fields carry the types, defaults, allowed ranges and the documentation that README's tables
are generated from. The core clients validate their keyword arguments with it, and both
framework adapters inherit it, so an option is added or changed in this one place.
:class:`ClientOptions` is the same set as a ``TypedDict``, for type checkers only (a test
keeps the two equal).

Per-call transport overrides (``extra_headers``, ``timeout``, ``max_retries``) are in
:class:`RequestOptions`; ``extra_body`` is merged by the endpoint modules as they build bodies.
"""

from __future__ import annotations

import re
import sys
import textwrap
import typing
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, StrictInt, ValidationError

from dashscope_embeddings._constants import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT_S,
)
from dashscope_embeddings._errors import ConfigurationError
from dashscope_embeddings._tokens import TokenCounter
from dashscope_embeddings._types import WireProtocol

__all__ = [
    "NOT_GIVEN",
    "ClientOptions",
    "ClientSettings",
    "NotGiven",
    "RequestOptions",
    "TimeoutTypes",
    "options_doc",
    "validate_settings",
]


def _is_httpx_timeout(value: object) -> bool:
    # Only a loaded httpx can have made one: defining the settings does not import httpx.
    httpx_module = sys.modules.get("httpx")
    return httpx_module is not None and isinstance(value, httpx_module.Timeout)


def _httpx_timeout(value: object) -> object:
    if not _is_httpx_timeout(value):
        raise ValueError(f"expected an httpx.Timeout, got {type(value).__name__}")
    return value


if typing.TYPE_CHECKING:
    import httpx

    _HTTPXTimeout: typing.TypeAlias = httpx.Timeout
else:
    _HTTPXTimeout = typing.Annotated[typing.Any, PlainValidator(_httpx_timeout)]

TimeoutTypes = typing.Union[float, _HTTPXTimeout, None]  # noqa: UP007 (runtime alias, py3.10)


class NotGiven:
    """The type of :data:`NOT_GIVEN`, which means "use the client's setting".

    ``None`` cannot say that: ``timeout=None`` means "wait forever".
    """

    _instance: NotGiven | None = None

    def __new__(cls) -> NotGiven:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __reduce__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN = NotGiven()


class ClientSettings(BaseModel):
    """Options of :class:`~dashscope_embeddings.DashScopeClient` and its async twin.

    Every field is a keyword argument of both core clients and of both framework adapters.
    """

    model_config = ConfigDict(
        extra="forbid",
        arbitrary_types_allowed=True,
        protected_namespaces=(),
        frozen=False,
        defer_build=True,  # built on first use: importing the package stays cheap
    )

    region: str | None = Field(
        default=None,
        description="`cn-beijing` (default), `ap-southeast-1` or `cn-hongkong`; also "
        "`DASHSCOPE_REGION`. API keys are region-bound.",
    )
    base_url: str | None = Field(
        default=None,
        description="An explicit host or base URL (beats `region`); also `DASHSCOPE_BASE_URL`, "
        "then `DASHSCOPE_HTTP_BASE_URL`.",
    )
    workspace: str | None = Field(
        default=None,
        description="Workspace id, sent as `X-DashScope-WorkSpace`; also "
        "`DASHSCOPE_WORKSPACE_ID`.",
    )
    protocol: WireProtocol = Field(
        default="native",
        description="`native` (text_type, sparse, instruct) or `compatible` (the "
        "OpenAI-compatible endpoint: dense only, queries and documents embedded alike).",
    )
    max_retries: StrictInt = Field(
        default=DEFAULT_MAX_RETRIES,
        ge=0,
        le=100,
        description="Retry budget of a call on 429, 5xx, transport errors and malformed "
        "answers (plus one per request in flight alongside and one per success; at most 10 "
        "attempts per request); never on other 4xx. `0`: no retries.",
    )
    timeout: float | _HTTPXTimeout | None = Field(
        default=DEFAULT_TIMEOUT_S,
        description="Deadline in seconds for each attempt of a request, reading the answer "
        "included; `None` waits forever. With your own `http_client`, its timeout is kept "
        "unless this is given.",
    )
    max_concurrency: StrictInt = Field(
        default=DEFAULT_MAX_CONCURRENCY,
        ge=1,
        le=1024,
        description="Most requests in flight at once, shared by every call on the client (a "
        "ceiling: the adaptive limit starts at 8 and grows while the service keeps up).",
    )
    adaptive_concurrency: bool = Field(
        default=True,
        description="Adapt requests in flight to throttling (start at 8, grow on success, back "
        "off on 429); `False` always uses `max_concurrency`.",
    )
    rpm: StrictInt | None = Field(
        default=None,
        ge=1,
        description="Client-side budget of requests per rolling minute, for a known quota "
        "(several processes: give each its share).",
    )
    tpm: StrictInt | None = Field(
        default=None,
        ge=1,
        description="Client-side budget of (estimated) input tokens per rolling minute.",
    )
    allow_insecure_http: bool = Field(
        default=False,
        description="Allow a plain `http://` base URL to a host other than this machine (the "
        "key would cross the network unencrypted).",
    )
    token_counter: TokenCounter | None = Field(
        default=None,
        exclude=True,
        description="A token counter `str -> int` for the length check, cut points, packing "
        "and `tpm` (default: the Qwen tokenizer with the `tokenizer` extra, else bounds that "
        "never refuse what fits nor overfill a cut).",
    )

    def timeout_given(self) -> bool:
        """Whether ``timeout`` was set explicitly (else an injected client's own is kept)."""
        return "timeout" in self.model_fields_set


def _check_timeout(timeout: object) -> None:
    if timeout is None or _is_httpx_timeout(timeout):
        return
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ConfigurationError(
            f"timeout must be a number of seconds > 0, an httpx.Timeout, or None (wait "
            f"forever); got {timeout!r}"
        )


def validate_settings(options: typing.Mapping[str, typing.Any]) -> ClientSettings:
    """Build :class:`ClientSettings` from keyword arguments, or raise ConfigurationError.

    The message names each bad option, what was given and what is allowed.
    """
    _check_timeout(options.get("timeout", DEFAULT_TIMEOUT_S))
    try:
        return ClientSettings(**options)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]) or "options"
            if error["type"] == "extra_forbidden":
                known = ", ".join(ClientSettings.model_fields)
                problems.append(f"unknown option {name!r} (options: {known})")
            else:
                problems.append(f"{name}={error.get('input')!r}: {error['msg']}")
        raise ConfigurationError("; ".join(problems)) from None


class ClientOptions(typing.TypedDict, total=False):
    """The fields of :class:`ClientSettings` as keyword-argument types (see there)."""

    region: str | None
    base_url: str | None
    workspace: str | None
    protocol: WireProtocol
    max_retries: int
    timeout: TimeoutTypes
    max_concurrency: int
    adaptive_concurrency: bool
    rpm: int | None
    tpm: int | None
    allow_insecure_http: bool
    token_counter: TokenCounter | None


@dataclass(frozen=True)
class RequestOptions:
    """Per-call overrides: where a value is :data:`NOT_GIVEN`, the client's setting holds.

    Attributes:
        timeout: Deadline per attempt, in seconds (``None`` waits forever).
        max_retries: The retry budget of this call to start with.
        extra_headers: Headers added to every request of the call.
    """

    timeout: TimeoutTypes | NotGiven = NOT_GIVEN
    max_retries: int | NotGiven = NOT_GIVEN
    extra_headers: typing.Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.timeout, NotGiven):
            _check_timeout(self.timeout)
        if not isinstance(self.max_retries, NotGiven) and (
            isinstance(self.max_retries, bool)
            or not isinstance(self.max_retries, int)
            or self.max_retries < 0
        ):
            raise ConfigurationError(f"max_retries must be an int >= 0, got {self.max_retries!r}")


def _rst(markdown: str) -> str:
    """README's inline code (single backticks) as reStructuredText's (double)."""
    return re.sub(r"(?<!`)`([^`]+)`(?!`)", r"``\1``", markdown)


def options_doc(*, indent: int = 0, width: int = 96) -> str:
    """Every field of :class:`ClientSettings` as a docstring list, from the field descriptions.

    The core clients' docstrings are rendered from this, so they list every option once, as
    it is defined.
    """
    pad = " " * indent
    lines: list[str] = []
    for name, info in ClientSettings.model_fields.items():
        default = info.get_default(call_default_factory=False)
        head = f"``{name}`` (default ``{default!r}``): " if default is not None else f"``{name}``: "
        lines += textwrap.wrap(
            head + _rst(info.description or ""),
            width=width,
            initial_indent=pad + "- ",
            subsequent_indent=pad + "  ",
            break_on_hyphens=False,
        )
    return "\n".join(lines)
