"""The core's multimodal calls against the bundled emulator over loopback HTTP.

Inputs and the bare-string rule, local images as data URIs, every model's limits checked
before sending, fused vs independent vectors, request planning, async, usage.
"""

from __future__ import annotations

import base64
import io
import math
import pathlib
import subprocess
import sys
import typing
from collections.abc import Iterator

import pytest

from dashscope_embeddings import (
    MODELS,
    AsyncDashScopeClient,
    Audio,
    DashScopeClient,
    EmbeddingResult,
    Fused,
    Image,
    InvalidInputError,
    ModelSpec,
    MultiImages,
    PartialEmbeddingError,
    Text,
    Video,
    get_model_spec,
)
from dashscope_embeddings.emulator import Emulator
from tests.conftest import TEST_KEY
from tests.media import GIF, bmp, data_uri, jpeg, png, png_of_size, webp

MM_PATH = "/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding"
MULTIMODAL = [s for s in MODELS.values() if s.endpoint == "multimodal"]
WITH_IMAGES = [s for s in MULTIMODAL if "image" in s.modalities]
WITH_MULTI_IMAGES = [s for s in MULTIMODAL if "multi_images" in s.modalities]
QWEN3 = "qwen3-vl-embedding"
QWEN25 = "qwen2.5-vl-embedding"
PLUS = "tongyi-embedding-vision-plus"
SNAPSHOT = "tongyi-embedding-vision-plus-2026-03-06"
V1 = "multimodal-embedding-v1"
ONE_PEACE = "multimodal-embedding-one-peace-v1"


def bodies(emulator: Emulator) -> list[dict[str, typing.Any]]:
    return [r.json for r in emulator.requests if r.path == MM_PATH]


def contents(emulator: Emulator) -> list[list[dict[str, typing.Any]]]:
    return [b["input"]["contents"] for b in bodies(emulator)]


def embed(client: DashScopeClient, inputs: typing.Any, **kw: typing.Any) -> EmbeddingResult:
    """``client.embed_multimodal`` with ``on_error="raise"``: always a whole result."""
    result = client.embed_multimodal(inputs, **kw)
    assert isinstance(result, EmbeddingResult)
    return result


def cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(
        sum(x * x for x in a) * sum(y * y for y in b)
    )


def decoded(uri: str) -> bytes:
    return base64.b64decode(uri.split(",", 1)[1])


@pytest.fixture
def client(emulator: Emulator) -> Iterator[DashScopeClient]:
    with DashScopeClient(TEST_KEY, base_url=emulator.url) as c:
        yield c


def refused(
    client: DashScopeClient, emulator: Emulator, inputs: list[object], **kw: typing.Any
) -> InvalidInputError:
    """The call fails before anything is sent; returns the error."""
    emulator.clear_requests()
    with pytest.raises(InvalidInputError) as info:
        embed(client, inputs, **kw)
    assert bodies(emulator) == []
    assert TEST_KEY not in str(info.value)
    return info.value


# --- the bare-string rule and the input kinds ------------------------------------------------


def test_a_bare_string_is_always_text_even_a_path_or_an_image_url(
    client: DashScopeClient, emulator: Emulator, tmp_path: pathlib.Path
) -> None:
    image_file = tmp_path / "cat.png"
    image_file.write_bytes(png(text="cat"))
    inputs: list[object] = [str(image_file), "https://example.com/img/cat.jpg", "cat.png"]
    result = embed(client, inputs, model=PLUS)
    assert len(result.embeddings) == 3
    sent = [item for request in contents(emulator) for item in request]
    assert sorted(sent, key=str) == sorted(({"text": t} for t in inputs), key=str)
    # Said explicitly, the same strings are images.
    emulator.clear_requests()
    embed(client, [Image(str(image_file)), Image("https://example.com/img/cat.jpg")], model=PLUS)
    sent = [item for request in contents(emulator) for item in request]
    assert {next(iter(item)) for item in sent} == {"image"}


def test_unambiguous_bare_values_are_images(
    client: DashScopeClient, emulator: Emulator, tmp_path: pathlib.Path
) -> None:
    data = png(text="shoe")
    path = tmp_path / "shoe.png"
    path.write_bytes(data)
    inputs: list[object] = [path, data, bytearray(data), memoryview(data), io.BytesIO(data)]
    result = embed(client, inputs, model=PLUS)
    assert len(set(map(tuple, result.embeddings))) == 1  # the same image every time
    [request] = contents(emulator)
    assert request == [{"image": "data:image/png;base64," + base64.b64encode(data).decode()}]


def test_other_values_are_refused_naming_the_index(
    client: DashScopeClient, emulator: Emulator
) -> None:
    error = refused(client, emulator, ["ok", 42], model=PLUS)
    assert error.index == 1 and "input 1 is a int" in str(error)
    error = refused(client, emulator, [Text(b"bytes")], model=PLUS)  # type: ignore[arg-type]
    assert error.index == 0 and "not a str" in str(error)
    with pytest.raises(InvalidInputError, match="must be a list"):
        embed(client, "just one string", model=PLUS)
    with pytest.raises(InvalidInputError, match="at least two parts"):
        Fused(text="only text")


def test_text_model_is_refused_naming_the_multimodal_models(
    client: DashScopeClient, emulator: Emulator
) -> None:
    error = refused(client, emulator, ["hi"], model="text-embedding-v4")
    assert "not a multimodal one" in str(error) and QWEN3 in str(error) and PLUS in str(error)


# --- local images: byte for byte, MIME sniffed, read only when safe --------------------------


@pytest.mark.parametrize(
    ("data", "mime"),
    [(png(), "image/png"), (jpeg(), "image/jpeg"), (bmp(), "image/bmp")],
)
def test_local_files_go_byte_for_byte_with_the_sniffed_type(
    client: DashScopeClient, emulator: Emulator, tmp_path: pathlib.Path, data: bytes, mime: str
) -> None:
    path = tmp_path / "misnamed.gif"  # the name lies; the bytes decide
    path.write_bytes(data)
    embed(client, [Image(path)], model=PLUS)
    [[item]] = contents(emulator)
    assert item["image"].startswith(f"data:{mime};base64,")
    assert decoded(item["image"]) == data


def test_file_objects_are_read_from_their_position(
    client: DashScopeClient, emulator: Emulator, tmp_path: pathlib.Path
) -> None:
    data = png(text="boat")
    stream = io.BytesIO(b"HEADER" + data)
    stream.seek(6)
    path = tmp_path / "boat.png"
    path.write_bytes(data)
    with path.open("rb") as handle:
        embed(client, [Image(stream), Image(handle)], model=PLUS)
    [request] = contents(emulator)
    assert [decoded(item["image"]) for item in request] == [data]  # identical: sent once
    with path.open("r", encoding="latin-1") as text_mode:
        error = refused(client, emulator, [Image(text_mode)], model=PLUS)  # type: ignore[arg-type]
    assert "binary mode" in str(error)


def test_urls_and_data_uris_pass_unchanged(client: DashScopeClient, emulator: Emulator) -> None:
    uri = data_uri(png(text="lamp"), "jpeg")  # a wrong declared subtype is the caller's own
    url = "https://example.com/img/lamp.png?size=large"
    embed(client, [Image(url), Image(uri)], model=PLUS)
    [request] = contents(emulator)
    assert request == [{"image": url}, {"image": uri}]


def test_pil_images_are_saved_in_their_own_format(
    client: DashScopeClient, emulator: Emulator
) -> None:
    # Pillow comes with llama-index-core; the core itself never imports it (next test).
    from PIL import Image as PILImage

    drawn = PILImage.new("RGB", (8, 8), (200, 20, 20))  # made in memory: no format -> PNG
    buffer = io.BytesIO()
    drawn.save(buffer, format="BMP")
    opened = PILImage.open(io.BytesIO(buffer.getvalue()))  # read from a BMP: stays BMP
    embed(client, [drawn, Image(opened)], model=PLUS)
    [request] = contents(emulator)
    assert [item["image"].split(";")[0] for item in request] == ["data:image/png", "data:image/bmp"]
    assert decoded(request[1]["image"]) == buffer.getvalue()


def test_the_core_never_imports_pillow() -> None:
    code = (
        "import sys, dashscope_embeddings\n"
        "from dashscope_embeddings.resources import multimodal\n"
        "from dashscope_embeddings._images import read_image\n"
        "read_image(b'\\x89PNG\\r\\n\\x1a\\n', 'input 0', 0, max_bytes=99, model='m')\n"
        "print([m for m in sys.modules if m.split('.')[0] == 'PIL'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: str(p / "missing.png"), "no such image file"),
        (lambda p: p, "is a directory"),
        (
            lambda p: (p / "notes.png").write_text("just some text") and p / "notes.png",
            "not an image",
        ),
        (lambda p: (p / "empty.png").write_bytes(b"") or p / "empty.png", "empty"),
        (lambda p: (p / "anim.png").write_bytes(GIF) and p / "anim.png", "GIF is not a format"),
        (lambda p: "file://" + str(p / "a.png"), "file:// URLs are refused"),
        (lambda p: "ftp://example.com/a.png", "ftp:// URLs are refused"),
        (lambda p: "oss://bucket/a.png", "oss:// URLs are refused"),
        (lambda p: "data:text/plain;base64,aGk=", "data:image/<format>;base64"),
        (lambda p: "data:image/png;base64,not base64!", "not valid base64"),
        (lambda p: "https://example.com/anim.gif", "GIF is not a format"),
        (lambda p: "https:///no-host.png", "not a valid URL"),
    ],
    ids=[
        "missing",
        "directory",
        "text-file-named-png",
        "empty-file",
        "gif-on-tongyi",
        "file-url",
        "ftp-url",
        "oss-url",
        "data-uri-not-image",
        "data-uri-bad-base64",
        "gif-url-on-tongyi",
        "url-without-host",
    ],
)
def test_bad_images_are_refused_before_sending(
    client: DashScopeClient,
    emulator: Emulator,
    tmp_path: pathlib.Path,
    make: typing.Callable[[pathlib.Path], object],
    message: str,
) -> None:
    error = refused(client, emulator, ["fine", "also fine", Image(make(tmp_path))], model=PLUS)  # type: ignore[arg-type]
    assert error.index == 2
    assert str(error).startswith("input 2") and message in str(error)


SECRET_TEXT = b"BMdb_password=hunter2\nsmtp_user=admin\n"


@pytest.mark.parametrize("as_path", [True, False], ids=["file", "bytes"])
def test_a_text_starting_with_bm_is_not_taken_for_a_bitmap(
    client: DashScopeClient, emulator: Emulator, tmp_path: pathlib.Path, as_path: bool
) -> None:
    path = tmp_path / "settings.bmp"
    path.write_bytes(SECRET_TEXT)
    source: object = path if as_path else SECRET_TEXT
    error = refused(client, emulator, ["fine", Image(source)], model=PLUS)  # type: ignore[arg-type]
    assert error.index == 1 and "not an image" in str(error)
    assert "hunter2" not in str(error)
    assert emulator.requests == []


def test_a_bitmap_with_a_valid_header_is_sent(client: DashScopeClient, emulator: Emulator) -> None:
    assert len(embed(client, [Image(bmp(3, 2))], model=PLUS).embeddings) == 1
    (sent,) = contents(emulator)
    assert sent[0]["image"].startswith("data:image/bmp;base64,")


def test_too_big_a_file_is_never_read(
    client: DashScopeClient,
    emulator: Emulator,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limit = MODELS[PLUS].max_image_bytes
    assert limit is not None
    path = tmp_path / "huge.png"
    with path.open("wb") as handle:
        handle.truncate(limit + 1)  # sparse: no disk used

    def no_open(*args: object, **kwargs: object) -> typing.NoReturn:
        raise AssertionError("the file was opened")

    monkeypatch.setattr("dashscope_embeddings._images.open", no_open, raising=False)
    error = refused(client, emulator, [Image(path)], model=PLUS)
    assert f"{limit + 1:,} bytes, over {PLUS}'s limit of 3 MB" in str(error)


def test_a_truncated_image_is_refused_by_the_service_and_only_it_fails(
    client: DashScopeClient, emulator: Emulator
) -> None:
    good, cut = png(text="whole"), png(text="cut")[:-20]
    with pytest.raises(PartialEmbeddingError) as info:
        embed(client, ["a", Image(good), Image(cut), "b"], model=PLUS)
    result = info.value.result
    assert set(result.failed) == {2} and "truncated" in result.failed[2].message
    assert all(v is not None for i, v in enumerate(result.embeddings) if i != 2)
    # The request was split down to the input at fault; the others were embedded.
    assert len(bodies(emulator)) > 1


# --- every model's limits --------------------------------------------------------------------


@pytest.mark.parametrize("spec", MULTIMODAL, ids=lambda s: s.name)
def test_items_per_request_and_order(
    client: DashScopeClient, emulator: Emulator, spec: ModelSpec
) -> None:
    texts = [f"item {i} word{i}" for i in range(2 * spec.max_batch_size + 1)]
    result = embed(client, texts, model=spec.name)
    sent = contents(emulator)
    per_request = 1 if spec.fusion == "only" else spec.max_batch_size
    assert max(len(c) for c in sent) == per_request
    assert len(sent) == -(-len(texts) // per_request)
    # Order kept (the emulator shuffles its answers): each vector is the one of its own text.
    emulator.clear_requests()
    again = embed(client, [texts[-2]], model=spec.name)
    assert result.embeddings[-2] == again.embeddings[0]
    assert all(result.embeddings[i] != again.embeddings[0] for i in (0, -1))
    assert len(result.embeddings[0]) == spec.default_dimension


@pytest.mark.parametrize("spec", MULTIMODAL, ids=lambda s: s.name)
def test_text_token_limit(client: DashScopeClient, emulator: Emulator, spec: ModelSpec) -> None:
    long_text = " ".join(["word"] * (spec.max_tokens_per_input + 1))
    error = refused(client, emulator, ["short", long_text], model=spec.name)
    assert error.index == 1 and f"limit of {spec.max_tokens_per_input} per text" in str(error)
    with pytest.raises(InvalidInputError, match="input 0: the text is only whitespace"):
        embed(client, ["  "], model=spec.name)


@pytest.mark.parametrize("spec", WITH_IMAGES, ids=lambda s: s.name)
def test_image_size_limit(client: DashScopeClient, emulator: Emulator, spec: ModelSpec) -> None:
    limit = spec.max_image_bytes or 10 * 1024 * 1024
    error = refused(client, emulator, [Image(png_of_size(limit + 1))], model=spec.name)
    assert error.index == 0 and f"over {spec.name}'s limit of" in str(error)


def test_an_image_at_the_limit_is_sent(client: DashScopeClient, emulator: Emulator) -> None:
    limit = MODELS[PLUS].max_image_bytes
    assert limit is not None
    result = embed(client, [Image(png_of_size(limit))], model=PLUS)
    assert len(result.embeddings) == 1 and len(bodies(emulator)) == 1


@pytest.mark.parametrize("spec", WITH_MULTI_IMAGES, ids=lambda s: s.name)
def test_images_per_input(client: DashScopeClient, emulator: Emulator, spec: ModelSpec) -> None:
    limit = spec.max_images_per_input or spec.max_batch_size
    images = [png(shade=i % 256, width=1 + i // 256) for i in range(limit + 1)]
    error = refused(client, emulator, ["x", MultiImages(images)], model=spec.name)
    assert error.index == 1 and f"limit of {limit} images per input" in str(error)
    result = embed(client, [MultiImages(images[:limit])], model=spec.name)
    assert len(result.embeddings) == 1


def test_qwen3_images_share_the_request_cap(client: DashScopeClient, emulator: Emulator) -> None:
    # qwen3-vl-embedding: texts, images, and each image of a multi_images share the 20 cap.
    group = MultiImages([png(shade=i) for i in range(15)])
    inputs: list[object] = [group, *(f"text {i}" for i in range(10))]
    embed(client, inputs, model=QWEN3)
    counts = [sum(len(i.get("multi_images", [0])) for i in c) for c in contents(emulator)]
    assert max(counts) <= 20 and sum(counts) == 25


@pytest.mark.parametrize(
    ("model", "item", "missing"),
    [
        (PLUS, Audio("https://example.com/moo.flac"), "audio"),
        (QWEN25, MultiImages([png()]), "multi-images"),
        (V1, MultiImages([png()]), "multi-images"),
        (ONE_PEACE, Video("https://example.com/clip.mp4"), "video"),
    ],
)
def test_modalities_a_model_lacks(
    client: DashScopeClient, emulator: Emulator, model: str, item: object, missing: str
) -> None:
    error = refused(client, emulator, [item], model=model)
    assert f"{model} takes no {missing} input" in str(error)


def test_audio_on_one_peace(client: DashScopeClient, emulator: Emulator) -> None:
    result = embed(client, [Audio("https://example.com/moo.flac")], model=ONE_PEACE)
    assert len(result.embeddings[0]) == 1536
    assert contents(emulator) == [[{"audio": "https://example.com/moo.flac"}]]


def test_image_formats_per_model(client: DashScopeClient, emulator: Emulator) -> None:
    assert len(embed(client, [Image(webp())], model=QWEN3).embeddings) == 1
    error = refused(client, emulator, [Image(webp())], model=PLUS)
    assert "WEBP is not a format" in str(error) and "BMP, JPEG, PNG" in str(error)


def test_video_urls_only_in_the_model_formats(client: DashScopeClient, emulator: Emulator) -> None:
    mkv = Video("https://example.com/clips/race.mkv")
    assert len(embed(client, [mkv], model=PLUS).embeddings) == 1
    error = refused(client, emulator, [mkv], model=QWEN3)
    assert "MKV is not a format" in str(error)
    for bad in ("/videos/clip.mp4", "file:///videos/clip.mp4", "data:video/mp4;base64,AAAA"):
        error = refused(client, emulator, [Video(bad)], model=PLUS)
        assert "must be a public http(s) URL" in str(error)


# --- options only where they apply -----------------------------------------------------------


def test_dimension(client: DashScopeClient, emulator: Emulator) -> None:
    result = embed(client, ["x"], model=PLUS, dimension=256)
    assert len(result.embeddings[0]) == 256 and bodies(emulator)[0]["parameters"] == {
        "dimension": 256
    }
    error = refused(client, emulator, ["x"], model=PLUS, dimension=300)
    assert "dimension 300 is not offered" in str(error) and "1152, 1024" in str(error)
    # A model with one size takes no dimension parameter: its own size is not sent.
    emulator.clear_requests()
    embed(client, ["x"], model=V1, dimension=1024)
    assert "parameters" not in bodies(emulator)[0]
    refused(client, emulator, ["x"], model=V1, dimension=512)


def test_instruct_and_fps_go_only_to_models_that_take_them(
    client: DashScopeClient, emulator: Emulator
) -> None:
    clip = Video("https://example.com/clip.mp4")
    embed(client, [clip, "x"], model=QWEN3, instruct="Find the clip", fps=0.5)
    assert bodies(emulator)[0]["parameters"] == {"fps": 0.5, "instruct": "Find the clip"}
    error = refused(client, emulator, ["x"], model=PLUS, instruct="Find")
    assert f"{PLUS} ignores instruct" in str(error) and QWEN3 in str(error)
    error = refused(client, emulator, ["x"], model=ONE_PEACE, fps=0.5)
    assert "takes no video, so no fps" in str(error)
    error = refused(client, emulator, [clip], model=PLUS, fps=2)
    assert "fps must be a number in [0, 1]" in str(error)
    refused(client, emulator, ["x"], model=QWEN3, instruct="  ")


# --- fused vs independent --------------------------------------------------------------------


def test_qwen3_fuses_with_enable_fusion_in_a_request_of_its_own(
    client: DashScopeClient, emulator: Emulator
) -> None:
    shoe = png(text="red shoe")
    result = embed(
        client,
        [Fused(text="red shoe", image=shoe), "red shoe", Image(shoe), "blue sky"],
        model=QWEN3,
    )
    fused, text, image, other = result.embeddings
    by_fusion = {bool(b.get("parameters", {}).get("enable_fusion")): b for b in bodies(emulator)}
    assert set(by_fusion) == {True, False} and len(bodies(emulator)) == 2
    assert [next(iter(i)) for i in by_fusion[True]["input"]["contents"]] == ["text", "image"]
    assert len(by_fusion[False]["input"]["contents"]) == 3
    assert fused not in (text, image)
    assert cos(fused, text) > 0.9 and cos(fused, image) > 0.9 and cos(fused, other) < 0.3


def test_qwen25_always_fuses_so_every_input_is_a_request(
    client: DashScopeClient, emulator: Emulator
) -> None:
    clip = "https://example.com/clips/red-shoe.mp4"
    result = embed(
        client,
        [Fused(text="red shoe", image=png(text="red shoe"), video=clip), "red shoe", Image(png())],
        model=QWEN25,
    )
    assert [len(c) for c in contents(emulator)] in ([3, 1, 1], [1, 3, 1], [1, 1, 3])
    assert len(result.embeddings) == 3 and cos(result.embeddings[0], result.embeddings[1]) > 0.8


def test_snapshots_fuse_the_keys_of_one_content_object(
    client: DashScopeClient, emulator: Emulator
) -> None:
    result = embed(
        client, [Fused(text="red shoe", image=png(text="red shoe")), "red shoe"], model=SNAPSHOT
    )
    [request] = contents(emulator)
    assert sorted(request[0]) == ["image", "text"] and request[1] == {"text": "red shoe"}
    assert cos(*result.embeddings) > 0.9
    error = refused(
        client, emulator, [Fused(image=png(), video="https://example.com/a.mp4")], model=SNAPSHOT
    )
    assert "cannot fuse image+video" in str(error) and "text+image" in str(error)


@pytest.mark.parametrize("model", [PLUS, "tongyi-embedding-vision-flash", V1])
def test_models_that_cannot_fuse_refuse_fused_inputs(
    client: DashScopeClient, emulator: Emulator, model: str
) -> None:
    error = refused(client, emulator, ["x", Fused(text="a", image=png())], model=model)
    assert error.index == 1 and f"{model} cannot fuse" in str(error) and QWEN3 in str(error)


def test_one_peace_returns_one_vector_per_request(
    client: DashScopeClient, emulator: Emulator
) -> None:
    result = embed(client, ["red shoe", Image(png(text="red shoe"))], model=ONE_PEACE)
    assert len(bodies(emulator)) == 2 and cos(*result.embeddings) > 0.7
    error = refused(client, emulator, [Fused(text="a", image=png())], model=ONE_PEACE)
    assert "over multimodal-embedding-one-peace-v1's limit of 1 content items" in str(error)


# --- dedupe, usage, unknown models, async ----------------------------------------------------


def test_identical_inputs_are_sent_once_and_usage_is_summed(
    client: DashScopeClient, emulator: Emulator
) -> None:
    shoe = png(text="shoe")
    inputs: list[object] = [
        Image(shoe),
        "shoe",
        Image(io.BytesIO(shoe)),
        "shoe",
        *map(str, range(8)),
    ]
    result = embed(client, inputs, model=PLUS)
    assert (
        result.embeddings[0] == result.embeddings[2]
        and result.embeddings[1] == result.embeddings[3]
    )
    sent = [item for c in contents(emulator) for item in c]
    assert len(sent) == 10 and len(bodies(emulator)) == 2
    spec = MODELS[PLUS]
    assert spec.price_cny_per_1k is not None
    assert result.usage.requests == 2 and result.usage.total_tokens > 0
    # Every token is priced at the text rate (see resources/multimodal.py).
    assert result.usage.cost == pytest.approx(
        result.usage.total_tokens * spec.price_cny_per_1k / 1000
    )
    assert client.usage.total_tokens == result.usage.total_tokens


def test_a_model_the_registry_lacks_can_be_described(client: DashScopeClient) -> None:
    with pytest.raises(InvalidInputError, match="pass a ModelSpec with endpoint='multimodal'"):
        embed(client, ["x"], model="my-vl-model")
    spec = get_model_spec(PLUS).replace(max_batch_size=2)
    result = embed(client, ["a", "b", "c"], model=spec)
    assert len(result.embeddings) == 3


def test_async_client(emulator: Emulator) -> None:
    import asyncio

    shoe = png(text="red shoe")
    inputs: list[object] = [Fused(text="red shoe", image=shoe), *(f"t{i}" for i in range(25))]

    async def go() -> list[list[float]]:
        async with AsyncDashScopeClient(TEST_KEY, base_url=emulator.url) as aclient:
            result = await aclient.embed_multimodal(inputs, model=QWEN3)
            assert isinstance(result, EmbeddingResult)
            return result.embeddings

    vectors = asyncio.run(go())
    assert len(bodies(emulator)) == 3  # the fused input alone, then 25 texts in 20 + 5
    emulator.clear_requests()
    with DashScopeClient(TEST_KEY, base_url=emulator.url) as sync:
        assert embed(sync, inputs, model=QWEN3).embeddings == vectors


def test_image_tokens_are_priced_at_the_image_rate(client: DashScopeClient) -> None:
    spec = MODELS["qwen3-vl-embedding"]
    assert spec.price_cny_per_1k is not None and spec.image_price_cny_per_1k is not None
    result = embed(client, [Image(png(text="shoe")), "a red shoe"], model=spec.name)
    tokens = result.usage.total_tokens
    assert result.usage.cost is not None and result.usage.currency == "CNY"
    # some tokens are image tokens, priced higher than text: strictly between the two rates
    assert tokens * spec.price_cny_per_1k / 1000 < result.usage.cost
    assert result.usage.cost < tokens * spec.image_price_cny_per_1k / 1000
