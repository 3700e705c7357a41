"""The text embedding endpoints: input checks, request planning, bodies and answer parsing.

Native protocol: ``POST {native}/services/embeddings/text-embedding/text-embedding`` with
``{"model", "input": {"texts"}, "parameters": {"text_type", "dimension", "output_type",
"instruct"}}``; answers carry ``output.embeddings[].text_index``. OpenAI-compatible protocol:
``POST {compatible}/embeddings`` with ``{"model", "input", "dimensions", "encoding_format"}``;
answers carry ``data[].index``. Reference:
https://www.alibabacloud.com/help/en/model-studio/text-embedding-synchronous-api

Everything here is pure: no I/O. Bad input fails here, before a request is sent, naming the
caller's index.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from dashscope_embeddings._config import Endpoints
from dashscope_embeddings._constants import COMPATIBLE_EMBEDDINGS_PATH, TEXT_EMBEDDING_PATH
from dashscope_embeddings._errors import InvalidInputError
from dashscope_embeddings._registry import MODELS, ModelSpec
from dashscope_embeddings._tokens import TokenCounter, estimate_tokens
from dashscope_embeddings._transport import Answer, APIRequest
from dashscope_embeddings._types import (
    EmbeddingResult,
    OutputType,
    SparseVector,
    TextType,
    Usage,
    WireProtocol,
)
from dashscope_embeddings._usage import usage_for
from dashscope_embeddings.resources._common import (
    as_dict,
    check_dimensions,
    dumps,
    malformed,
    merge_body,
    parse_vector,
    place_by_index,
    total_tokens,
)

__all__ = [
    "PlannedRequest",
    "RequestOutput",
    "TextCall",
    "check_options",
    "check_texts",
    "compatible_body",
    "finish",
    "materialize",
    "native_body",
    "parse_compatible",
    "parse_native",
    "plan_requests",
    "plan_text_call",
]

_TEXT_TYPES = ("query", "document")
_OUTPUT_TYPES = ("dense", "sparse", "dense&sparse")


@dataclass(frozen=True)
class RequestOutput:
    """The parsed answer to one request, already in the request's input order."""

    dense: list[list[float]] | None
    sparse: list[SparseVector] | None
    total_tokens: int
    request_id: str | None


@dataclass(frozen=True)
class PlannedRequest:
    """One request of a call, and which of the caller's inputs it carries."""

    request: APIRequest
    indices: range


@dataclass(frozen=True)
class TextCall:
    """One ``embed_texts`` call, planned: the model, its options, and its requests."""

    spec: ModelSpec
    protocol: WireProtocol
    output_type: OutputType
    expected_dimension: int | None
    region: str
    requests: list[PlannedRequest]


# --- input checks --------------------------------------------------------------------------


def materialize(texts: Iterable[str]) -> Sequence[str]:
    """The inputs as a sequence, read once (a generator is accepted and consumed here).

    Raises:
        InvalidInputError: For a single string or bytes (a common slip), or a non-iterable.
    """
    if isinstance(texts, (str, bytes)):
        raise InvalidInputError(
            f"texts must be a list of strings, got a single {type(texts).__name__}; "
            "wrap it in a list or use embed_query"
        )
    if isinstance(texts, Sequence):
        return texts
    if not isinstance(texts, Iterable):
        raise InvalidInputError(
            f"texts must be a list (or any iterable) of strings, got {type(texts).__name__}"
        )
    return list(texts)


def check_texts(
    texts: Sequence[str],
    spec: ModelSpec,
    *,
    token_counter: TokenCounter | None = None,
) -> None:
    """Refuse what the service would refuse, before anything is sent.

    Non-strings, empty or blank texts, texts over the token limit, and text that cannot be sent
    as UTF-8 (a lone surrogate).

    Raises:
        InvalidInputError: Naming the first offending input's index.
    """
    count = token_counter or estimate_tokens
    limit = spec.max_tokens_per_input
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidInputError(
                f"input {index} is a {type(text).__name__}, not a str", index=index
            )
        if not text or text.isspace():
            raise InvalidInputError(
                f"input {index} is {'empty' if not text else 'only whitespace'}; the service "
                "rejects empty texts",
                index=index,
            )
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InvalidInputError(
                    f"input {index} cannot be sent as UTF-8: {exc.reason} at character "
                    f"{exc.start} ({text[exc.start]!r}); it was probably decoded with the "
                    "wrong codec",
                    index=index,
                ) from None
        # The built-in estimate never exceeds the character count, so only texts longer than
        # the limit need counting; a user's counter is always asked.
        if token_counter is not None or len(text) > limit:
            tokens = count(text)
            if tokens > limit:
                how = "by the given token_counter" if token_counter else "estimated"
                raise InvalidInputError(
                    f"input {index} has about {tokens} tokens ({how}), over {spec.name}'s "
                    f"limit of {limit} per text; the service rejects it rather than "
                    "truncating, so split it into smaller chunks",
                    index=index,
                )


def _models_with(feature: Callable[[ModelSpec], bool]) -> str:
    return ", ".join(name for name, spec in MODELS.items() if feature(spec)) or "none"


def check_options(
    spec: ModelSpec,
    *,
    dimension: int | None,
    text_type: TextType | None,
    output_type: OutputType,
    instruct: str | None,
    protocol: WireProtocol,
) -> None:
    """Refuse options the model or endpoint cannot honour, before anything is sent.

    Raises:
        InvalidInputError: With ``index=None``; the message names the option and, where a
            model lacks a feature, the models that have it.
    """
    if spec.endpoint != "text":
        raise InvalidInputError(
            f"{spec.name} is a {spec.endpoint.replace('_', ' ')} model, not served by the "
            "text embedding endpoint"
        )
    if protocol not in ("native", "compatible"):
        raise InvalidInputError(f"protocol must be 'native' or 'compatible', got {protocol!r}")
    if protocol == "compatible":
        if not spec.supports_compatible_mode and spec.known:
            raise InvalidInputError(
                f"{spec.name} is not served on the OpenAI-compatible endpoint; use the native one"
            )
        for name, value in (("text_type", text_type), ("instruct", instruct)):
            if value is not None:
                raise InvalidInputError(
                    f"{name} needs the native endpoint; the OpenAI-compatible one has no such "
                    "field and embeds queries and documents alike"
                )
        if output_type != "dense":
            raise InvalidInputError(
                "sparse output needs the native endpoint; the OpenAI-compatible one is dense only"
            )
    if dimension is not None:
        if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension < 1:
            raise InvalidInputError(f"dimension must be a positive int, got {dimension!r}")
        if spec.dimensions and dimension not in spec.dimensions:
            allowed = ", ".join(str(d) for d in spec.dimensions)
            raise InvalidInputError(
                f"dimension {dimension} is not offered by {spec.name}; allowed: {allowed}"
            )
    if text_type is not None and text_type not in _TEXT_TYPES:
        raise InvalidInputError(f"text_type must be 'query' or 'document', got {text_type!r}")
    if output_type not in _OUTPUT_TYPES:
        raise InvalidInputError(
            f"output_type must be one of {', '.join(_OUTPUT_TYPES)}; got {output_type!r}"
        )
    if output_type != "dense" and not spec.supports_sparse:
        raise InvalidInputError(
            f"{spec.name} has no sparse output (output_type={output_type!r}); models with it: "
            f"{_models_with(lambda s: s.supports_sparse)}"
        )
    if instruct is not None:
        if not spec.supports_instruct:
            raise InvalidInputError(
                f"{spec.name} ignores instruct; leave it unset, or use a model that applies it: "
                f"{_models_with(lambda s: s.supports_instruct and s.endpoint == 'text')}"
            )
        if text_type != "query":
            raise InvalidInputError(
                "instruct only takes effect on queries (text_type='query'); "
                f"got text_type={text_type!r}"
            )
        if not isinstance(instruct, str) or not instruct.strip():
            raise InvalidInputError("instruct must be a non-empty string")


def plan_requests(count: int, max_inputs: int) -> list[range]:
    """Split ``count`` inputs into the fewest requests of at most ``max_inputs``.

    The requests are balanced (sizes differ by at most one) so that, sent side by side, none
    is much slower than the others.

    >>> [len(r) for r in plan_requests(25, 10)]
    [9, 8, 8]
    """
    if max_inputs < 1:
        raise ValueError("max_inputs must be >= 1")
    if count <= 0:
        return []
    requests = -(-count // max_inputs)
    base, extra = divmod(count, requests)
    ranges: list[range] = []
    start = 0
    for i in range(requests):
        size = base + (1 if i < extra else 0)
        ranges.append(range(start, start + size))
        start += size
    return ranges


# --- bodies ----------------------------------------------------------------------------------


def native_body(
    model: str,
    texts: Sequence[str],
    *,
    dimension: int | None,
    text_type: TextType | None,
    output_type: OutputType,
    instruct: str | None,
) -> dict[str, typing.Any]:
    """Body of the native endpoint; only parameters the caller set are sent."""
    parameters: dict[str, typing.Any] = {}
    if text_type is not None:
        parameters["text_type"] = text_type
    if dimension is not None:
        parameters["dimension"] = dimension
    if output_type != "dense":
        parameters["output_type"] = output_type
    if instruct is not None:
        parameters["instruct"] = instruct
    body: dict[str, typing.Any] = {"model": model, "input": {"texts": list(texts)}}
    if parameters:
        body["parameters"] = parameters
    return body


def compatible_body(
    model: str, texts: Sequence[str], *, dimension: int | None
) -> dict[str, typing.Any]:
    """Body of the OpenAI-compatible ``/embeddings``; floats asked for explicitly."""
    body: dict[str, typing.Any] = {
        "model": model,
        "input": list(texts),
        "encoding_format": "float",
    }
    if dimension is not None:
        body["dimensions"] = dimension
    return body


def plan_text_call(
    texts: Sequence[str],
    *,
    spec: ModelSpec,
    endpoints: Endpoints,
    protocol: WireProtocol,
    dimension: int | None,
    text_type: TextType | None,
    output_type: OutputType,
    instruct: str | None,
    token_counter: TokenCounter | None,
    extra_body: Mapping[str, typing.Any] | None = None,
) -> TextCall:
    """Check everything, then cut the call into requests by the model's limits.

    Raises:
        InvalidInputError: Before anything is sent, for a bad input (its index) or option.
    """
    check_options(
        spec,
        dimension=dimension,
        text_type=text_type,
        output_type=output_type,
        instruct=instruct,
        protocol=protocol,
    )
    check_texts(texts, spec, token_counter=token_counter)
    requests = []
    for indices in plan_requests(len(texts), spec.max_batch_size):
        chunk = [texts[i] for i in indices]
        if protocol == "compatible":
            url = endpoints.compatible_base + COMPATIBLE_EMBEDDINGS_PATH
            body = compatible_body(spec.name, chunk, dimension=dimension)
        else:
            url = endpoints.native_base + TEXT_EMBEDDING_PATH
            body = native_body(
                spec.name,
                chunk,
                dimension=dimension,
                text_type=text_type,
                output_type=output_type,
                instruct=instruct,
            )
        label = f"{spec.name} inputs {indices.start}..{indices.stop - 1}"
        request = APIRequest("POST", url, content=dumps(merge_body(body, extra_body)), label=label)
        requests.append(PlannedRequest(request, indices))
    return TextCall(
        spec=spec,
        protocol=protocol,
        output_type=output_type,
        expected_dimension=dimension or spec.default_dimension,
        region=endpoints.region,
        requests=requests,
    )


# --- answers ---------------------------------------------------------------------------------


def _sparse(raw: object, position: int, request_id: str | None) -> SparseVector:
    if not isinstance(raw, list):
        raise malformed(f"sparse_embedding {position} is not a list", request_id)
    entries: list[tuple[int, float, str | None]] = []
    for entry in raw:
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("index"), int)
            or isinstance(entry.get("index"), bool)
            or not isinstance(entry.get("value"), (int, float))
        ):
            raise malformed(
                f"sparse_embedding {position} has an entry without index/value", request_id
            )
        token = entry.get("token")
        entries.append(
            (entry["index"], float(entry["value"]), token if isinstance(token, str) else None)
        )
    entries.sort(key=lambda e: e[0])
    tokens = tuple(e[2] or "" for e in entries) if all(e[2] is not None for e in entries) else None
    return SparseVector(
        indices=tuple(e[0] for e in entries),
        values=tuple(e[1] for e in entries),
        tokens=tokens,
    )


def parse_native(
    payload: object,
    count: int,
    *,
    output_type: OutputType,
    expected_dimension: int | None,
    request_id: str | None,
) -> RequestOutput:
    """Parse a native 200 body into vectors in input order (re-ordered by ``text_index``)."""
    body = as_dict(payload, "the body", request_id)
    request_id = body.get("request_id") or request_id
    output = as_dict(body.get("output"), "output", request_id)
    items = place_by_index(output.get("embeddings"), count, "text_index", request_id)
    dense: list[list[float]] | None = None
    sparse: list[SparseVector] | None = None
    if output_type in ("dense", "dense&sparse"):
        dense = [parse_vector(item.get("embedding"), i, request_id) for i, item in enumerate(items)]
        check_dimensions(dense, expected_dimension, request_id)
    if output_type in ("sparse", "dense&sparse"):
        # With "sparse" only, whether "embedding" is omitted or empty is not documented; it is
        # not read at all then, so either answer works.
        sparse = [
            _sparse(item.get("sparse_embedding"), i, request_id) for i, item in enumerate(items)
        ]
    return RequestOutput(dense, sparse, total_tokens(body.get("usage"), request_id), request_id)


def parse_compatible(
    payload: object, count: int, *, expected_dimension: int | None, request_id: str | None
) -> RequestOutput:
    """Parse an OpenAI-compatible 200 body (re-ordered by ``data[].index``)."""
    body = as_dict(payload, "the body", request_id)
    request_id = body.get("request_id") or body.get("id") or request_id
    items = place_by_index(body.get("data"), count, "index", request_id)
    dense = [parse_vector(item.get("embedding"), i, request_id) for i, item in enumerate(items)]
    check_dimensions(dense, expected_dimension, request_id)
    return RequestOutput(dense, None, total_tokens(body.get("usage"), request_id), request_id)


def parser(call: TextCall, planned: PlannedRequest) -> Callable[[Answer], RequestOutput]:
    """The parser of one request's answer."""
    count = len(planned.indices)

    def parse(answer: Answer) -> RequestOutput:
        if call.protocol == "compatible":
            return parse_compatible(
                answer.payload,
                count,
                expected_dimension=call.expected_dimension,
                request_id=answer.request_id,
            )
        return parse_native(
            answer.payload,
            count,
            output_type=call.output_type,
            expected_dimension=call.expected_dimension,
            request_id=answer.request_id,
        )

    return parse


def usage_hook(call: TextCall) -> Callable[[RequestOutput], Usage]:
    """What one request billed, priced from the registry."""
    return lambda output: usage_for(call.spec, output.total_tokens, 1, call.region)


def finish(call: TextCall, outputs: Sequence[RequestOutput]) -> EmbeddingResult:
    """Join the requests' outputs into the call's result, in the caller's order."""
    dense: list[list[float]] | None = None
    sparse: list[SparseVector] | None = None
    if call.output_type != "sparse":
        dense = [vector for out in outputs for vector in (out.dense or ())]
    if call.output_type != "dense":
        sparse = [vector for out in outputs for vector in (out.sparse or ())]
    tokens = sum(out.total_tokens for out in outputs)
    return EmbeddingResult(
        model=call.spec.name,
        dense=dense,
        sparse=sparse,
        usage=usage_for(call.spec, tokens, len(outputs), call.region),
        request_ids=tuple(out.request_id or "" for out in outputs),
    )
