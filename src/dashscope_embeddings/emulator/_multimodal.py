"""The emulator's multimodal embedding endpoint ([ref 0], [ref 3], [ref 5]).

``POST /api/v1/services/embeddings/multimodal-embedding/multimodal-embedding`` with
``{"model", "input": {"contents": [...]}, "parameters": {...}}``. Only registry models with
``endpoint == "multimodal"`` are served; every limit (content items, images per item, image
bytes, text tokens, dimensions, fusion mode, instruct) comes from
:mod:`dashscope_embeddings._registry`, the accepted formats from [ref 3.1].

Order of processing, as on the text endpoints: wrong method (405) -> queued fault (FIFO) ->
authentication -> in-flight limit (429) -> latency -> random ``InternalError`` -> body
validation -> vectors. Every error body has the native shape ``{"request_id", "code",
"message"}`` ([ref 5.1]); message wordings other than "url error" and the batch-size message are
[UNCONFIRMED] and chosen to name the offending field.

Vectors (deterministic, L2-normalised, float32-representable, seeded by the model name):

* a text is the lexical vector of :mod:`._lexical`, so texts sharing words are close;
* an image, video or audio clip is an *identity* part (16 hashed features of total weight 1,
  keyed by the SHA-256 of the decoded bytes or of the URL string) plus the lexical features of
  the words it carries: for a URL, the words of its path (``/img/red-shoe.jpg`` -> "img red
  shoe"); for a data URI, the text of PNG ``tEXt`` chunks and JPEG ``COM`` segments. So an
  image described by "red shoe" lies close to the text "red shoe" (cosine about 0.8) while
  images without words are near-orthogonal to everything else;
* ``multi_images`` and every fused vector are the normalised sum of the unit vectors of their
  parts (one-peace: weighted by each item's ``factor``).

URLs are never fetched: the emulator cannot see a remote file's bytes, size or duration, so only
the extension of a URL's path is checked against the model's formats (an unknown or missing
extension is accepted, as the service would sniff the downloaded content).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import re
import struct
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dashscope_embeddings._registry import MODELS, ModelSpec
from dashscope_embeddings.emulator import _lexical
from dashscope_embeddings.emulator._errors import (
    ServiceError,
    algo_invalid,
    bad_request,
    internal_error,
    invalid_api_key,
    throttled,
)
from dashscope_embeddings.emulator._gateway import bearer_key_accepted
from dashscope_embeddings.emulator._media import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    BadImage,
    image_formats,
    inspect_image,
    video_formats,
)
from dashscope_embeddings.emulator._state import ServerState
from dashscope_embeddings.emulator._vectors import response_order

__all__ = ["MULTIMODAL_PATH", "handle", "matches"]

MULTIMODAL_PATH = "/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding"

Json = dict[str, Any]

_LEGACY_MODEL = "multimodal-embedding-one-peace-v1"
_MODALITY_KEYS = ("text", "image", "video", "multi_images", "audio")
# [ref 3.2]: the `type` string of a fused vector is [UNCONFIRMED]; "fusion" is used. A multi_images
# item reports its key, "multi_images" (also [UNCONFIRMED]).
_FUSION_TYPE = "fusion"
# [ref 3.1] "Supported fusion combos" of the -2026-03-06 snapshots (several keys in one item).
_SAME_OBJECT_COMBOS = frozenset(
    {
        frozenset({"text", "image"}),
        frozenset({"text", "video"}),
        frozenset({"text", "multi_images"}),
        frozenset({"text", "image", "video"}),
    }
)

# Usage accounting. The service's token counts for media are [UNCONFIRMED]; the emulator bills
# an image like a Qwen-VL encoder (one token per 28x28 patch, clamped to [4, 1280]) when the
# decoded header gives its size, else a flat 1024. A URL video is assumed to last 10 s and to
# cost 256 tokens per sampled frame (frames = seconds x fps, at least 1).
_PATCH = 28
_MIN_IMAGE_TOKENS = 4
_MAX_IMAGE_TOKENS = 1280
_UNKNOWN_IMAGE_TOKENS = 1024
_ASSUMED_VIDEO_SECONDS = 10
_TOKENS_PER_FRAME = 256
_MAX_VIDEO_FRAMES = 64  # [ref 3.1]: max_video_frames "int <= 64" (snapshot models)

_IDENTITY_FEATURES = 16
_IDENTITY_WEIGHT = 1.0 / math.sqrt(_IDENTITY_FEATURES)  # the identity part has norm 1
_INSTRUCT_WEIGHT = 0.2
_NON_WORD = re.compile(r"[\W_]+")


def matches(path: str) -> bool:
    """Whether this module serves ``path`` (only the multimodal embedding path)."""
    return path == MULTIMODAL_PATH


async def handle(state: ServerState, request: Request, raw: bytes) -> Response:
    """Answer one request to the multimodal endpoint.

    Args:
        state: The emulator's shared state (key, faults, limits, order seed).
        request: The HTTP request; ``request.state.request_id`` is already set.
        raw: The request body.

    Returns:
        A JSON response: 200 with embeddings, or an error in the native shape ([ref 5.1]).
    """
    request_id: str = request.state.request_id
    try:
        if request.method != "POST":
            raise ServiceError(
                405,
                "MethodNotAllowed",
                f"Method {request.method} is not allowed; use POST.",
                headers={"allow": "POST"},
            )
        fault = state.pop_fault()
        if fault is not None:
            if fault.body is not None:
                return JSONResponse(fault.body, fault.status, headers=dict(fault.headers))
            raise ServiceError(fault.status, fault.code, fault.message, headers=dict(fault.headers))
        if not _key_accepted(request, state.api_key):
            raise invalid_api_key()
        state.in_flight += 1
        try:
            if state.max_in_flight is not None and state.in_flight > state.max_in_flight:
                raise throttled()
            if state.latency > 0:
                await asyncio.sleep(state.latency)
            if state.draw_error():
                raise internal_error()
            job = _parse_request(raw, request)
            return JSONResponse(_answer(job, state, request_id))
        finally:
            state.in_flight -= 1
    except ServiceError as error:
        return JSONResponse(
            error.body("native", request_id), error.status, headers=dict(error.headers)
        )


def _key_accepted(request: Request, api_key: str | None) -> bool:
    # [ref 0.2]: `Authorization: Bearer <key>`, or `X-DashScope-ApiKey: <key>` (documented for this
    # endpoint). Which one wins when both are sent is [UNCONFIRMED]: an Authorization header,
    # when present, decides on its own; X-DashScope-ApiKey is consulted only without one.
    if "authorization" in request.headers:
        return bearer_key_accepted(request, api_key)
    key = request.headers.get("x-dashscope-apikey", "").strip()
    return bool(key) and (api_key is None or key == api_key)


# --- request model ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Atom:
    """One text, image, video or audio clip: the unit a vector is computed from."""

    weights: dict[str, float]  # lexical content words (text, or words carried by the media)
    identity: str | None = None  # "<kind>:<sha256>" of the bytes or URL; None for texts
    text_tokens: int = 0
    image_tokens: int = 0
    video_tokens: int = 0
    video_seconds: int = 0
    is_image: bool = False


@dataclass(frozen=True)
class _Part:
    """The value of one modality key of a content item (``multi_images`` has many atoms)."""

    modality: str
    atoms: tuple[_Atom, ...]


@dataclass(frozen=True)
class _Item:
    """One element of ``input.contents``."""

    parts: tuple[_Part, ...]
    factor: float = 1.0

    @property
    def type(self) -> str:
        return self.parts[0].modality if len(self.parts) == 1 else _FUSION_TYPE


@dataclass(frozen=True)
class _Context:
    """What item parsing needs besides the item itself."""

    spec: ModelSpec
    oss_resolve: bool
    fps: float
    max_video_frames: int
    auto_truncation: bool


@dataclass(frozen=True)
class _Job:
    spec: ModelSpec
    items: tuple[_Item, ...]
    dimension: int
    fused: bool
    instruct: str | None


def _parse_request(raw: bytes, request: Request) -> _Job:
    try:
        body = json.loads(raw) if raw else None
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        body = None
    if body is None:
        raise bad_request("The request body is not valid JSON.")
    if not isinstance(body, dict):
        raise bad_request("The request body should be a JSON object.")
    spec = _resolve_model(body.get("model"))
    params = body.get("parameters")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise bad_request("Parameter 'parameters' should be an object.")
    dimension = _dimension(spec, params.get("dimension"))
    output_type = params.get("output_type")
    if output_type is not None and output_type != "dense":
        # [ref 3.1]: "currently only `dense` is supported".
        raise algo_invalid(
            f"output_type is invalid, only dense is supported: {output_type!r}.",
            "parameters.output_type",
        )
    legacy = spec.name == _LEGACY_MODEL
    snapshot = spec.fusion == "same_object"
    # Parameters that do not apply to the model (enable_fusion off qwen3-vl-embedding, instruct
    # where the registry has no supports_instruct, fps without video, res_level and
    # max_video_frames off the snapshots, auto_truncation off one-peace) are IGNORED, not
    # rejected: [ref 1.1] and [ref 8.4] show the service silently ignoring parameters it does
    # not use
    # (llama-index's nested "kwargs"), and [ref 3.1] phrases them as "applies to". A client learns
    # that fusion did not happen from the shape of the answer (several vectors, not one).
    fused = spec.fusion == "only"
    if spec.fusion == "optional":
        fused = _optional_bool(params, "enable_fusion")
    instruct: str | None = None
    if spec.supports_instruct:
        value = params.get("instruct")
        if value is not None and not isinstance(value, str):
            raise bad_request("Parameter 'instruct' should be a string.")
        instruct = value or None
    fps = 1.0  # [ref 3.1] default
    if "video" in spec.modalities and params.get("fps") is not None:
        fps = _fps(params["fps"])
    max_frames = _MAX_VIDEO_FRAMES
    if snapshot:
        _bounded_int(params, "res_level", 0, 3)
        max_frames = _bounded_int(params, "max_video_frames", 1, _MAX_VIDEO_FRAMES) or max_frames
    context = _Context(
        spec=spec,
        oss_resolve=request.headers.get("x-dashscope-ossresourceresolve", "").lower() == "enable",
        fps=fps,
        max_video_frames=max_frames,
        auto_truncation=legacy and _optional_bool(params, "auto_truncation"),
    )
    items = _parse_contents(body.get("input"), context)
    return _Job(spec=spec, items=items, dimension=dimension, fused=fused, instruct=instruct)


def _resolve_model(name: Any) -> ModelSpec:
    if not isinstance(name, str) or not name:
        raise bad_request("Model not specified.")
    spec = MODELS.get(name)
    if spec is None:
        raise ServiceError(404, "ModelNotFound", "Model not exist.")  # [ref 5.3]
    if spec.endpoint != "multimodal":
        # [ref 3]: "sending a text-embedding model here fails with HTTP 400 'url error'".
        raise bad_request("url error")
    return spec


def _dimension(spec: ModelSpec, value: Any) -> int:
    # Every multimodal model of the registry lists its dimensions; the fallbacks only keep a
    # future entry without them servable.
    default = spec.default_dimension or (spec.dimensions[0] if spec.dimensions else 1024)
    if value is None:
        return default
    valid = isinstance(value, int) and not isinstance(value, bool)
    if valid and (value in spec.dimensions if spec.dimensions else 1 <= value <= 8192):
        return int(value)
    allowed = ", ".join(str(d) for d in sorted(spec.dimensions)) or "1, 8192"
    raise algo_invalid(
        f"dimension is invalid, it should be one of [{allowed}].", "parameters.dimension"
    )


def _optional_bool(params: Json, name: str) -> bool:
    value = params.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise bad_request(f"Parameter '{name}' should be a boolean.")
    return value


def _fps(value: Any) -> float:
    number = _number(value)
    if number is None or not 0.0 <= number <= 1.0:
        raise algo_invalid("fps is invalid, it should be in [0, 1].", "parameters.fps")
    return number


def _bounded_int(params: Json, name: str, low: int, high: int) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise algo_invalid(
            f"{name} is invalid, it should be an integer in [{low}, {high}].",
            f"parameters.{name}",
        )
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _parse_contents(inp: Any, context: _Context) -> tuple[_Item, ...]:
    spec = context.spec
    if not isinstance(inp, dict):
        raise bad_request("Required parameter 'input' missing or invalid.")
    contents = inp.get("contents")
    if not isinstance(contents, list):
        raise bad_request("Required parameter 'input.contents' missing or invalid: a list.")
    if not contents:
        raise algo_invalid("batch size is invalid, it should not be smaller than 1.")
    limit = spec.max_batch_size
    if len(contents) > limit:
        # [ref 5.2] wording (confirmed for compatible mode; the native variant is [UNCONFIRMED]).
        raise algo_invalid(f"batch size is invalid, it should not be larger than {limit}.")
    items = tuple(_parse_item(value, i, context) for i, value in enumerate(contents))
    if spec.max_images_per_input is None:
        # [ref 3.3] qwen3-vl-embedding: "images, texts, videos, fusion objects share the cap", so
        # every image of a multi_images item counts as one element of the request.
        elements = sum(len(part.atoms) for item in items for part in item.parts)
        if elements > limit:
            raise algo_invalid(
                f"batch size is invalid, it should not be larger than {limit}. "
                f"(content elements, counting each image of multi_images: {elements})"
            )
    if spec.fusion == "only" and spec.name != _LEGACY_MODEL:
        # [ref 3.3] qwen2.5-vl-embedding: "each type at most once per request".
        seen: set[str] = set()
        for i, item in enumerate(items):
            modality = item.parts[0].modality
            if modality in seen:
                raise algo_invalid(
                    f"{modality} is invalid, model {spec.name} takes each modality at most "
                    "once per request.",
                    f"input.contents[{i}]",
                )
            seen.add(modality)
    return items


def _parse_item(value: Any, position: int, context: _Context) -> _Item:
    spec = context.spec
    where = f"input.contents[{position}]"
    if not isinstance(value, dict):
        raise bad_request(f'{where} should be an object such as {{"text": "..."}}.')
    # Unknown keys are refused ([UNCONFIRMED]: the strict choice, so a typo such as "imgae"
    # cannot pass silently). `factor` is the legacy one-peace weight; the 1.x SDK's typed
    # items always carry it, so it is accepted (and ignored) on every model.
    unknown = sorted(str(k) for k in value if k not in _MODALITY_KEYS and k != "factor")
    if unknown:
        raise bad_request(f"{where} has unknown key(s): {', '.join(unknown)}.")
    keys = [k for k in _MODALITY_KEYS if k in value]
    allowed = ", ".join(k for k in _MODALITY_KEYS if k in spec.modalities)
    if not keys:
        raise bad_request(f"{where} has no content; expected one of: {allowed}.")
    for key in keys:
        if key not in spec.modalities:
            raise algo_invalid(
                f"{key} is not supported by model {spec.name}; it takes: {allowed}.",
                f"{where}.{key}",
            )
    if len(keys) > 1:
        if spec.fusion != "same_object":
            raise algo_invalid(
                f"{where} is invalid, it should have exactly one of: {allowed} "
                f"(model {spec.name} embeds each item on its own).",
                where,
            )
        if frozenset(keys) not in _SAME_OBJECT_COMBOS:
            raise algo_invalid(
                f"{where} is invalid: {' + '.join(keys)} cannot be fused; supported "
                "combinations: text+image, text+video, text+multi_images, text+image+video.",
                where,
            )
    factor = 1.0
    if "factor" in value:
        number = _number(value["factor"])
        if number is None or number <= 0.0:
            raise algo_invalid("factor is invalid, it should be a positive number.", where)
        factor = number
    parts = tuple(
        _Part(key, _parse_part(key, value[key], f"{where}.{key}", context)) for key in keys
    )
    return _Item(parts=parts, factor=factor)


def _parse_part(key: str, value: Any, where: str, context: _Context) -> tuple[_Atom, ...]:
    if key == "text":
        return (_text_atom(value, where, context),)
    if key == "image":
        return (_image_atom(value, where, context),)
    if key == "multi_images":
        limit = context.spec.max_images_per_input or context.spec.max_batch_size
        if not isinstance(value, list) or not value:
            raise bad_request(f"{where} should be a non-empty list of images.")
        if len(value) > limit:
            raise algo_invalid(
                f"multi_images is invalid, it should not have more than {limit} images.", where
            )
        return tuple(_image_atom(v, f"{where}[{i}]", context) for i, v in enumerate(value))
    if key == "video":
        return (_video_atom(value, where, context),)
    return (_audio_atom(value, where, context),)


def _text_atom(value: Any, where: str, context: _Context) -> _Atom:
    if not isinstance(value, str):
        raise bad_request(f"{where} should be a string.")
    limit = context.spec.max_tokens_per_input
    analysis = _lexical.analyze(value)
    if analysis.token_count > limit and context.auto_truncation:
        # [ref 3.1] one-peace auto_truncation: cut the text instead of failing.
        analysis = _lexical.analyze(_lexical.truncate_tokens(value, limit))
    if not 1 <= analysis.token_count <= limit:
        # Same wording as the text endpoints ([UNCONFIRMED] for embeddings, [ref 5.2]). The registry
        # notes an older page saying multimodal-embedding-v1 truncates; the emulator rejects.
        raise algo_invalid(f"Range of input length should be [1, {limit}]", where)
    return _Atom(weights=analysis.weights, text_tokens=analysis.token_count)


# --- media --------------------------------------------------------------------------------


def _url(value: Any, where: str, context: _Context, kind: str) -> tuple[str, str]:
    """Validate a media URL; return (its path, its extension in lower case)."""
    if not isinstance(value, str) or not value.strip():
        raise bad_request(f"{where} should be a non-empty string.")
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        parts = None
    scheme = parts.scheme.lower() if parts else ""
    if parts is None or scheme not in ("http", "https", "oss") or not parts.netloc:
        data_hint = " or a data:image/...;base64 URI" if kind == "image" else ""
        raise algo_invalid(
            f"The provided URL does not appear to be valid: {kind} should be a public http(s) "
            f"URL{data_hint}, got {value[:80]!r}.",
            where,
        )
    if scheme == "oss" and not context.oss_resolve:
        # [ref 0.2]: oss:// inputs need `X-DashScope-OssResourceResolve: enable`.
        raise algo_invalid(
            "oss:// URLs need the header X-DashScope-OssResourceResolve: enable.", where
        )
    path = unquote(parts.path)
    last = path.rsplit("/", 1)[-1]
    extension = last.rsplit(".", 1)[-1].lower() if "." in last else ""
    return path, extension


def _url_words(path: str, extension: str) -> dict[str, float]:
    if extension:
        path = path[: -len(extension) - 1]
    return _lexical.analyze(_NON_WORD.sub(" ", path)).weights


def _identity(kind: str, payload: bytes) -> str:
    return f"{kind}:{hashlib.sha256(payload).hexdigest()}"


def _image_atom(value: Any, where: str, context: _Context) -> _Atom:
    spec = context.spec
    if isinstance(value, str) and value[:5].lower() == "data:":
        return _data_uri_atom(value, where, spec)
    path, extension = _url(value, where, context, "image")
    found = IMAGE_EXTENSIONS.get(extension) or VIDEO_EXTENSIONS.get(extension)
    if found is not None and found not in image_formats(spec):
        raise _unsupported_format(spec, found, image_formats(spec), where, "image")
    # A URL is never fetched: its size cannot be checked and its vector derives from the URL.
    return _Atom(
        weights=_url_words(path, extension),
        identity=_identity("image", str(value).encode("utf-8", "surrogatepass")),
        image_tokens=_UNKNOWN_IMAGE_TOKENS,
        is_image=True,
    )


def _video_atom(value: Any, where: str, context: _Context) -> _Atom:
    spec = context.spec
    if isinstance(value, str) and value[:5].lower() == "data:":
        raise algo_invalid("video only accepts a public URL, not a data URI ([ref 3.1]).", where)
    path, extension = _url(value, where, context, "video")
    formats = video_formats(spec)
    found = VIDEO_EXTENSIONS.get(extension) or IMAGE_EXTENSIONS.get(extension)
    if found is not None and found not in formats:
        raise _unsupported_format(spec, found, formats, where, "video")
    # max_video_bytes cannot be checked: the video is never downloaded.
    frames = min(max(1, round(_ASSUMED_VIDEO_SECONDS * context.fps)), context.max_video_frames)
    return _Atom(
        weights=_url_words(path, extension),
        identity=_identity("video", str(value).encode("utf-8", "surrogatepass")),
        video_tokens=frames * _TOKENS_PER_FRAME,
        video_seconds=_ASSUMED_VIDEO_SECONDS,
    )


def _audio_atom(value: Any, where: str, context: _Context) -> _Atom:
    if isinstance(value, str) and value[:5].lower() == "data:":
        raise algo_invalid("audio only accepts a public URL, not a data URI.", where)
    path, extension = _url(value, where, context, "audio")
    # Audio is not billed in the emulator's usage ([UNCONFIRMED] for one-peace).
    return _Atom(
        weights=_url_words(path, extension),
        identity=_identity("audio", str(value).encode("utf-8", "surrogatepass")),
    )


def _unsupported_format(
    spec: ModelSpec, found: str, formats: frozenset[str], where: str, kind: str
) -> ServiceError:
    allowed = ", ".join(sorted(formats))
    return algo_invalid(
        f"{kind} format {found} is not supported by model {spec.name}; supported: {allowed}.",
        where,
    )


def _data_uri_atom(value: str, where: str, spec: ModelSpec) -> _Atom:
    header, comma, payload = value[5:].partition(",")
    fields = [f.strip().lower() for f in header.split(";")]
    if not comma or not fields[0].startswith("image/") or "base64" not in fields[1:]:
        raise algo_invalid(
            "image data URI is invalid, it should be data:image/{format};base64,{data}.", where
        )
    try:
        data = base64.b64decode(payload, validate=True)
    except ValueError:  # binascii.Error, or non-ASCII characters
        raise algo_invalid("image base64 data is invalid, it cannot be decoded.", where) from None
    limit = spec.max_image_bytes
    if limit is not None and len(data) > limit:
        size = f"{limit // (1024 * 1024)} MB" if limit % (1024 * 1024) == 0 else f"{limit} bytes"
        raise algo_invalid(
            f"image size is invalid, it should not be larger than {size} "
            f"({len(data)} bytes given).",
            where,
        )
    # The declared subtype (data:image/png) is not trusted: the format is sniffed from the
    # bytes, as an image decoder would.
    formats = image_formats(spec)
    try:
        _, info = inspect_image(data, formats)
    except BadImage as error:
        raise algo_invalid(f"image data is invalid, {error}", where) from None
    except LookupError as unsupported:
        raise _unsupported_format(spec, str(unsupported), formats, where, "image") from None
    return _Atom(
        weights=_lexical.analyze(" ".join(info.texts)).weights,
        identity=_identity("image", data),
        image_tokens=_image_tokens(info.width, info.height),
        is_image=True,
    )


def _image_tokens(width: int | None, height: int | None) -> int:
    if not width or not height:
        return _UNKNOWN_IMAGE_TOKENS
    patches = math.ceil(width / _PATCH) * math.ceil(height / _PATCH)
    return min(max(patches, _MIN_IMAGE_TOKENS), _MAX_IMAGE_TOKENS)


# --- answer -------------------------------------------------------------------------------


def _normalized(vectors: list[list[float]], weights: list[float]) -> list[float]:
    pairs = list(zip(vectors, weights, strict=True))
    total = [math.fsum(w * v[i] for v, w in pairs) for i in range(len(vectors[0]))]
    norm = math.sqrt(math.fsum(x * x for x in total))
    if norm == 0.0:  # parts cancelled out exactly: keep the first one
        return vectors[0]
    packed = struct.pack(f"<{len(total)}f", *(x / norm for x in total))
    return list(struct.unpack(f"<{len(total)}f", packed))


def _atom_vector(atom: _Atom, job: _Job) -> list[float]:
    extra: list[tuple[str, float]] = []
    if atom.identity is not None:
        extra.extend(
            _lexical.marker_feature("media", f"{atom.identity}:{k}", _IDENTITY_WEIGHT)
            for k in range(_IDENTITY_FEATURES)
        )
    if job.instruct:
        # [ref 3.1]: instruct is a task instruction for the whole request; it nudges every vector.
        extra.append(_lexical.marker_feature("instruct", job.instruct, _INSTRUCT_WEIGHT))
    analysis = _lexical.Analysis(token_count=0, weights=atom.weights)
    return _lexical.dense_vector(
        analysis, model=job.spec.name, dimension=job.dimension, extra=extra
    )


def _item_vector(item: _Item, job: _Job) -> list[float]:
    parts = []
    for part in item.parts:
        atoms = [_atom_vector(atom, job) for atom in part.atoms]
        parts.append(atoms[0] if len(atoms) == 1 else _normalized(atoms, [1.0] * len(atoms)))
    return parts[0] if len(parts) == 1 else _normalized(parts, [1.0] * len(parts))


def _usage(job: _Job) -> Json:
    atoms = [atom for item in job.items for part in item.parts for atom in part.atoms]
    text = sum(a.text_tokens for a in atoms)
    image = sum(a.image_tokens for a in atoms)
    video = sum(a.video_tokens for a in atoms)
    if job.spec.name.startswith("tongyi-embedding-vision"):
        # [ref 3.2] (S6): input_tokens (text + media combined), input_tokens_details,
        # output_tokens, total_tokens. The keys inside input_tokens_details are [UNCONFIRMED];
        # video frames are billed as image tokens there.
        total = text + image + video
        return {
            "input_tokens": total,
            "input_tokens_details": {"text_tokens": text, "image_tokens": image + video},
            "output_tokens": 0,
            "total_tokens": total,
        }
    # [ref 3.2], multimodal-embedding-v1 / qwen*-vl (and, [UNCONFIRMED], one-peace):
    # input_tokens (everything), image_tokens (images only), image_count, and duration (video
    # seconds) only when a video was sent.
    usage: Json = {
        "input_tokens": text + image + video,
        "image_tokens": image,
        "image_count": sum(1 for a in atoms if a.is_image),
    }
    seconds = sum(a.video_seconds for a in atoms)
    if seconds:
        usage["duration"] = seconds
    return usage


def _answer(job: _Job, state: ServerState, request_id: str) -> Json:
    vectors = [_item_vector(item, job) for item in job.items]
    usage = _usage(job)
    if job.spec.name == _LEGACY_MODEL:
        # [ref 3.2]: one-peace returns a single fused vector at output.embedding (not a list).
        fused = _normalized(vectors, [item.factor for item in job.items])
        return {"output": {"embedding": fused}, "usage": usage, "request_id": request_id}
    if job.fused:
        # qwen2.5-vl always, qwen3-vl with enable_fusion: one vector for all items, index 0.
        fused = _normalized(vectors, [1.0] * len(vectors))
        embeddings: list[Json] = [{"index": 0, "embedding": fused, "type": _FUSION_TYPE}]
    else:
        embeddings = [
            {"index": i, "embedding": vectors[i], "type": job.items[i].type}
            for i in response_order(len(vectors), state.seed, state.shuffle)
        ]
    return {"output": {"embeddings": embeddings}, "usage": usage, "request_id": request_id}
