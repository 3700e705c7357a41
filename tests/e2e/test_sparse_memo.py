"""Sparse vectors and the dense/sparse hand-off (issue 10), without a vector store.

The parser merges repeated indices; the emulator's weights reflect term importance; the memo is
served once, never across text_type / instruct / settings, and bounded by entries and bytes,
also under a 10,000-text add; a sparse sibling and its dense object send one ``dense&sparse``
request per text whichever is asked first, sync and async; a model without sparse output is
refused before anything is sent.
"""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
import threading
import tracemalloc
import typing

import pytest

from dashscope_embeddings import DashScopeClient, InvalidInputError, SparseVector
from dashscope_embeddings._memo import HalvesMemo
from dashscope_embeddings.emulator import Emulator
from dashscope_embeddings.langchain import DashScopeEmbeddings
from dashscope_embeddings.langchain.sparse import SparseHalf
from dashscope_embeddings.llama_index import (
    DashScopeEmbedding,
    DashScopeSparseEmbedding,
    qdrant_hybrid_fns,
)
from dashscope_embeddings.resources.text import parse_native
from tests.conftest import TEST_KEY, sent_bodies

V4 = "text-embedding-v4"
DOC = (V4, None, "document", None, None)
QUERY = (V4, None, "query", None, None)


def _texts(n: int, tag: str = "doc") -> list[str]:
    return [f"{tag} {i}: aisle {i % 37} holds item Q{i * 7919 % 100_003}" for i in range(n)]


def _pair(
    emulator: Emulator, **options: typing.Any
) -> tuple[DashScopeEmbeddings, SparseHalf]:
    dense = DashScopeEmbeddings(model=V4, api_key=TEST_KEY, base_url=emulator.url, **options)
    return dense, SparseHalf.from_dense(dense)


def _output_types(emulator: Emulator) -> list[str | None]:
    return [b.get("parameters", {}).get("output_type") for b in sent_bodies(emulator)]


def _text_types(emulator: Emulator) -> list[str | None]:
    return [b.get("parameters", {}).get("text_type") for b in sent_bodies(emulator)]


# --- the core parser -----------------------------------------------------------------------


def test_parser_merges_repeated_indices_by_summing_and_keeps_the_first_token() -> None:
    payload = {
        "output": {
            "embeddings": [
                {
                    "text_index": 0,
                    "sparse_embedding": [
                        {"index": 9, "value": 0.25, "token": "b"},
                        {"index": 3, "value": 0.5, "token": "a"},
                        {"index": 9, "value": 0.125, "token": "B"},
                    ],
                }
            ]
        },
        "usage": {"total_tokens": 3},
    }
    out = parse_native(payload, 1, output_type="sparse", expected_dimension=None, request_id=None)
    assert out.sparse == [SparseVector(indices=(3, 9), values=(0.5, 0.375), tokens=("a", "b"))]


# --- the emulator's sparse vectors -----------------------------------------------------------


def test_emulator_weighs_rare_words_more_with_stable_indices_and_tokens(emulator: Emulator) -> None:
    with DashScopeClient(TEST_KEY, base_url=emulator.url) as client:
        first = client.embed_texts(
            ["the zorblax has a new measure of time", "zorblax time"], model=V4, output_type="sparse"
        ).sparse_embeddings
        again = client.embed_texts(
            ["time zorblax"], model="text-embedding-v3", output_type="dense&sparse"
        ).sparse_embeddings
    weights = dict(zip(first[0].tokens or (), first[0].values, strict=True))
    assert weights["zorblax"] > weights["measure"] > weights["time"]  # rare > listed > very common
    ids = {t: i for v in (*first, *again) for t, i in zip(v.tokens or (), v.indices, strict=True)}
    for vector in (*first, *again):  # one index per token, whatever the text or request
        assert all(ids[t] == i for t, i in zip(vector.tokens or (), vector.indices, strict=True))
        assert list(vector.indices) == sorted(set(vector.indices))


# --- the memo alone --------------------------------------------------------------------------


def test_memo_serves_a_hand_off_once_and_only_to_the_same_settings() -> None:
    memo = HalvesMemo()
    vector = SparseVector((1, 5), (0.25, 1.5))
    memo.put("sparse", DOC, "hi", vector)
    assert memo.take("sparse", QUERY, "hi") is None  # a query never gets a document's vector
    assert memo.take("dense", DOC, "hi") is None  # nor the other half
    assert memo.take("sparse", (V4, 512, "document", None, None), "hi") is None
    assert memo.take("sparse", DOC, "hi") == vector
    assert memo.take("sparse", DOC, "hi") is None and len(memo) == 0 and memo.nbytes == 0
    memo.put("dense", DOC, "hi", [0.1, -0.2, 0.30000000000000004])
    assert memo.take("dense", DOC, "hi") == [0.1, -0.2, 0.30000000000000004]  # exact floats


def test_memo_bounds_entries_and_bytes_dropping_the_oldest() -> None:
    memo = HalvesMemo(max_entries=3, max_bytes=1 << 20)
    for i in range(5):
        memo.put("dense", DOC, f"t{i}", [float(i)] * 4)
    assert len(memo) == 3 and memo.stats.evictions == 2
    assert memo.take("dense", DOC, "t0") is None and memo.take("dense", DOC, "t4") is not None

    small = HalvesMemo(max_entries=1000, max_bytes=4000)
    for i in range(50):
        small.put("dense", DOC, f"t{i}", [0.5] * 64)
        assert small.nbytes <= 4000
    assert 0 < len(small) < 10
    small.put("dense", DOC, "huge", [0.5] * 10_000)  # larger than the bound alone: not kept
    assert small.take("dense", DOC, "huge") is None and small.nbytes <= 4000


def test_memo_byte_estimate_is_close_to_what_is_really_held() -> None:
    memo = HalvesMemo(max_entries=10_000, max_bytes=1 << 30)
    items = [(f"text number {i}", SparseVector(tuple(range(i % 40 + 1)), (0.5,) * (i % 40 + 1)))
             for i in range(2000)]
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    memo.put_many("sparse", DOC, items)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    held = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert 0.5 * memo.nbytes < held < 1.5 * memo.nbytes, (held, memo.nbytes)


def test_memo_is_thread_safe() -> None:
    memo = HalvesMemo(max_entries=64, max_bytes=1 << 20)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(2000):
                memo.put("dense", DOC, f"{n}-{i % 100}", [float(i)] * 8)
                memo.take("dense", DOC, f"{(n + 1) % 4}-{i % 100}")
        except BaseException as exc:  # pragma: no cover - what the test looks for
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(memo) <= 64
    held = len(memo)
    left = memo.take_many("dense", DOC, [f"{n}-{i}" for n in range(4) for i in range(100)])
    assert len(left) - left.count(None) == held  # the byte count and the table stayed in step
    assert len(memo) == 0 and memo.nbytes == 0


def test_memo_pickles_and_deep_copies_empty_with_its_bounds(emulator: Emulator) -> None:
    memo = HalvesMemo(max_entries=7, max_bytes=999)
    memo.put("dense", DOC, "x", [1.0])
    for clone in (pickle.loads(pickle.dumps(memo)), copy.deepcopy(memo)):
        assert (len(clone), clone.max_entries, clone.max_bytes) == (0, 7, 999)
    dense, sparse = _pair(emulator)
    dense.embed_documents(["kept in the memo"])
    restored = pickle.loads(pickle.dumps(sparse))
    assert isinstance(restored, SparseHalf) and restored.dense._paired()
    again, fetched = restored._documents(["kept in the memo"])[0], sparse._documents(["kept in the memo"])[0]
    assert (again.indices, again.values) == (fetched.indices, fetched.values)


# --- a dense object and its sparse sibling ---------------------------------------------------


@pytest.mark.parametrize("first", ["dense", "sparse"])
def test_twenty_five_texts_cost_three_requests_whichever_half_is_asked_first(
    emulator: Emulator, first: str
) -> None:
    dense, sparse = _pair(emulator)
    texts = _texts(25)
    if first == "dense":
        vectors, lexical = dense.embed_documents(texts), sparse._documents(texts)
    else:
        lexical, vectors = sparse._documents(texts), dense.embed_documents(texts)
    assert _output_types(emulator) == ["dense&sparse"] * 3
    assert dense.usage.requests == 3
    # the halves are the service's, whichever object asked
    with DashScopeClient(TEST_KEY, base_url=emulator.url) as client:
        direct = client.embed_texts(
            texts, model=V4, text_type="document", output_type="dense&sparse"
        )
    assert vectors == direct.embeddings
    assert [(v.indices, v.values) for v in lexical] == [
        (v.indices, v.values) for v in direct.sparse_embeddings
    ]


async def test_async_twins_share_the_request_too(emulator: Emulator) -> None:
    dense, sparse = _pair(emulator)
    texts = _texts(25)
    lexical = await sparse._adocuments(texts)
    vectors = await dense.aembed_documents(texts)
    query_sparse = await sparse._aquery("aisle 3 item")
    query_dense = await dense.aembed_query("aisle 3 item")
    assert len(lexical) == len(vectors) == 25 and query_sparse.indices and len(query_dense) == 1024
    assert _output_types(emulator) == ["dense&sparse"] * 4
    await dense.aclose()


def test_a_query_never_gets_a_document_vector_nor_another_instruct(emulator: Emulator) -> None:
    dense, sparse = _pair(emulator)
    dense.embed_documents(["Q17 blender"])
    query = sparse._query("Q17 blender")  # same text, but a query: sent again
    assert _text_types(emulator) == ["document", "query"]
    with DashScopeClient(TEST_KEY, base_url=emulator.url) as client:
        direct = client.embed_texts(
            ["Q17 blender"], model=V4, text_type="query", output_type="sparse"
        ).sparse_embeddings[0]
    assert (query.indices, query.values) == (direct.indices, direct.values)

    emulator.clear_requests()
    dense.instruct = "Find the product"
    sparse._query("Q17 blender")  # leaves the query's dense half, made with this instruct
    dense.instruct = "Another task"
    dense.embed_query("Q17 blender")  # not served: another instruct
    dense.instruct = "Find the product"
    dense.embed_query("Q17 blender")  # served: same text, text_type and instruct
    assert [b["parameters"].get("instruct") for b in sent_bodies(emulator)] == [
        "Find the product",
        "Another task",
    ]


def test_settings_are_read_at_call_time_by_both_halves(emulator: Emulator) -> None:
    dense, sparse = _pair(emulator)
    sparse._documents(["one text"])  # leaves the dense half, at the default 1024
    dense.dimension = 256
    assert len(dense.embed_documents(["one text"])[0]) == 256  # not served: another dimension
    sparse._documents(["one text"])  # served: the half the 256 request left
    assert [b["parameters"].get("dimension") for b in sent_bodies(emulator)] == [None, 256]


def test_a_sparse_only_object_asks_for_sparse_only(emulator: Emulator) -> None:
    sparse = SparseHalf(model=V4, api_key=TEST_KEY, base_url=emulator.url)
    assert sparse._documents(["alpha", "beta", "alpha"])[0] == sparse._documents(["alpha"])[0]
    assert _output_types(emulator) == ["sparse", "sparse"]
    assert sent_bodies(emulator)[0]["input"]["texts"] == ["alpha", "beta"]
    assert sparse.dense._halves_memo is None and sparse.usage.requests == 2


def test_the_memo_stays_bounded_under_a_ten_thousand_text_add(emulator: Emulator) -> None:
    """LangChain's Milvus asks for every dense vector of an add, then every sparse one."""
    dense, sparse = _pair(emulator, dimension=64)
    memo = dense._share_halves()  # the default bounds
    texts = _texts(10_000)
    seen: list[tuple[int, int]] = []
    put_many = memo.put_many

    def watched(*args: typing.Any) -> None:
        put_many(*args)
        seen.append((len(memo), memo.nbytes))

    memo.put_many = watched  # type: ignore[method-assign,assignment]
    assert len(dense.embed_documents(texts)) == 10_000
    assert len(sparse._documents(texts)) == 10_000
    assert max(n for n, _ in seen) <= 4096 and max(b for _, b in seen) <= 32 * 1024 * 1024
    assert memo.max_entries == 4096 and memo.max_bytes == 32 * 1024 * 1024
    assert memo.stats.hits == 4096  # the newest hand-offs were served, the rest fetched again
    assert dense.usage.requests == 1000 + 591


def test_interleaved_halves_pay_once_per_text(emulator: Emulator) -> None:
    """Qdrant asks both halves batch by batch (64 texts): each text is paid for once."""
    dense, sparse = _pair(emulator, dimension=64)
    texts = _texts(1_000, "row")
    batches = [texts[start : start + 64] for start in range(0, len(texts), 64)]
    for batch in batches:
        dense.embed_documents(batch)
        sparse._documents(batch)
    memo = dense._share_halves()
    assert len(memo) == 0 and memo.stats.evictions == 0
    assert dense.usage.requests == sum(-(-len(b) // 10) for b in batches)  # as dense alone
    assert set(_output_types(emulator)) == {"dense&sparse"}


# --- models without sparse output ------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"model": "text-embedding-v2"}, "text-embedding-v2 has no sparse output; models with it: "),
        ({"model": "tongyi-embedding-vision-plus"}, "tongyi-embedding-vision-plus has no sparse"),
        ({"model": V4, "protocol": "compatible"}, "sparse output needs the native endpoint"),
    ],
)
def test_sparse_on_a_model_without_it_is_refused_before_sending(
    emulator: Emulator, options: dict[str, typing.Any], message: str
) -> None:
    dense = DashScopeEmbeddings(api_key=TEST_KEY, base_url=emulator.url, **options)
    with pytest.raises(InvalidInputError, match=message) as info:
        SparseHalf.from_dense(dense)
    if "models with it" in message:
        assert "text-embedding-v3" in str(info.value) and "text-embedding-v4" in str(info.value)
    with pytest.raises(InvalidInputError):
        SparseHalf(api_key=TEST_KEY, base_url=emulator.url, **options)
    li_dense = DashScopeEmbedding(api_key=TEST_KEY, base_url=emulator.url, **options)
    with pytest.raises(InvalidInputError, match=message):
        DashScopeSparseEmbedding.from_dense(li_dense)
    with pytest.raises(InvalidInputError, match=message):
        qdrant_hybrid_fns(li_dense)
    assert emulator.requests == []


def test_a_sibling_refuses_when_the_dense_model_changes_to_one_without_sparse(
    emulator: Emulator,
) -> None:
    dense, sparse = _pair(emulator)
    dense.model = "text-embedding-v2"
    assert len(dense.embed_documents(["still dense"])[0]) == 1536  # dense alone, as before
    assert _output_types(emulator) == [None]
    with pytest.raises(InvalidInputError, match="text-embedding-v2 has no sparse output"):
        sparse._documents(["x"])


def test_from_dense_names_what_it_needs() -> None:
    with pytest.raises(TypeError, match=r"needs a dashscope_embeddings\.langchain\.DashScopeEmbeddings"):
        SparseHalf.from_dense(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"needs a dashscope_embeddings\.llama_index\.DashScopeEmbedding"):
        DashScopeSparseEmbedding.from_dense(object())  # type: ignore[arg-type]


# --- LlamaIndex's sparse embedding (no store needed) -----------------------------------------


async def test_llama_index_sparse_embedding_from_dense(emulator: Emulator) -> None:
    dense = DashScopeEmbedding(model_name=V4, api_key=TEST_KEY, base_url=emulator.url)
    sparse = DashScopeSparseEmbedding.from_dense(dense)
    texts = _texts(12)
    vectors = dense.get_text_embedding_batch(texts)
    lexical = sparse.get_text_embedding_batch(texts)
    assert len(vectors) == len(lexical) == 12 and all(isinstance(k, int) for k in lexical[0])
    assert await sparse.aget_query_embedding("aisle 4") and dense.get_query_embedding("aisle 4")
    assert _output_types(emulator) == ["dense&sparse"] * 3  # 12 texts in 2 requests, 1 query
    clone = pickle.loads(pickle.dumps(sparse))
    assert clone.get_text_embedding("aisle 9") == sparse.get_text_embedding("aisle 9")
    assert sparse.class_name() == "DashScopeSparseEmbedding" and sparse.model_name == V4
    await dense.aclose()
    dense.close()


# --- optional engines ------------------------------------------------------------------------


def test_an_engine_class_without_its_extra_names_the_pip_command() -> None:
    """The modules import without the engines; each engine class names its extra."""
    code = (
        "import sys\n"
        "for name in ('langchain_qdrant', 'langchain_milvus', 'llama_index.vector_stores'):\n"
        "    sys.modules[name] = None\n"
        "import dashscope_embeddings.langchain as lc, dashscope_embeddings.llama_index as li\n"
        "from dashscope_embeddings.llama_index import DashScopeSparseEmbedding, qdrant_hybrid_fns\n"
        "for module, name in ((lc, 'DashScopeSparseEmbeddings'),\n"
        "                     (lc, 'DashScopeMilvusSparseEmbeddings'),\n"
        "                     (li, 'DashScopeMilvusSparseFunction')):\n"
        "    try:\n"
        "        getattr(module, name)\n"
        "    except ImportError as e:\n"
        "        print(name, '->', e)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3, result.stdout
    assert 'DashScopeSparseEmbeddings -> ' in lines[0] and '[qdrant]"' in lines[0]
    assert "langchain-milvus" in lines[1] and '[milvus]"' in lines[1]
    assert "llama-index-vector-stores-milvus" in lines[2] and '[milvus]"' in lines[2]
    assert all('pip install "dashscope-embeddings[' in line for line in lines)


def test_lazy_names_resolve_and_unknown_names_still_fail() -> None:
    import dashscope_embeddings.langchain as lc
    import dashscope_embeddings.llama_index as li

    assert lc.DashScopeSparseEmbeddings.__name__ == "DashScopeSparseEmbeddings"
    assert lc.DashScopeMilvusSparseEmbeddings.__name__ == "DashScopeMilvusSparseEmbeddings"
    assert li.DashScopeMilvusSparseFunction.__name__ == "DashScopeMilvusSparseFunction"
    assert "DashScopeSparseEmbeddings" in dir(lc)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        lc.Nope  # noqa: B018
