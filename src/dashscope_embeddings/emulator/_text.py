"""The text-embedding endpoints, native and OpenAI-compatible ([ref 0]-[ref 2], [ref 4]).

* ``POST /api/v1/services/embeddings/text-embedding/text-embedding`` (native):
  ``{"model", "input": {"texts"}, "parameters": {"dimension", "text_type", "output_type",
  "instruct"}}``;
* ``POST /compatible-mode/v1/embeddings`` (OpenAI-compatible): ``{"model", "input",
  "dimensions", "encoding_format"}``.

Written from the protocol reference, not from the client: it rejects what the service
rejects, with the service's status codes and JSON bodies. Every per-model fact (limits,
dimensions, sparse / instruct / compatible-mode support, endpoint) comes from
:mod:`dashscope_embeddings._registry`. Requests pass the gateway first (:mod:`._gateway`),
which holds their in-flight slot until the response has been sent. The job parsing and the
success bodies are shared with the Batch API and the asynchronous tasks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from dashscope_embeddings._registry import MODELS, ModelSpec
from dashscope_embeddings.emulator import _lexical
from dashscope_embeddings.emulator._errors import (
    Json,
    Protocol,
    ServiceError,
    algo_invalid,
    bad_request,
    model_not_found,
)
from dashscope_embeddings.emulator._gateway import Admission, admit, inspect_texts
from dashscope_embeddings.emulator._responses import EmulatorResponse, finish_response, render_json
from dashscope_embeddings.emulator._state import ServerState
from dashscope_embeddings.emulator._vectors import (
    VECTOR_CACHE,
    DenseVector,
    analyze_text,
    response_order,
)

__all__ = [
    "COMPATIBLE_PATH",
    "NATIVE_TEXT_PATH",
    "TextJob",
    "choice",
    "compatible_job",
    "compatible_success",
    "dense_values",
    "checked_dimension",
    "handle",
    "matches",
    "native_job",
    "native_success",
    "parse_json",
    "total_tokens",
]

NATIVE_TEXT_PATH = "/api/v1/services/embeddings/text-embedding/text-embedding"
COMPATIBLE_PATH = "/compatible-mode/v1/embeddings"

# The registry leaves dimensions unknown for some models ("not checked"); the emulator then
# returns this size by default and accepts any size up to the maximum below.
_FALLBACK_DIMENSION = 1024
_MAX_UNCHECKED_DIMENSION = 8192
_TEXT_TYPES = ("query", "document")
_OUTPUT_TYPES = ("dense", "sparse", "dense&sparse")
_ENCODINGS = ("float", "base64")
_TEXT_TYPE_WEIGHT = 0.1  # query and document vectors of one text differ, but stay close
_INSTRUCT_WEIGHT = 0.2


def matches(path: str) -> bool:
    """Whether this module serves ``path`` (the two text-embedding paths)."""
    return path in (NATIVE_TEXT_PATH, COMPATIBLE_PATH)


async def handle(state: ServerState, request: Request, raw: bytes) -> Response:  # noqa: ARG001
    """Answer one request to a text endpoint.

    Args:
        state: The emulator's shared state.
        request: The request; ``request.state.request_id`` and ``request.state.parsed_body``
            (``(is_json, value)`` of :func:`parse_json`) are already set by the router.
        raw: The request body.

    Returns:
        The answer; its in-flight slot, if it took one, is given back once it has been sent.
    """
    protocol: Protocol = "native" if request.url.path == NATIVE_TEXT_PATH else "compatible"
    if request.method != "POST":
        error = ServiceError(
            405,
            "MethodNotAllowed",
            f"Method {request.method} is not allowed; use POST.",
            compat_code="method_not_allowed",
            headers={"allow": "POST"},
        )
        body = render_json(error.body(protocol, request.state.request_id))
        return finish_response(state, error.status, body, error.headers, None)
    admission = await admit(state, request, protocol)
    try:
        response = admission.response
        if response is None:
            response = _answer(state, request, admission, request.state.parsed_body)
    except BaseException:
        admission.release()
        raise
    if isinstance(response, EmulatorResponse):
        response.on_sent = admission.release  # the slot is held until the body has been sent
    else:  # pragma: no cover - the gateway and _answer only build EmulatorResponse
        admission.release()
    return response


@dataclass(frozen=True)
class TextJob:
    """One validated text request: the model, its texts and their analyses, the options."""

    spec: ModelSpec
    texts: tuple[str, ...]
    analyses: list[_lexical.Analysis]
    dimension: int
    text_type: str = "document"
    output_type: str = "dense"
    instruct: str | None = None
    encoding: str = "float"


def _resolve_model(body: Json, protocol: Protocol, async_header: bool) -> ModelSpec:
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise bad_request("Model not specified.")
    spec = MODELS.get(name)
    if protocol == "compatible":
        if spec is None or not spec.supports_compatible_mode:
            raise model_not_found(name)
        return spec
    if spec is None:
        raise model_not_found(name)
    if spec.endpoint == "multimodal":  # [ref 3]: a multimodal model on the text path
        raise bad_request("url error")
    if spec.endpoint == "async_task" and not async_header:  # [ref 5.3]
        raise ServiceError(
            403, "AccessDenied", "current user api does not support synchronous calls"
        )
    if spec.endpoint == "text" and async_header:  # [ref 5.3] "sync/async mode not allowed"
        raise ServiceError(
            403, "AccessDenied", "current user api does not support asynchronous calls"
        )
    if spec.endpoint == "async_task":
        raise ServiceError(501, "NotImplemented", "The emulator does not run asynchronous tasks.")
    return spec


def _analyze_texts(
    value: Any, spec: ModelSpec, name: str
) -> tuple[list[str], list[_lexical.Analysis]]:
    # The SDK always sends a list; a bare string is accepted as one text, as the service is
    # lenient there (and compatible mode documents it).
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise bad_request(f"Required parameter '{name}' missing or invalid: a list of strings.")
    if not texts:
        raise algo_invalid("batch size is invalid, it should not be smaller than 1.")
    limit = spec.max_batch_size
    if len(texts) > limit:
        raise algo_invalid(f"batch size is invalid, it should not be larger than {limit}.")
    analyses = [analyze_text(text) for text in texts]
    max_tokens = spec.max_tokens_per_input
    for analysis in analyses:
        if not 1 <= analysis.token_count <= max_tokens:
            # [ref 5.2]: this wording is [UNCONFIRMED] for embeddings (it is the LLM endpoints').
            raise algo_invalid(f"Range of input length should be [1, {max_tokens}]")
    return texts, analyses


def checked_dimension(spec: ModelSpec, value: Any) -> int:
    """The requested dimension, checked against the model (the default when ``None``)."""
    if value is None:
        return spec.default_dimension or _FALLBACK_DIMENSION
    # Strict: a JSON int only, not "1024" or true.
    valid = isinstance(value, int) and not isinstance(value, bool)
    if spec.dimensions:
        if valid and value in spec.dimensions:
            return int(value)
        allowed = ", ".join(str(d) for d in sorted(spec.dimensions))
        message = f"dimension is invalid, it should be one of [{allowed}]."
    elif valid and 1 <= value <= _MAX_UNCHECKED_DIMENSION:
        return int(value)
    else:
        message = f"dimension is invalid, it should be in [1, {_MAX_UNCHECKED_DIMENSION}]."
    raise algo_invalid(message, "parameters.dimension")


def choice(value: Any, allowed: tuple[str, ...], default: str, name: str) -> str:
    """``value`` if it is one of ``allowed`` (``default`` when ``None``)."""
    if value is None:
        return default
    if value not in allowed:
        raise algo_invalid(f"{name} should be one of {', '.join(allowed)}.", f"parameters.{name}")
    return str(value)


def native_job(body: Json, async_header: bool) -> TextJob:
    """Validate a native request body."""
    spec = _resolve_model(body, "native", async_header)
    inp = body.get("input")
    if not isinstance(inp, dict):
        raise bad_request("Required parameter 'input' missing or invalid.")
    texts, analyses = _analyze_texts(inp.get("texts"), spec, "input.texts")
    params = body.get("parameters")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise bad_request("Parameter 'parameters' should be an object.")
    # Unknown keys in `parameters` are ignored, as the service does ([ref 1.1], [ref 8.4]).
    output_type = choice(params.get("output_type"), _OUTPUT_TYPES, "dense", "output_type")
    if output_type != "dense" and not spec.supports_sparse:
        raise algo_invalid(
            f"output_type {output_type} is not supported by model {spec.name}.",
            "parameters.output_type",
        )
    instruct = params.get("instruct")
    if instruct is not None and not isinstance(instruct, str):
        raise bad_request("Parameter 'instruct' should be a string.")
    return TextJob(
        spec=spec,
        texts=tuple(texts),
        analyses=analyses,
        dimension=checked_dimension(spec, params.get("dimension")),
        text_type=choice(params.get("text_type"), _TEXT_TYPES, "document", "text_type"),
        output_type=output_type,
        instruct=instruct,
    )


def compatible_job(body: Json) -> TextJob:
    """Validate an OpenAI-compatible request body."""
    spec = _resolve_model(body, "compatible", async_header=False)
    texts, analyses = _analyze_texts(body.get("input"), spec, "input")
    # [ref 2.1]: S4 says "only float"; whether base64 is honoured is [UNCONFIRMED]. The emulator
    # honours it (the openai SDK sends base64 by default), so clients must decode both forms.
    encoding = choice(body.get("encoding_format"), _ENCODINGS, "float", "encoding_format")
    # [ref 2.3]: text_type / output_type / instruct are not documented here ([UNCONFIRMED]); like
    # every other unknown key they are ignored, so vectors are always document vectors.
    return TextJob(
        spec=spec,
        texts=tuple(texts),
        analyses=analyses,
        dimension=checked_dimension(spec, body.get("dimensions")),
        encoding=encoding,
    )


def _extra_features(job: TextJob) -> list[tuple[str, float]]:
    extra = [_lexical.marker_feature("text_type", job.text_type, _TEXT_TYPE_WEIGHT)]
    # [ref 1.1]: instruct only takes effect for models that support it, with text_type=query; the
    # service silently ignores it otherwise.
    if job.instruct and job.spec.supports_instruct and job.text_type == "query":
        extra.append(_lexical.marker_feature("instruct", job.instruct, _INSTRUCT_WEIGHT))
    return extra


def dense_values(job: TextJob, analysis: _lexical.Analysis) -> list[float]:
    """The dense vector of one analysed text of ``job``."""
    return _lexical.dense_vector(
        analysis, model=job.spec.name, dimension=job.dimension, extra=_extra_features(job)
    )


def _cached_dense(job: TextJob, i: int, state: ServerState) -> DenseVector:
    """The dense vector of text ``i``, from the cache when it was computed before."""
    effective_instruct = (
        job.instruct
        if job.instruct and job.spec.supports_instruct and job.text_type == "query"
        else None
    )
    key = (job.spec.name, job.dimension, job.texts[i], job.text_type, effective_instruct)
    found = VECTOR_CACHE.get(key)
    if found is not None:
        state.count_vector(hit=True)
        return found
    state.count_vector(hit=False)
    vector = DenseVector(dense_values(job, job.analyses[i]), as_json=job.encoding == "float")
    VECTOR_CACHE.put(key, vector)
    return vector


def native_success(job: TextJob, state: ServerState, request_id: str) -> Json:
    """The native success body."""
    embeddings: list[Json] = []
    for i in response_order(len(job.analyses), state.seed, state.shuffle):
        item: Json = {}
        if job.output_type != "dense":
            item["sparse_embedding"] = _lexical.sparse_vector(job.analyses[i])
        # [ref 1.2]: with output_type "sparse" it is [UNCONFIRMED] whether "embedding" is omitted or
        # empty; the emulator omits it, the stricter choice for clients.
        if job.output_type != "sparse":
            item["embedding"] = _cached_dense(job, i, state)
        item["text_index"] = i
        embeddings.append(item)
    return {
        "output": {"embeddings": embeddings},
        "usage": {"total_tokens": total_tokens(job)},
        "request_id": request_id,
    }


def compatible_success(job: TextJob, state: ServerState, request_id: str) -> Json:
    """The OpenAI-compatible success body."""
    data: list[Json] = []
    for i in response_order(len(job.analyses), state.seed, state.shuffle):
        vector = _cached_dense(job, i, state)
        embedding = vector.base64() if job.encoding == "base64" else vector
        data.append({"embedding": embedding, "index": i, "object": "embedding"})
    total = total_tokens(job)
    # [ref 2.2]: the success body carries the request id as "id" only (errors carry both keys).
    return {
        "data": data,
        "model": job.spec.name,
        "object": "list",
        "usage": {"prompt_tokens": total, "total_tokens": total},
        "id": request_id,
    }


def total_tokens(job: TextJob) -> int:
    """The tokens billed for ``job`` (its ``usage``)."""
    return sum(a.token_count for a in job.analyses)


def parse_json(raw: bytes) -> tuple[bool, Any]:
    """``(True, value)`` for a JSON body, else ``(False, None)``."""
    if not raw:
        return False, None
    try:
        return True, json.loads(raw)
    except ValueError:  # includes JSONDecodeError and UnicodeDecodeError
        return False, None


def _answer(
    state: ServerState, request: Request, admission: Admission, parsed: tuple[bool, Any]
) -> Response:
    """The service side of a text request that passed the gateway."""
    try:
        ok, body = parsed
        if not ok:
            raise bad_request("The request body is not valid JSON.")
        if not isinstance(body, dict):
            raise bad_request("The request body should be a JSON object.")
        if admission.protocol == "native":
            async_header = request.headers.get("x-dashscope-async", "").lower() == "enable"
            job = native_job(body, async_header)
        else:
            job = compatible_job(body)
        inspect_texts(state, list(job.texts))
        admission.charge(total_tokens(job))
        if admission.protocol == "native":
            payload = native_success(job, state, admission.request_id)
        else:
            payload = compatible_success(job, state, admission.request_id)
        return admission.respond(200, payload)
    except ServiceError as error:
        return admission.error(error)
