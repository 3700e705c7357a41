"""The sync and async clients are twins: every public method, property and namespace of one
has its counterpart on the other with the same parameters (names, kinds, defaults,
annotations) and the same documentation, modulo the words that differ between sync and async.
So are the jobs (``FileTaskJob`` / ``AsyncFileTaskJob``, ``BatchJob`` / ``AsyncBatchJob``),
classmethods included.

A method that drifts fails this test by name.
"""

from __future__ import annotations

import inspect
import re
import typing

import pytest
import typing_extensions

from dashscope_embeddings import AsyncDashScopeClient, ClientSettings, DashScopeClient, _namespaces
from dashscope_embeddings.batch import AsyncBatchJob, AsyncFileTaskJob, BatchJob, FileTaskJob

# sync name -> async name, where they differ
RENAMED = {
    "embed_stream": "aembed_stream",
    "close": "aclose",
    "__enter__": "__aenter__",
    "__exit__": "__aexit__",
}
# dunders that are part of the public surface
DUNDERS = ("__init__", "__enter__", "__exit__", "__aenter__", "__aexit__")

PAIRS: list[tuple[type, type]] = [
    (DashScopeClient, AsyncDashScopeClient),
    (_namespaces.Files, _namespaces.AsyncFiles),
    (_namespaces.Batches, _namespaces.AsyncBatches),
    (_namespaces.Tasks, _namespaces.AsyncTasks),
    (FileTaskJob, AsyncFileTaskJob),
    (BatchJob, AsyncBatchJob),
]


def _unasync(text: str) -> str:
    """An async annotation or docstring written the sync way (httpcore's unasync, by regex)."""
    text = re.sub(r"\s*\|\s*AsyncIterable\[([^\]]*)\]", "", text)  # async twins take both
    text = re.sub(r"AsyncGenerator\[(.*), None\]", r"Generator[\1, None, None]", text)
    text = re.sub(r"Awaitable\[(.*)\]", r"\1", text)
    text = re.sub(r"\b(_?)Async(?=[A-Z])", r"\1", text)
    text = re.sub(r"\basync (for|with|def)\b", r"\1", text)
    text = re.sub(r"\bawait ", "", text)
    for sync, twin in RENAMED.items():
        text = re.sub(rf"\b{re.escape(twin)}\b", sync, text)
    return text


def _plain(text: str) -> str:
    """A sync annotation without the ``Sync`` of paired names (``_SyncOwner``)."""
    return re.sub(r"\b(_?)Sync(?=[A-Z])", r"\1", text)


def _members(cls: type) -> dict[str, object]:
    names = [n for n in dir(cls) if not n.startswith("_") or n in DUNDERS]
    members = {name: inspect.getattr_static(cls, name) for name in names}
    return {n: m for n, m in members.items() if m is not getattr(object, n, None)}


def _signature_rows(func: typing.Callable[..., object]) -> list[tuple[str, str, str, str]]:
    sig = inspect.signature(func)
    rows = [
        (p.name, p.kind.name, repr(p.default), str(p.annotation)) for p in sig.parameters.values()
    ]
    rows.append(("return", "", "", str(sig.return_annotation)))
    return rows


def _check_signature(where: str, sync: typing.Any, twin: typing.Any) -> None:
    expected = [tuple(_plain(part) for part in row) for row in _signature_rows(sync)]
    got = [tuple(_plain(_unasync(part)) for part in row) for row in _signature_rows(twin)]
    for want, have in zip(expected, got, strict=False):
        assert want == have, f"{where}: parameter drifted: sync {want} vs async {have}"
    assert len(expected) == len(got), f"{where}: a parameter is missing on one side"


def _check_overloads(where: str, sync: typing.Any, twin: typing.Any) -> None:
    sync_overloads = typing_extensions.get_overloads(sync)
    twin_overloads = typing_extensions.get_overloads(twin)
    assert len(sync_overloads) == len(twin_overloads), f"{where}: overloads differ in number"
    for i, (one, other) in enumerate(zip(sync_overloads, twin_overloads, strict=True)):
        _check_signature(f"{where} (overload {i})", one, other)


def _check_doc(where: str, sync_cls: type, sync_name: str, sync: object, twin: object) -> None:
    sync_doc = inspect.getdoc(sync)
    twin_doc = inspect.getdoc(twin)
    if sync_name == "__init__":
        return  # the constructors are documented by their classes
    assert sync_doc, f"{where}: the sync member has no docstring"
    assert twin_doc, f"{where}: the async member has no docstring"
    reference = f"{sync_cls.__name__}.{sync_name}"
    if reference in twin_doc:
        return  # the async docstring points at the sync one
    assert _unasync(twin_doc) == _unasync(sync_doc), (
        f"{where}: docstrings differ and the async one does not refer to :meth:`{reference}`"
    )


def _check_pair(sync_cls: type, twin_cls: type) -> None:
    sync_members = _members(sync_cls)
    twin_members = _members(twin_cls)
    expected_twins = {RENAMED.get(n, n) for n in sync_members}
    extra = set(twin_members) - expected_twins - {"__enter__", "__exit__"}
    assert not extra, f"{twin_cls.__name__} has members without a sync twin: {sorted(extra)}"
    for name, sync in sync_members.items():
        twin_name = RENAMED.get(name, name)
        where = f"{sync_cls.__name__}.{name} <-> {twin_cls.__name__}.{twin_name}"
        assert twin_name in twin_members, f"{where}: the async twin is missing"
        twin = twin_members[twin_name]
        if twin is sync:
            continue  # one definition, inherited by both: twins by construction
        if isinstance(sync, property):
            assert isinstance(twin, property), f"{where}: one is a property, the other is not"
            assert sync.fget is not None and twin.fget is not None
            _check_signature(where, sync.fget, twin.fget)
            _check_doc(where, sync_cls, name, sync, twin)
            continue
        if isinstance(sync, classmethod | staticmethod):
            assert type(twin) is type(sync), f"{where}: not both {type(sync).__name__}s"
            sync, twin = sync.__func__, twin.__func__
        assert callable(sync) and callable(twin), f"{where}: not both methods"
        sync_returns = str(inspect.signature(sync).return_annotation)
        if sync_returns.startswith(("Generator[", "Iterator[")):
            assert not inspect.iscoroutinefunction(twin), f"{where}: should be an async iterator"
        elif not name.startswith("__") or name in RENAMED:
            assert inspect.iscoroutinefunction(twin), f"{where}: the async twin is not async"
        _check_signature(where, sync, twin)
        _check_overloads(where, sync, twin)
        _check_doc(where, sync_cls, name, sync, twin)


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: p[0].__name__)
def test_clients_are_twins(pair: tuple[type, type]) -> None:
    _check_pair(*pair)


def test_the_check_catches_a_drifted_parameter() -> None:
    class Sync:
        def embed(self, texts: list[str], *, dimension: int | None = None) -> int:
            """Embed."""
            return 0

    class Async:
        async def embed(self, texts: list[str], *, dimension: int = 0) -> int:
            """Embed."""
            return 0

    with pytest.raises(AssertionError, match=r"Sync\.embed <-> Async\.embed"):
        _check_pair(Sync, Async)


def test_the_check_catches_a_drifted_classmethod() -> None:
    class Sync:
        @classmethod
        def resume(cls, state_path: str, *, upload: bool = False) -> int:
            """Resume."""
            return 0

    class Async:
        @classmethod
        async def resume(cls, state_path: str, *, upload: bool = True) -> int:
            """Resume."""
            return 0

    with pytest.raises(AssertionError, match=r"Sync\.resume <-> Async\.resume: parameter"):
        _check_pair(Sync, Async)

    class NotAClassmethod:
        async def resume(self, state_path: str, *, upload: bool = False) -> int:
            """Resume."""
            return 0

    with pytest.raises(AssertionError, match="not both classmethods"):
        _check_pair(Sync, NotAClassmethod)


def test_the_check_catches_a_missing_twin_and_a_drifted_docstring() -> None:
    class Sync:
        def close(self) -> None:
            """Release connections."""

        def reset(self) -> None:
            """Start from zero."""

    class Async:
        async def aclose(self) -> None:
            """Release sockets."""

    with pytest.raises(AssertionError, match=r"close <-> Async\.aclose: docstrings differ"):
        _check_pair(Sync, Async)
    Async.aclose.__doc__ = "Release connections."
    with pytest.raises(AssertionError, match=r"Sync\.reset <-> Async\.reset: the async twin"):
        _check_pair(Sync, Async)


@pytest.mark.parametrize("cls", [DashScopeClient, AsyncDashScopeClient])
def test_client_docstrings_list_every_option(cls: type) -> None:
    doc = cls.__doc__ or ""
    missing = [name for name in ClientSettings.model_fields if f"``{name}``" not in doc]
    assert not missing, f"{cls.__name__}'s docstring misses the options {missing}"
    for name, field in ClientSettings.model_fields.items():
        first_words = " ".join((field.description or "").replace("`", "").split()[:4])
        assert first_words in " ".join(doc.replace("`", "").split()), (
            f"{cls.__name__}: {name}'s description is not the one of ClientSettings"
        )
