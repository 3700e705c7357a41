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

import re
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from dashscope_embeddings._config import Endpoints
from dashscope_embeddings._constants import COMPATIBLE_EMBEDDINGS_PATH, TEXT_EMBEDDING_PATH
from dashscope_embeddings._errors import APIError, InvalidInputError, ResponseValidationError
from dashscope_embeddings._fanout import Job, UnitOutput, is_length_rejection
from dashscope_embeddings._registry import ModelSpec
from dashscope_embeddings._tokens import (
    TokenCounter,
    upper_bound,
)
from dashscope_embeddings._transport import Answer, APIRequest, note_billed
from dashscope_embeddings._types import (
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
    readable_tokens,
    total_tokens,
)
from dashscope_embeddings.resources._text_input import (
    MAX_TEXT_CHARS,
    LongText,
    TokenCounting,
    check_options,
    check_texts,
    count_for_estimate,
    materialize,
    token_counting,
)

__all__ = [
    "MAX_TEXT_CHARS",
    "count_for_estimate",
    "token_counting",
    "LongText",
    "TokenCounting",
    "RequestOutput",
    "TextCall",
    "check_options",
    "check_texts",
    "compatible_body",
    "materialize",
    "native_body",
    "parse_compatible",
    "parse_native",
    "plan_requests",
    "plan_text_call",
]



@dataclass(frozen=True)
class RequestOutput:
    """The parsed answer to one request, already in the request's input order."""

    dense: list[list[float]] | None
    sparse: list[SparseVector] | None
    total_tokens: int
    request_id: str | None


_MAX_RECUTS = 3
"""How many times one text the service found too long is cut shorter and sent again."""
_REPORTED_RE = re.compile(r"(\d+)\s*tokens|length\s*(?:is|of|=|:)?\s*(\d+)", re.IGNORECASE)


@dataclass
class TextCall:
    """One ``embed_texts`` call, planned: what is sent (units) and how it maps back.

    ``units`` are the texts actually sent: identical inputs are sent once, and a long text cut
    into chunks is several units. ``refs[i]`` lists the units (with their weights) that make up
    the caller's input ``i``.
    """

    spec: ModelSpec
    endpoints: Endpoints
    protocol: WireProtocol
    output_type: OutputType
    dimension: int | None
    text_type: TextType | None
    instruct: str | None
    extra_body: Mapping[str, typing.Any] | None
    count_tokens: TokenCounter | None
    units: list[str]
    refs: list[list[tuple[int, float]]]
    jobs: list[Job] = field(default_factory=list)
    long_text: LongText = "error"
    split: Callable[[str, int], list[str]] | None = None
    counter: TokenCounter | None = None
    recuts: dict[int, int] = field(default_factory=dict)

    @property
    def unit_count(self) -> int:
        """How many texts are sent."""
        return len(self.units)

    @property
    def expected_dimension(self) -> int | None:
        """Length every dense vector must have, where known."""
        return self.dimension or self.spec.default_dimension

    def build(self, units: Sequence[int]) -> Job:
        """The request carrying exactly ``units``."""
        chunk = [self.units[u] for u in units]
        if self.protocol == "compatible":
            url = self.endpoints.compatible_base + COMPATIBLE_EMBEDDINGS_PATH
            body = compatible_body(self.spec.name, chunk, dimension=self.dimension)
        else:
            url = self.endpoints.native_base + TEXT_EMBEDDING_PATH
            body = native_body(
                self.spec.name,
                chunk,
                dimension=self.dimension,
                text_type=self.text_type,
                output_type=self.output_type,
                instruct=self.instruct,
            )
        label = f"{self.spec.name} {len(chunk)} text{'s' if len(chunk) != 1 else ''}"
        tokens = sum(map(self.count_tokens, chunk)) if self.count_tokens is not None else 0
        request = APIRequest(
            "POST",
            url,
            content=dumps(merge_body(body, self.extra_body)),
            tokens=tokens,
            label=label,
        )
        return Job(request, tuple(units))

    def recut(self, unit: int, error: APIError) -> Job | None:
        """Cut a unit the service found too long shorter; the request to send it again.

        Only with ``long_text`` truncate or chunk, at most a few times per unit. The new length
        is the old one times the limit over the count the service reported, or half. With
        ``truncate`` the unit becomes the shorter text; with ``chunk`` the rest of it becomes
        new units, weighted into the same inputs. ``None`` when it cannot be cut.
        """
        if self.long_text == "error" or self.split is None or not is_length_rejection(error):
            return None
        tries = self.recuts.get(unit, 0)
        if tries >= _MAX_RECUTS:
            return None
        self.recuts[unit] = tries + 1
        count = self.counter or upper_bound
        text = self.units[unit]
        tokens = count(text)
        limit = self.spec.max_tokens_per_input
        reported = _reported_count(str(error))
        if reported and reported > limit:
            target = int(tokens * limit / reported * 0.98)
        else:
            target = tokens // 2
        pieces = self.split(text, max(1, target))
        if len(pieces) < 2:
            return None
        self.units[unit] = pieces[0]
        if self.long_text == "truncate":
            return self.build([unit])
        new = list(range(len(self.units), len(self.units) + len(pieces) - 1))
        self.units.extend(pieces[1:])
        weights = [float(max(1, count(p))) for p in pieces]
        total = sum(weights)
        for parts in self.refs:
            for position, (u, weight) in enumerate(parts):
                if u == unit:
                    parts[position : position + 1] = [
                        (v, weight * w / total) for v, w in zip([unit, *new], weights, strict=True)
                    ]
                    break
        return self.build([unit, *new])

    def parser(self, job: Job) -> Callable[[Answer], UnitOutput]:
        """The parser of one request's answer."""
        units = job.units

        def parse(answer: Answer) -> UnitOutput:
            try:
                if self.protocol == "compatible":
                    out = parse_compatible(
                        answer.payload,
                        len(units),
                        expected_dimension=self.expected_dimension,
                        request_id=answer.request_id,
                    )
                else:
                    out = parse_native(
                        answer.payload,
                        len(units),
                        output_type=self.output_type,
                        expected_dimension=self.expected_dimension,
                        request_id=answer.request_id,
                    )
            except ResponseValidationError as error:
                # Billed all the same: the running usage counts it before the retry.
                tokens = readable_tokens(answer.payload, ("total_tokens", "prompt_tokens"))
                if tokens is not None:
                    note_billed(error, UnitOutput(units, None, None, tokens, answer.request_id))
                raise
            return UnitOutput(units, out.dense, out.sparse, out.total_tokens, out.request_id)

        return parse

    def usage(self, output: UnitOutput) -> Usage:
        """What one request billed, priced from the registry."""
        return usage_for(self.spec, output.total_tokens, 1, self.endpoints.region)


# --- input checks --------------------------------------------------------------------------


def _reported_count(message: str) -> int | None:
    """The token count a length rejection reports, if its message carries one."""
    match = _REPORTED_RE.search(message)
    if match is None:
        return None
    return int(match.group(1) or match.group(2))


def pack_by_tokens(tokens: Sequence[int], max_inputs: int, max_tokens: int) -> list[range]:
    """Cut inputs into requests of at most ``max_inputs`` inputs and ``max_tokens`` tokens.

    In order, greedily; an input over the budget goes alone.

    >>> [list(r) for r in pack_by_tokens([5, 5, 5, 9, 1], max_inputs=10, max_tokens=10)]
    [[0, 1], [2], [3, 4]]
    """
    ranges: list[range] = []
    start, used = 0, 0
    for index, count in enumerate(tokens):
        if index > start and (index - start >= max_inputs or used + count > max_tokens):
            ranges.append(range(start, index))
            start, used = index, 0
        used += count
    if start < len(tokens):
        ranges.append(range(start, len(tokens)))
    return ranges


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
    long_text: LongText = "error",
    with_tokens: bool = False,
) -> TextCall:
    """Check everything, then cut the call into requests by the model's limits.

    Identical texts are sent once. Long texts follow ``long_text``.

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
    if long_text not in ("error", "truncate", "chunk"):
        raise InvalidInputError(
            f"long_text must be 'error', 'truncate' or 'chunk', got {long_text!r}"
        )
    counting = token_counting(token_counter)
    check_texts(texts, spec, long_ok=long_text != "error", counting=counting)
    limit = spec.max_tokens_per_input
    units: list[str] = []
    seen: dict[str, int] = {}
    refs: list[list[tuple[int, float]]] = []
    known: dict[str, int] = {}  # unit text -> its count, where already counted

    def unit(text: str, tokens: int | None = None) -> int:
        index = seen.get(text)
        if index is None:
            index = seen[text] = len(units)
            units.append(text)
        if tokens is not None:
            known[text] = tokens
        return index

    for text in texts:
        # the cut count is at most 4 per character (bytes): shorter texts surely fit
        if long_text != "error" and len(text) * 4 > limit and counting.cut(text) > limit:
            pieces = counting.split(text, limit)
            if long_text == "truncate":
                refs.append([(unit(pieces[0]), 1.0)])
            else:
                counts = [counting.cut(p) for p in pieces]
                refs.append(
                    [(unit(p, n), float(max(1, n))) for p, n in zip(pieces, counts, strict=True)]
                )
        else:
            refs.append([(unit(text), 1.0)])

    def count(text: str) -> int:
        tokens = known.get(text)
        if tokens is None:
            tokens = known[text] = counting.cut(text)
        return tokens

    call = TextCall(
        spec=spec,
        endpoints=endpoints,
        protocol=protocol,
        output_type=output_type,
        dimension=dimension,
        text_type=text_type,
        instruct=instruct,
        extra_body=extra_body,
        count_tokens=count if with_tokens else None,
        units=units,
        refs=refs,
        long_text=long_text,
        split=lambda text, limit: counting.split(text, limit),  # loads on first use
        counter=count,
    )
    if spec.max_tokens_per_request is not None:
        ranges = pack_by_tokens(
            [count(u) for u in units], spec.max_batch_size, spec.max_tokens_per_request
        )
    else:
        ranges = plan_requests(len(units), spec.max_batch_size)
    call.jobs = [call.build(r) for r in ranges]
    return call


# --- answers ---------------------------------------------------------------------------------


def _sparse(raw: object, position: int, request_id: str | None) -> SparseVector:
    """One ``sparse_embedding`` list as a :class:`SparseVector`: sorted by index, each once.

    The service's values are kept as sent; entries that share an index (two tokens of one
    vocabulary id) are merged into one whose value is their sum and whose token is the first
    one sent, since stores (Qdrant, Milvus) refuse repeated indices.
    """
    if not isinstance(raw, list):
        raise malformed(f"sparse_embedding {position} is not a list", request_id)
    merged: dict[int, tuple[float, str | None]] = {}
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
        index, value = entry["index"], float(entry["value"])
        previous = merged.get(index)
        if previous is None:
            merged[index] = (value, token if isinstance(token, str) else None)
        else:
            merged[index] = (previous[0] + value, previous[1])
    entries = sorted(((i, v, t) for i, (v, t) in merged.items()), key=lambda e: e[0])
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
