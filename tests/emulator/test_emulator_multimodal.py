"""The emulator's multimodal endpoint, spoken to with raw HTTP (httpx) on 127.0.0.1.

Only the registry is used from the package (it holds the limits the emulator must enforce);
images are tiny PNG / JPEG / BMP / GIF / WEBP files written byte by byte here.
"""

from __future__ import annotations

import math
import struct
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dashscope_embeddings._registry import MODELS, ModelSpec
from dashscope_embeddings.emulator import Emulator

KEY = "mm-test-key"
PATH = "/services/embeddings/multimodal-embedding/multimodal-embedding"
MULTIMODAL = [s for s in MODELS.values() if s.endpoint == "multimodal"]
WITH_IMAGE_LIMIT = [s for s in MULTIMODAL if s.max_image_bytes is not None]
WITH_MULTI_IMAGES = [s for s in MULTIMODAL if "multi_images" in s.modalities]
QWEN3 = MODELS["qwen3-vl-embedding"]
QWEN25 = MODELS["qwen2.5-vl-embedding"]
PLUS = MODELS["tongyi-embedding-vision-plus"]
SNAPSHOT = MODELS["tongyi-embedding-vision-plus-2026-03-06"]
V1 = MODELS["multimodal-embedding-v1"]
ONE_PEACE = MODELS["multimodal-embedding-one-peace-v1"]
MODALITIES = ("text", "image", "video", "multi_images", "audio")
URL_IMAGE = "https://example.com/img/cat.jpg"
URL_VIDEO = "https://example.com/clip.mp4"
URL_AUDIO = "https://example.com/moo.flac"


from tests.media import GIF, bmp, data_uri, flipped, jpeg, png, png_of_size, webp  # noqa: E402

# --- plumbing -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(api_key=KEY) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as c:
        yield c


@pytest.fixture(autouse=True)
def _clean(request: pytest.FixtureRequest) -> Iterator[None]:
    if "emu" in request.fixturenames:
        emulator: Emulator = request.getfixturevalue("emu")
        emulator.clear_faults()
        emulator.clear_requests()
    yield


def body(model: ModelSpec | str, contents: list[Any], **parameters: Any) -> dict[str, Any]:
    name = model if isinstance(model, str) else model.name
    return {"model": name, "input": {"contents": contents}, "parameters": parameters}


def post(
    client: httpx.Client, emu: Emulator, payload: Any, headers: dict[str, str] | None = None
) -> httpx.Response:
    return client.post(emu.base_url + PATH, json=payload, headers=headers)


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    assert result["request_id"] == response.headers["x-request-id"]
    return result


def error(response: httpx.Response, status: int, code: str = "InvalidParameter") -> str:
    assert response.status_code == status, response.text
    payload = response.json()
    assert set(payload) == {"request_id", "code", "message"}
    assert payload["code"] == code
    assert payload["request_id"] == response.headers["x-request-id"]
    message: str = payload["message"]
    return message


def embeddings(result: dict[str, Any]) -> dict[int, tuple[str, list[float]]]:
    items = result["output"]["embeddings"]
    indices = [e["index"] for e in items]
    assert sorted(indices) == list(range(len(items)))
    return {e["index"]: (e["type"], e["embedding"]) for e in items}


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def norm(a: list[float]) -> float:
    return math.sqrt(sum(x * x for x in a))


def value_for(modality: str) -> Any:
    return {
        "text": "a cat on a sofa",
        "image": URL_IMAGE,
        "video": URL_VIDEO,
        "multi_images": [URL_IMAGE],
        "audio": URL_AUDIO,
    }[modality]


def full_batch(spec: ModelSpec) -> list[dict[str, Any]]:
    if spec is QWEN25:  # each modality at most once
        return [{"text": "a cat"}, {"image": URL_IMAGE}, {"video": URL_VIDEO}]
    return [{"text": f"item number {i}"} for i in range(spec.max_batch_size)]


def first_vector(spec: ModelSpec, result: dict[str, Any]) -> list[float]:
    if spec is ONE_PEACE:
        vector: list[float] = result["output"]["embedding"]
        return vector
    return embeddings(result)[0][1]


# --- routing, auth, admission -------------------------------------------------------------


def test_serves_only_its_path_and_post(emu: Emulator, client: httpx.Client) -> None:
    response = client.get(emu.base_url + PATH)
    assert error(response, 405, "MethodNotAllowed")
    assert response.headers["allow"] == "POST"
    response = client.post(emu.compatible_base_url + "/multimodal-embedding", json={})
    assert response.status_code == 404
    ok(post(client, emu, body(PLUS, [{"text": "hello"}])))
    assert [(r.path, r.status) for r in emu.requests][-1] == ("/api/v1" + PATH, 200)


def test_auth_via_either_header(emu: Emulator) -> None:
    payload = body(PLUS, [{"text": "hello"}])
    url = emu.base_url + PATH
    assert (
        httpx.post(url, json=payload, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    )
    assert httpx.post(url, json=payload, headers={"X-DashScope-ApiKey": KEY}).status_code == 200
    message = error(httpx.post(url, json=payload), 401, "InvalidApiKey")
    assert message == "Invalid API-key provided."
    error(
        httpx.post(url, json=payload, headers={"X-DashScope-ApiKey": "nope"}), 401, "InvalidApiKey"
    )
    error(
        httpx.post(url, json=payload, headers={"Authorization": "Bearer nope"}),
        401,
        "InvalidApiKey",
    )
    # A present Authorization header decides on its own.
    both = {"Authorization": "Bearer nope", "X-DashScope-ApiKey": KEY}
    error(httpx.post(url, json=payload, headers=both), 401, "InvalidApiKey")


def test_queued_fault_comes_before_auth(emu: Emulator, client: httpx.Client) -> None:
    emu.inject(503, "ServiceUnavailable", "busy", headers={"retry-after": "0"})
    emu.inject(200, None, "", body={"code": "InternalError", "message": "in a 200"})
    response = httpx.post(emu.base_url + PATH, json={})
    assert error(response, 503, "ServiceUnavailable") == "busy"
    assert response.headers["retry-after"] == "0"
    response = post(client, emu, body(PLUS, [{"text": "x"}]))
    assert response.status_code == 200 and response.json() == {
        "code": "InternalError",
        "message": "in a 200",
    }
    ok(post(client, emu, body(PLUS, [{"text": "x"}])))


def test_random_internal_error_after_auth_before_validation() -> None:
    with Emulator(api_key=KEY, error_rate=1.0) as emulator:
        url = emulator.base_url + PATH
        error(httpx.post(url, json={}), 401, "InvalidApiKey")
        headers = {"X-DashScope-ApiKey": KEY}
        error(httpx.post(url, json={"model": "nope"}, headers=headers), 500, "InternalError")


def test_in_flight_cap_answers_429() -> None:
    with Emulator(api_key=KEY, latency=0.3, max_in_flight=1) as emulator:
        url = emulator.base_url + PATH
        statuses: list[int] = []
        barrier = threading.Barrier(2)

        def call() -> None:
            barrier.wait()
            response = httpx.post(
                url, json=body(PLUS, [{"text": "x"}]), headers={"X-DashScope-ApiKey": KEY}
            )
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert response.json()["code"] == "Throttling.RateQuota"

        threads = [threading.Thread(target=call) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(statuses) == [200, 429]


# --- models -------------------------------------------------------------------------------


def test_text_models_get_url_error(emu: Emulator, client: httpx.Client) -> None:
    for name in ("text-embedding-v4", "text-embedding-v1", "text-embedding-async-v2"):
        response = post(client, emu, body(name, [{"text": "x"}]))
        assert error(response, 400) == "url error"


def test_unknown_model_is_404(emu: Emulator, client: httpx.Client) -> None:
    response = post(client, emu, body("qwen9-vl-embedding", [{"text": "x"}]))
    assert error(response, 404, "ModelNotFound") == "Model not exist."


@pytest.mark.parametrize(
    "payload",
    [
        [1, 2],
        {"model": PLUS.name},
        {"model": PLUS.name, "input": {"texts": ["x"]}},
        {"model": PLUS.name, "input": {"contents": "x"}},
        {"model": PLUS.name, "input": {"contents": []}},
        {"model": PLUS.name, "input": {"contents": ["just a string"]}},
        {"model": PLUS.name, "input": {"contents": [{}]}},
        {"model": PLUS.name, "input": {"contents": [{"txt": "x"}]}},
        {"model": PLUS.name, "input": {"contents": [{"text": "x", "imgae": URL_IMAGE}]}},
        {"model": PLUS.name, "input": {"contents": [{"text": 5}]}},
        {"model": PLUS.name, "input": {"contents": [{"text": ""}]}},
        {"model": PLUS.name, "input": {"contents": [{"text": "x"}]}, "parameters": [1]},
        {"input": {"contents": [{"text": "x"}]}},
    ],
)
def test_malformed_bodies(emu: Emulator, client: httpx.Client, payload: Any) -> None:
    error(post(client, emu, payload), 400)


def test_invalid_json(emu: Emulator, client: httpx.Client) -> None:
    response = client.post(emu.base_url + PATH, content=b"{nope")
    error(response, 400)


@pytest.mark.parametrize("spec", MULTIMODAL, ids=lambda s: s.name)
def test_batch_limit(emu: Emulator, client: httpx.Client, spec: ModelSpec) -> None:
    contents = full_batch(spec)
    assert len(contents) == spec.max_batch_size
    result = ok(post(client, emu, body(spec, contents)))
    if spec is ONE_PEACE:
        assert "embeddings" not in result["output"]
    elif spec.fusion == "only":
        assert [e["type"] for e in result["output"]["embeddings"]] == ["fusion"]
    else:
        assert len(embeddings(result)) == spec.max_batch_size
    over = [{"text": f"item number {i}"} for i in range(spec.max_batch_size + 1)]
    message = error(post(client, emu, body(spec, over)), 400)
    assert message == f"batch size is invalid, it should not be larger than {spec.max_batch_size}."


@pytest.mark.parametrize("spec", MULTIMODAL, ids=lambda s: s.name)
def test_dimensions(emu: Emulator, client: httpx.Client, spec: ModelSpec) -> None:
    default = first_vector(spec, ok(post(client, emu, body(spec, [{"text": "hello"}]))))
    assert len(default) == spec.default_dimension
    for dimension in spec.dimensions:
        result = ok(post(client, emu, body(spec, [{"text": "hello"}], dimension=dimension)))
        vector = first_vector(spec, result)
        assert len(vector) == dimension
        assert norm(vector) == pytest.approx(1.0, abs=1e-5)
    for bad in (
        100,
        3000,
        str(spec.default_dimension),
        True,
        1024.0 if 1024 in spec.dimensions else 7.5,
    ):
        response = post(client, emu, body(spec, [{"text": "hello"}], dimension=bad))
        assert "dimension is invalid" in error(response, 400)


@pytest.mark.parametrize("spec", MULTIMODAL, ids=lambda s: s.name)
def test_text_token_limit(emu: Emulator, client: httpx.Client, spec: ModelSpec) -> None:
    limit = spec.max_tokens_per_input
    ok(post(client, emu, body(spec, [{"text": " ".join(["w"] * limit)}])))
    message = error(post(client, emu, body(spec, [{"text": " ".join(["w"] * (limit + 1))}])), 400)
    assert message == f"Range of input length should be [1, {limit}]"


@pytest.mark.parametrize("spec", MULTIMODAL, ids=lambda s: s.name)
def test_unsupported_modalities(emu: Emulator, client: httpx.Client, spec: ModelSpec) -> None:
    for modality in MODALITIES:
        response = post(client, emu, body(spec, [{modality: value_for(modality)}]))
        if modality in spec.modalities:
            ok(response)
        else:
            assert f"{modality} is not supported" in error(response, 400)


@pytest.mark.parametrize("spec", WITH_IMAGE_LIMIT, ids=lambda s: s.name)
def test_image_size_limit(emu: Emulator, client: httpx.Client, spec: ModelSpec) -> None:
    assert spec.max_image_bytes is not None
    too_big = png_of_size(spec.max_image_bytes + 1)
    message = error(post(client, emu, body(spec, [{"image": data_uri(too_big)}])), 400)
    assert "image size is invalid" in message


@pytest.mark.parametrize("spec", [PLUS, QWEN3], ids=lambda s: s.name)
def test_image_at_the_size_limit_is_accepted(
    emu: Emulator, client: httpx.Client, spec: ModelSpec
) -> None:
    assert spec.max_image_bytes is not None
    exact = png_of_size(spec.max_image_bytes)
    result = ok(post(client, emu, body(spec, [{"image": data_uri(exact)}])))
    assert embeddings(result)[0][0] == "image"


@pytest.mark.parametrize("spec", WITH_MULTI_IMAGES, ids=lambda s: s.name)
def test_images_per_input(emu: Emulator, client: httpx.Client, spec: ModelSpec) -> None:
    # qwen3-vl has no per-item limit: its images share the request's element cap.
    limit = spec.max_images_per_input or spec.max_batch_size
    urls = [f"https://example.com/p/{i}.png" for i in range(limit + 1)]
    result = ok(post(client, emu, body(spec, [{"multi_images": urls[:limit]}])))
    assert embeddings(result)[0][0] == "multi_images"
    response = post(client, emu, body(spec, [{"multi_images": urls}]))
    assert "should not have more than" in error(response, 400)
    error(post(client, emu, body(spec, [{"multi_images": []}])), 400)


def test_qwen3_images_share_the_element_cap(emu: Emulator, client: httpx.Client) -> None:
    half = [f"https://example.com/p/{i}.png" for i in range(10)]
    ok(post(client, emu, body(QWEN3, [{"multi_images": half}, {"multi_images": half}])))
    response = post(
        client, emu, body(QWEN3, [{"multi_images": half}, {"multi_images": half}, {"text": "x"}])
    )
    assert "batch size is invalid, it should not be larger than 20." in error(response, 400)


# --- images -------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [PLUS, QWEN3, V1], ids=lambda s: s.name)
def test_accepted_image_data(emu: Emulator, client: httpx.Client, spec: ModelSpec) -> None:
    for data, fmt in ((png(), "png"), (jpeg(), "jpeg"), (bmp(), "bmp")):
        result = ok(post(client, emu, body(spec, [{"image": data_uri(data, fmt)}])))
        assert embeddings(result)[0][0] == "image"


@pytest.mark.parametrize(
    ("image", "words"),
    [
        ("data:image/png;base64,!!!not base64!!!", "cannot be decoded"),
        (data_uri(png())[:-1], "cannot be decoded"),  # truncated base64
        (data_uri(png()[:-20]), "truncated or corrupt"),  # truncated file
        (data_uri(png()[:40]), "truncated or corrupt"),
        (data_uri(flipped(png(), -20)), "truncated or corrupt"),  # IDAT byte: bad CRC
        (data_uri(jpeg()[:-2]), "truncated or corrupt"),
        (data_uri(bmp()[:30]), "truncated or corrupt"),
        (data_uri(b"just some text, not an image at all"), "not an image"),
        (data_uri(b""), "not an image"),
        (data_uri(GIF, "gif"), "format GIF is not supported"),
        (data_uri(GIF, "png"), "format GIF is not supported"),  # the bytes decide
        (data_uri(webp(), "webp"), "format WEBP is not supported"),
        ("data:text/plain;base64,aGVsbG8=", "data URI is invalid"),
        ("data:image/png," + "a" * 8, "data URI is invalid"),
        ("file:///tmp/cat.png", "URL does not appear to be valid"),
        ("/tmp/cat.png", "URL does not appear to be valid"),
        ("ftp://example.com/cat.png", "URL does not appear to be valid"),
        ("https:///cat.png", "URL does not appear to be valid"),
        ("oss://bucket/cat.png", "X-DashScope-OssResourceResolve"),
        ("https://example.com/cat.gif", "format GIF is not supported"),
        ("https://example.com/cat.webp", "format WEBP is not supported"),
        ("https://example.com/cat.mp4", "format MP4 is not supported"),
    ],
)
def test_bad_images_on_tongyi(emu: Emulator, client: httpx.Client, image: str, words: str) -> None:
    assert words in error(post(client, emu, body(PLUS, [{"image": image}])), 400)


def _bitmap(bits: int = 24, dib_size: int = 40, declared: int | None = None) -> bytes:
    pixels = b"\x7f" * 16
    head = struct.pack("<IiiHH", dib_size, 2, 2, 1, bits)
    dib = head + bytes(dib_size - len(head))
    size = 14 + len(dib) + len(pixels) if declared is None else declared
    return b"BM" + struct.pack("<IHHI", size, 0, 0, 14 + len(dib)) + dib + pixels


@pytest.mark.parametrize(
    "data",
    [
        b"BMdb_password=hunter2\nsmtp_user=admin\n",
        _bitmap(bits=7),
        _bitmap(dib_size=44),
        _bitmap(declared=4096),
    ],
    ids=["text-starting-with-BM", "bit-depth-7", "unknown-dib-size", "size-field-too-big"],
)
def test_a_fake_bitmap_is_a_bad_image(emu: Emulator, client: httpx.Client, data: bytes) -> None:
    message = error(post(client, emu, body(PLUS, [{"image": data_uri(data, "bmp")}])), 400)
    assert message.startswith("image data is invalid")
    assert "hunter2" not in message
    assert ok(post(client, emu, body(PLUS, [{"image": data_uri(_bitmap(), "bmp")}])))


def test_image_must_be_a_string(emu: Emulator, client: httpx.Client) -> None:
    error(post(client, emu, body(PLUS, [{"image": 42}])), 400)
    error(post(client, emu, body(PLUS, [{"multi_images": [URL_IMAGE, None]}])), 400)


def test_qwen_vl_takes_more_formats(emu: Emulator, client: httpx.Client) -> None:
    ok(post(client, emu, body(QWEN3, [{"image": data_uri(webp(), "webp")}])))
    ok(post(client, emu, body(QWEN3, [{"image": "https://example.com/cat.webp"}])))
    ok(post(client, emu, body(QWEN3, [{"image": "https://example.com/cat.tiff"}])))
    response = post(client, emu, body(QWEN3, [{"image": data_uri(GIF, "gif")}]))
    assert "format GIF is not supported" in error(response, 400)


def test_oss_urls_need_the_resolve_header(emu: Emulator, client: httpx.Client) -> None:
    payload = body(PLUS, [{"image": "oss://bucket/cat.png"}])
    error(post(client, emu, payload), 400)
    ok(post(client, emu, payload, headers={"X-DashScope-OssResourceResolve": "enable"}))


def test_videos_are_urls_in_the_model_formats(emu: Emulator, client: httpx.Client) -> None:
    response = post(client, emu, body(PLUS, [{"video": "data:video/mp4;base64,AAAA"}]))
    assert "public URL" in error(response, 400)
    error(post(client, emu, body(PLUS, [{"video": "file:///tmp/a.mp4"}])), 400)
    ok(post(client, emu, body(PLUS, [{"video": "https://example.com/a.flv"}])))
    response = post(client, emu, body(QWEN3, [{"video": "https://example.com/a.flv"}]))
    assert "format FLV is not supported" in error(response, 400)
    ok(post(client, emu, body(QWEN3, [{"video": "https://example.com/a.mov"}])))


# --- fusion -------------------------------------------------------------------------------


def _normalized_sum(vectors: list[list[float]]) -> list[float]:
    total = [sum(v[i] for v in vectors) for i in range(len(vectors[0]))]
    n = norm(total)
    return [x / n for x in total]


def test_qwen3_independent_or_fused(emu: Emulator, client: httpx.Client) -> None:
    contents = [{"text": "a cat"}, {"image": URL_IMAGE}, {"video": URL_VIDEO}]
    separate = embeddings(ok(post(client, emu, body(QWEN3, contents))))
    assert [separate[i][0] for i in range(3)] == ["text", "image", "video"]
    for flag in (False, None):
        again = embeddings(ok(post(client, emu, body(QWEN3, contents, enable_fusion=flag))))
        assert again == separate
    fused = ok(post(client, emu, body(QWEN3, contents, enable_fusion=True)))
    [item] = fused["output"]["embeddings"]
    assert item["index"] == 0 and item["type"] == "fusion"
    expected = _normalized_sum([separate[i][1] for i in range(3)])
    assert item["embedding"] == pytest.approx(expected, abs=1e-6)
    response = post(client, emu, body(QWEN3, contents, enable_fusion="yes"))
    error(response, 400)


def test_qwen25_always_fuses_each_modality_once(emu: Emulator, client: httpx.Client) -> None:
    result = ok(post(client, emu, body(QWEN25, [{"text": "a cat"}, {"image": URL_IMAGE}])))
    assert [(e["index"], e["type"]) for e in result["output"]["embeddings"]] == [(0, "fusion")]
    # enable_fusion does not apply to qwen2.5-vl: ignored, still one fused vector
    result = ok(
        post(client, emu, body(QWEN25, [{"text": "a"}, {"image": URL_IMAGE}], enable_fusion=False))
    )
    assert len(result["output"]["embeddings"]) == 1
    response = post(client, emu, body(QWEN25, [{"text": "a cat"}, {"text": "a dog"}]))
    assert "at most once" in error(response, 400)
    # several keys in one item are only for the snapshot models
    error(post(client, emu, body(QWEN25, [{"text": "a cat", "image": URL_IMAGE}])), 400)


def test_enable_fusion_is_ignored_by_independent_models(
    emu: Emulator, client: httpx.Client
) -> None:
    contents = [{"text": "a cat"}, {"image": URL_IMAGE}]
    result = ok(post(client, emu, body(PLUS, contents, enable_fusion=True)))
    assert {e["type"] for e in result["output"]["embeddings"]} == {"text", "image"}


def test_snapshot_fuses_keys_of_one_object(emu: Emulator, client: httpx.Client) -> None:
    contents = [
        {"text": "red shoe", "image": URL_IMAGE},
        {"text": "red shoe"},
        {"image": URL_IMAGE},
        {"text": "red shoe", "multi_images": [URL_IMAGE, "https://example.com/b.png"]},
        {"text": "red shoe", "image": URL_IMAGE, "video": URL_VIDEO},
    ]
    got = embeddings(ok(post(client, emu, body(SNAPSHOT, contents))))
    assert [got[i][0] for i in range(5)] == ["fusion", "text", "image", "fusion", "fusion"]
    assert got[0][1] == pytest.approx(_normalized_sum([got[1][1], got[2][1]]), abs=1e-6)
    for bad in (
        {"image": URL_IMAGE, "video": URL_VIDEO},
        {"image": URL_IMAGE, "multi_images": [URL_IMAGE]},
    ):
        assert "cannot be fused" in error(post(client, emu, body(SNAPSHOT, [bad])), 400)
    # non-snapshot models embed each item on its own: one key per item
    response = post(client, emu, body(PLUS, [{"text": "red shoe", "image": URL_IMAGE}]))
    assert "exactly one of" in error(response, 400)


def test_one_peace_shape_and_options(emu: Emulator, client: httpx.Client) -> None:
    result = ok(post(client, emu, body(ONE_PEACE, [{"text": "hello", "factor": 2}])))
    assert set(result["output"]) == {"embedding"}
    assert len(result["output"]["embedding"]) == 1536
    assert norm(result["output"]["embedding"]) == pytest.approx(1.0, abs=1e-5)
    ok(post(client, emu, body(ONE_PEACE, [{"audio": URL_AUDIO, "factor": 1.5}])))
    ok(post(client, emu, body(ONE_PEACE, [{"image": data_uri(png())}])))
    for factor in (-1, 0, "2", None):
        error(post(client, emu, body(ONE_PEACE, [{"text": "hello", "factor": factor}])), 400)
    error(post(client, emu, body(ONE_PEACE, [{"audio": "data:audio/flac;base64,AAAA"}])), 400)
    long_text = "w " * (ONE_PEACE.max_tokens_per_input + 5)
    error(post(client, emu, body(ONE_PEACE, [{"text": long_text}])), 400)
    truncated = ok(post(client, emu, body(ONE_PEACE, [{"text": long_text}], auto_truncation=True)))
    exact = " ".join(["w"] * ONE_PEACE.max_tokens_per_input)
    assert (
        truncated["output"] == ok(post(client, emu, body(ONE_PEACE, [{"text": exact}])))["output"]
    )
    error(post(client, emu, body(ONE_PEACE, [{"text": "x"}], auto_truncation="yes")), 400)


def test_factor_is_accepted_and_ignored_elsewhere(emu: Emulator, client: httpx.Client) -> None:
    plain = ok(post(client, emu, body(PLUS, [{"text": "hello"}])))
    weighted = ok(post(client, emu, body(PLUS, [{"text": "hello", "factor": 3}])))
    assert plain["output"] == weighted["output"]


# --- parameters ---------------------------------------------------------------------------


def test_parameters(emu: Emulator, client: httpx.Client) -> None:
    text = [{"text": "a cat"}]
    assert "only dense" in error(post(client, emu, body(PLUS, text, output_type="sparse")), 400)
    ok(post(client, emu, body(PLUS, text, output_type="dense")))
    video = [{"video": URL_VIDEO}]
    for fps in (1.5, -0.1, "0.5", True):
        assert "fps is invalid" in error(post(client, emu, body(QWEN3, video, fps=fps)), 400)
    full = ok(post(client, emu, body(QWEN3, video)))["usage"]
    half = ok(post(client, emu, body(QWEN3, video, fps=0.5)))["usage"]
    assert full["input_tokens"] == 2 * half["input_tokens"]
    ok(post(client, emu, body(QWEN3, video, fps=0)))
    for name, bad in (("res_level", 4), ("res_level", "1"), ("max_video_frames", 65)):
        error(post(client, emu, body(SNAPSHOT, text, **{name: bad})), 400)
    ok(post(client, emu, body(SNAPSHOT, text, res_level=2, max_video_frames=8)))
    ok(post(client, emu, body(PLUS, text, res_level=9)))  # not a snapshot: ignored


def test_instruct(emu: Emulator, client: httpx.Client) -> None:
    text = [{"text": "a cat on a sofa"}]
    plain = embeddings(ok(post(client, emu, body(QWEN3, text))))[0][1]
    instructed = embeddings(
        ok(post(client, emu, body(QWEN3, text, instruct="Retrieve images of the query")))
    )[0][1]
    assert plain != instructed and cosine(plain, instructed) > 0.9
    error(post(client, emu, body(QWEN3, text, instruct=5)), 400)
    # no supports_instruct: ignored
    assert not PLUS.supports_instruct
    ok_plain = ok(post(client, emu, body(PLUS, text)))["output"]
    assert ok(post(client, emu, body(PLUS, text, instruct="x")))["output"] == ok_plain


# --- vectors, order, usage ----------------------------------------------------------------


def test_shuffled_order_with_correct_index(emu: Emulator, client: httpx.Client) -> None:
    texts = ["alpha", "beta gamma", "delta", "epsilon zeta", "eta"]
    contents = [{"text": t} for t in texts]
    result = ok(post(client, emu, body(PLUS, contents)))
    order = [e["index"] for e in result["output"]["embeddings"]]
    assert order != list(range(5)) and sorted(order) == list(range(5))
    got = embeddings(result)
    for i, text in enumerate(texts):
        alone = embeddings(ok(post(client, emu, body(PLUS, [{"text": text}]))))[0][1]
        assert got[i] == ("text", alone)


def test_deterministic_across_requests_and_servers(emu: Emulator, client: httpx.Client) -> None:
    contents = [{"text": "hello"}, {"image": data_uri(png())}, {"image": URL_IMAGE}]
    first = ok(post(client, emu, body(PLUS, contents)))
    second = ok(post(client, emu, body(PLUS, contents)))
    assert first["output"] == second["output"] and first["usage"] == second["usage"]
    assert first["request_id"] != second["request_id"]
    with Emulator(api_key=KEY, shuffle=False) as other:
        third = httpx.post(
            other.base_url + PATH, json=body(PLUS, contents), headers={"X-DashScope-ApiKey": KEY}
        ).json()
    assert [e["index"] for e in third["output"]["embeddings"]] == [0, 1, 2]
    assert embeddings(third) == embeddings(first)
    # other models and other dimensions give other vectors
    flash = ok(
        post(client, emu, body("tongyi-embedding-vision-flash", [{"text": "hello"}], dimension=512))
    )
    small = ok(post(client, emu, body(PLUS, [{"text": "hello"}], dimension=512)))
    assert embeddings(flash)[0][1] != embeddings(small)[0][1]


def test_text_to_image_closeness(emu: Emulator, client: httpx.Client) -> None:
    contents = [
        {"text": "red running shoe"},
        {"image": data_uri(png(text="a red running shoe on grass", shade=1))},
        {"image": data_uri(png(text="blue ocean waves at dusk", shade=2))},
        {"image": "https://example.com/photos/red-running-shoe.jpg"},
        {"image": data_uri(jpeg(comment="red running shoe"), "jpeg")},
        {"image": data_uri(png(shade=3))},
        {"image": data_uri(png(shade=4))},
    ]
    got = embeddings(ok(post(client, emu, body(PLUS, contents))))
    query = got[0][1]
    shoe_png, ocean_png, shoe_url, shoe_jpeg = (got[i][1] for i in (1, 2, 3, 4))
    assert cosine(query, shoe_png) > 0.5
    assert cosine(query, shoe_url) > 0.5
    assert cosine(query, shoe_jpeg) > 0.5
    assert abs(cosine(query, ocean_png)) < 0.2
    assert abs(cosine(got[5][1], got[6][1])) < 0.3  # wordless images: only their bytes
    assert abs(cosine(query, got[5][1])) < 0.3


def test_usage_per_family(emu: Emulator, client: httpx.Client) -> None:
    image = data_uri(png(112, 56))  # 4 x 2 patches of 28 px
    text = {"text": "hello world"}  # 2 tokens
    usage = ok(post(client, emu, body(PLUS, [text, {"image": image}])))["usage"]
    assert usage == {
        "input_tokens": 10,
        "input_tokens_details": {"text_tokens": 2, "image_tokens": 8},
        "output_tokens": 0,
        "total_tokens": 10,
    }
    usage = ok(post(client, emu, body(QWEN3, [text, {"image": image}])))["usage"]
    assert usage == {"input_tokens": 10, "image_tokens": 8, "image_count": 1}
    usage = ok(
        post(
            client, emu, body(QWEN3, [text, {"multi_images": [image, image]}, {"video": URL_VIDEO}])
        )
    )["usage"]
    assert usage["image_count"] == 2 and usage["image_tokens"] == 16
    assert usage["duration"] == 10 and usage["input_tokens"] > 18
    usage = ok(post(client, emu, body(V1, [{"image": data_uri(png(1, 1))}])))["usage"]
    assert usage == {"input_tokens": 4, "image_tokens": 4, "image_count": 1}
