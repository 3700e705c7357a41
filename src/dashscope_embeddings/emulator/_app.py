"""The emulator's Starlette application: routing, validation, faults and error bodies.

Written from the protocol reference (``dashscope-api.md`` §0-§2, §4-§6), not from the client:
it rejects what the service rejects, with the service's status codes and JSON bodies. Every
per-model fact (limits, dimensions, sparse / instruct / compatible-mode support, endpoint)
comes from :mod:`dashscope_embeddings._registry`.

Order of processing for the two embedding endpoints: injected fault (FIFO) -> authentication
-> in-flight limit (429) -> latency -> random ``InternalError`` -> body validation -> vectors.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from dashscope_embeddings._registry import MODELS, ModelSpec
from dashscope_embeddings.emulator import _lexical

if TYPE_CHECKING:
    from dashscope_embeddings.emulator import _ServerState

__all__ = ["COMPATIBLE_PATH", "NATIVE_TEXT_PATH", "create_app"]

NATIVE_TEXT_PATH = "/api/v1/services/embeddings/text-embedding/text-embedding"
COMPATIBLE_PATH = "/compatible-mode/v1/embeddings"

Protocol = Literal["native", "compatible"]
Json = dict[str, Any]

# The registry leaves dimensions unknown for some models ("not checked"); the emulator then
# returns this size by default and accepts any size up to the maximum below.
_FALLBACK_DIMENSION = 1024
_MAX_UNCHECKED_DIMENSION = 8192
_TEXT_TYPES = ("query", "document")
_OUTPUT_TYPES = ("dense", "sparse", "dense&sparse")
_ENCODINGS = ("float", "base64")
_TEXT_TYPE_WEIGHT = 0.1  # query and document vectors of one text differ, but stay close
_INSTRUCT_WEIGHT = 0.2


class ApiError(Exception):
    """An error answer, renderable in either protocol's shape."""

    def __init__(
        self,
        status: int,
        code: str | None,
        message: str,
        *,
        compat_code: str | None = None,
        compat_message: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.compat_code = compat_code if compat_code is not None else code
        self.compat_message = compat_message if compat_message is not None else message
        self.headers = headers or {}

    def body(self, protocol: Protocol, request_id: str) -> Json:
        """The JSON error body of ``protocol`` (§5.1 native, §5.2 compatible)."""
        if protocol == "native":
            body: Json = {"request_id": request_id}
            if self.code is not None:
                body["code"] = self.code
            body["message"] = self.message
            return body
        error = {
            "message": self.compat_message,
            "type": self.compat_code,  # §5.2: the observed body repeats the code as the type
            "param": None,
            "code": self.compat_code,
        }
        return {"error": error, "id": request_id, "request_id": request_id}


def _bad_request(message: str) -> ApiError:
    """A malformed request (not an algorithm-side parameter check)."""
    return ApiError(400, "InvalidParameter", message)


def _algo_invalid(message: str, param: str = "input.contents") -> ApiError:
    """A parameter rejected by the model service; compatible wording per §5.2."""
    compat = f"<400> InternalError.Algo.InvalidParameter: Value error, {message}: {param}"
    return ApiError(400, "InvalidParameter", message, compat_message=compat)


def _model_not_found(model: str) -> ApiError:
    # §5.3: native ModelNotFound; compatible model_not_found is [UNCONFIRMED], taken as is.
    return ApiError(
        404,
        "ModelNotFound",
        "Model not exist.",
        compat_code="model_not_found",
        compat_message=f"The model `{model}` does not exist or you do not have access to it.",
    )


def _invalid_api_key() -> ApiError:
    return ApiError(
        401,
        "InvalidApiKey",
        "Invalid API-key provided.",
        compat_code="invalid_api_key",
        compat_message="Incorrect API key provided.",
    )


def _throttled() -> ApiError:
    # §5.3: the compatible code of Throttling.RateQuota is [UNCONFIRMED]; "limit_requests".
    return ApiError(
        429,
        "Throttling.RateQuota",
        "Requests rate limit exceeded, please try again later.",
        compat_code="limit_requests",
    )


def _internal_error() -> ApiError:
    # §5.3: the compatible code "internal_error" is [UNCONFIRMED].
    return ApiError(
        500,
        "InternalError",
        "An internal error has occured, please try again later or contact service support.",
        compat_code="internal_error",
    )


@dataclass(frozen=True)
class _Job:
    spec: ModelSpec
    analyses: list[_lexical.Analysis]
    dimension: int
    text_type: str = "document"
    output_type: str = "dense"
    instruct: str | None = None
    encoding: str = "float"


def _resolve_model(body: Json, protocol: Protocol, async_header: bool) -> ModelSpec:
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise _bad_request("Model not specified.")
    spec = MODELS.get(name)
    if protocol == "compatible":
        if spec is None or not spec.supports_compatible_mode:
            raise _model_not_found(name)
        return spec
    if spec is None:
        raise _model_not_found(name)
    if spec.endpoint == "multimodal":  # §3: a multimodal model on the text path
        raise _bad_request("url error")
    if spec.endpoint == "async_task" and not async_header:  # §5.3
        raise ApiError(403, "AccessDenied", "current user api does not support synchronous calls")
    if spec.endpoint == "text" and async_header:  # §5.3 "sync/async mode not allowed"
        raise ApiError(403, "AccessDenied", "current user api does not support asynchronous calls")
    if spec.endpoint == "async_task":
        raise ApiError(501, "NotImplemented", "The emulator does not run asynchronous tasks.")
    return spec


def _analyze_texts(value: Any, spec: ModelSpec, name: str) -> list[_lexical.Analysis]:
    # The SDK always sends a list; a bare string is accepted as one text, as the service is
    # lenient there (and compatible mode documents it).
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise _bad_request(f"Required parameter '{name}' missing or invalid: a list of strings.")
    if not texts:
        raise _algo_invalid("batch size is invalid, it should not be smaller than 1.")
    limit = spec.max_batch_size
    if len(texts) > limit:
        raise _algo_invalid(f"batch size is invalid, it should not be larger than {limit}.")
    analyses = [_lexical.analyze(text) for text in texts]
    max_tokens = spec.max_tokens_per_input
    for analysis in analyses:
        if not 1 <= analysis.token_count <= max_tokens:
            # §5.2: this wording is [UNCONFIRMED] for embeddings (it is the LLM endpoints').
            raise _algo_invalid(f"Range of input length should be [1, {max_tokens}]")
    return analyses


def _dimension(spec: ModelSpec, value: Any) -> int:
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
    raise _algo_invalid(message, "parameters.dimension")


def _choice(value: Any, allowed: tuple[str, ...], default: str, name: str) -> str:
    if value is None:
        return default
    if value not in allowed:
        raise _algo_invalid(f"{name} should be one of {', '.join(allowed)}.", f"parameters.{name}")
    return str(value)


def _native_job(body: Json, async_header: bool) -> _Job:
    spec = _resolve_model(body, "native", async_header)
    inp = body.get("input")
    if not isinstance(inp, dict):
        raise _bad_request("Required parameter 'input' missing or invalid.")
    analyses = _analyze_texts(inp.get("texts"), spec, "input.texts")
    params = body.get("parameters")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise _bad_request("Parameter 'parameters' should be an object.")
    # Unknown keys in `parameters` are ignored, as the service does (§1.1, §8.4).
    output_type = _choice(params.get("output_type"), _OUTPUT_TYPES, "dense", "output_type")
    if output_type != "dense" and not spec.supports_sparse:
        raise _algo_invalid(
            f"output_type {output_type} is not supported by model {spec.name}.",
            "parameters.output_type",
        )
    instruct = params.get("instruct")
    if instruct is not None and not isinstance(instruct, str):
        raise _bad_request("Parameter 'instruct' should be a string.")
    return _Job(
        spec=spec,
        analyses=analyses,
        dimension=_dimension(spec, params.get("dimension")),
        text_type=_choice(params.get("text_type"), _TEXT_TYPES, "document", "text_type"),
        output_type=output_type,
        instruct=instruct,
    )


def _compatible_job(body: Json) -> _Job:
    spec = _resolve_model(body, "compatible", async_header=False)
    analyses = _analyze_texts(body.get("input"), spec, "input")
    # §2.1: S4 says "only float"; whether base64 is honoured is [UNCONFIRMED]. The emulator
    # honours it (the openai SDK sends base64 by default), so clients must decode both forms.
    encoding = _choice(body.get("encoding_format"), _ENCODINGS, "float", "encoding_format")
    # §2.3: text_type / output_type / instruct are not documented here ([UNCONFIRMED]); like
    # every other unknown key they are ignored, so vectors are always document vectors.
    return _Job(
        spec=spec,
        analyses=analyses,
        dimension=_dimension(spec, body.get("dimensions")),
        encoding=encoding,
    )


def _order(n: int, seed: int, shuffle: bool) -> list[int]:
    """Deterministic non-identity permutation (for n >= 2): clients must sort by index."""
    indices = list(range(n))
    if shuffle and n > 1:
        random.Random(f"{seed}:{n}").shuffle(indices)
        if indices == sorted(indices):
            indices.reverse()
    return indices


def _dense(job: _Job, analysis: _lexical.Analysis) -> list[float]:
    extra = [_lexical.marker_feature("text_type", job.text_type, _TEXT_TYPE_WEIGHT)]
    # §1.1: instruct only takes effect for models that support it, with text_type=query; the
    # service silently ignores it otherwise.
    if job.instruct and job.spec.supports_instruct and job.text_type == "query":
        extra.append(_lexical.marker_feature("instruct", job.instruct, _INSTRUCT_WEIGHT))
    return _lexical.dense_vector(
        analysis, model=job.spec.name, dimension=job.dimension, extra=extra
    )


def _native_success(job: _Job, state: _ServerState, request_id: str) -> Json:
    embeddings: list[Json] = []
    for i in _order(len(job.analyses), state.seed, state.shuffle):
        item: Json = {}
        if job.output_type != "dense":
            item["sparse_embedding"] = _lexical.sparse_vector(job.analyses[i])
        # §1.2: with output_type "sparse" it is [UNCONFIRMED] whether "embedding" is omitted or
        # empty; the emulator omits it, the stricter choice for clients.
        if job.output_type != "sparse":
            item["embedding"] = _dense(job, job.analyses[i])
        item["text_index"] = i
        embeddings.append(item)
    total = sum(a.token_count for a in job.analyses)
    return {
        "output": {"embeddings": embeddings},
        "usage": {"total_tokens": total},
        "request_id": request_id,
    }


def _compatible_success(job: _Job, state: _ServerState, request_id: str) -> Json:
    data: list[Json] = []
    for i in _order(len(job.analyses), state.seed, state.shuffle):
        vector = _dense(job, job.analyses[i])
        embedding = _lexical.encode_base64(vector) if job.encoding == "base64" else vector
        data.append({"embedding": embedding, "index": i, "object": "embedding"})
    total = sum(a.token_count for a in job.analyses)
    # §2.2: the success body carries the request id as "id" only (errors carry both keys).
    return {
        "data": data,
        "model": job.spec.name,
        "object": "list",
        "usage": {"prompt_tokens": total, "total_tokens": total},
        "id": request_id,
    }


def _authorized(request: Request, api_key: str | None) -> bool:
    # Only `Authorization: Bearer <key>` (§0.2); X-DashScope-ApiKey is documented for the
    # multimodal endpoint only, so it is not accepted here.
    scheme, _, key = request.headers.get("authorization", "").strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        return False
    return api_key is None or key == api_key


async def _embedding(
    state: _ServerState, request: Request, protocol: Protocol, parsed: tuple[bool, Any]
) -> tuple[int, Json, dict[str, str]]:
    request_id: str = request.state.request_id
    fault = state.pop_fault()
    if fault is not None:
        if fault.body is not None:
            return fault.status, fault.body, dict(fault.headers)
        error = ApiError(fault.status, fault.code, fault.message, headers=dict(fault.headers))
        return fault.status, error.body(protocol, request_id), error.headers
    if not _authorized(request, state.api_key):
        raise _invalid_api_key()
    state.in_flight += 1
    try:
        if state.max_in_flight is not None and state.in_flight > state.max_in_flight:
            raise _throttled()
        if state.latency > 0:
            await asyncio.sleep(state.latency)
        if state.draw_error():
            raise _internal_error()
        ok, body = parsed
        if not ok:
            raise _bad_request("The request body is not valid JSON.")
        if not isinstance(body, dict):
            raise _bad_request("The request body should be a JSON object.")
        if protocol == "native":
            async_header = request.headers.get("x-dashscope-async", "").lower() == "enable"
            return 200, _native_success(_native_job(body, async_header), state, request_id), {}
        return 200, _compatible_success(_compatible_job(body), state, request_id), {}
    finally:
        state.in_flight -= 1


def _parse_json(raw: bytes) -> tuple[bool, Any]:
    if not raw:
        return False, None
    try:
        return True, json.loads(raw)
    except ValueError:  # includes JSONDecodeError and UnicodeDecodeError
        return False, None


async def _dispatch(
    state: _ServerState, request: Request, parsed: tuple[bool, Any]
) -> tuple[int, Json, dict[str, str]]:
    path = request.url.path
    protocol: Protocol = "compatible" if path.startswith("/compatible-mode/") else "native"
    try:
        if path not in (NATIVE_TEXT_PATH, COMPATIBLE_PATH):
            raise ApiError(404, "NotFound", f"Not found: {path}", compat_code="not_found")
        if request.method != "POST":
            raise ApiError(
                405,
                "MethodNotAllowed",
                f"Method {request.method} is not allowed; use POST.",
                compat_code="method_not_allowed",
                headers={"allow": "POST"},
            )
        return await _embedding(state, request, protocol, parsed)
    except ApiError as error:
        return error.status, error.body(protocol, request.state.request_id), dict(error.headers)


class _Endpoint:
    """ASGI endpoint for every path and method (a class, so the route accepts any method).

    The text endpoints are served here; each other endpoint family (multimodal, files and
    batches, asynchronous tasks) lives in a module of its own exposing
    ``matches(path) -> bool`` and ``async handle(state, request, raw_body) -> Response``.
    """

    def __init__(self, state: _ServerState) -> None:
        self._state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        request_id = str(uuid.uuid4())
        request.state.request_id = request_id
        raw = await request.body()
        parsed = _parse_json(raw)
        for family in _families():
            if family.matches(request.url.path):
                response: Response = await family.handle(self._state, request, raw)
                response.headers["x-request-id"] = request_id
                self._state.record(
                    request.method,
                    request.url.path,
                    request.headers.raw,
                    parsed[1],
                    response.status_code,
                )
                await response(scope, receive, send)
                return
        status, payload, headers = await _dispatch(self._state, request, parsed)
        headers["x-request-id"] = request_id
        self._state.record(request.method, request.url.path, request.headers.raw, parsed[1], status)
        response = JSONResponse(payload, status_code=status, headers=headers)
        await response(scope, receive, send)


def _families() -> tuple[Any, ...]:
    from dashscope_embeddings.emulator import _batch, _multimodal

    return (_multimodal, _batch)


def create_app(state: _ServerState) -> Starlette:
    """Build the ASGI application serving both embedding protocols from ``state``.

    Every request is answered with JSON (unknown paths 404, wrong methods 405) and recorded in
    ``state`` just before its response is sent.
    """
    return Starlette(routes=[Route("/{path:path}", _Endpoint(state))])
