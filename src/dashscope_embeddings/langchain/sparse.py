"""What the LangChain sparse classes share: a sparse half over a :class:`DashScopeEmbeddings`.

The engine-specific classes (``DashScopeSparseEmbeddings`` for Qdrant,
``DashScopeMilvusSparseEmbeddings`` for Milvus) only convert the core
:class:`~dashscope_embeddings.SparseVector` into their store's shape; this module needs no
engine package.
"""

from __future__ import annotations

import typing

from dashscope_embeddings._types import SparseVector, Usage
from dashscope_embeddings.langchain.embeddings import DashScopeEmbeddings

__all__ = ["SparseHalf"]

_Self = typing.TypeVar("_Self", bound="SparseHalf")


class SparseHalf:
    """The sparse vectors of a :class:`DashScopeEmbeddings` (its settings, client and usage).

    Built two ways:

    * ``Cls(model=..., **options)``: a sparse-only object; each call asks for
      ``output_type="sparse"``;
    * ``Cls.from_dense(dense)``: the sparse sibling of ``dense`` for hybrid search. Both then ask
      for ``dense&sparse`` and hand the other half over through a bounded memo, so a text is
      paid for once whichever half a store asks for first.

    Settings are read from the dense object at call time (``sparse.dense.dimension = 512``
    changes both halves).
    """

    _dense: DashScopeEmbeddings

    def __init__(self, **options: typing.Any) -> None:
        dense = DashScopeEmbeddings(**options)
        dense._check_sparse()
        self._dense = dense

    @classmethod
    def from_dense(cls: type[_Self], dense: DashScopeEmbeddings) -> _Self:
        """The sparse sibling of ``dense``: same client, model, options, usage and memo.

        Args:
            dense: The ``DashScopeEmbeddings`` a hybrid store uses for its dense half.

        Raises:
            TypeError: ``dense`` is not a ``DashScopeEmbeddings``.
            InvalidInputError: Its model has no sparse output (only text-embedding-v3 / v4 on
                the native protocol have), naming the models that have.
        """
        if not isinstance(dense, DashScopeEmbeddings):
            raise TypeError(
                f"{cls.__name__}.from_dense needs a dashscope_embeddings.langchain."
                f"DashScopeEmbeddings, got {type(dense).__name__}"
            )
        dense._share_halves()
        self = cls.__new__(cls)
        self._dense = dense
        return self

    @property
    def dense(self) -> DashScopeEmbeddings:
        """The dense object whose settings, client and usage this one uses."""
        return self._dense

    @property
    def model(self) -> str:
        """The model name (the dense object's)."""
        return self._dense.model

    @property
    def usage(self) -> Usage:
        """Tokens and estimated cost so far, shared with the dense object."""
        return self._dense.usage

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, paired={self._dense._paired()})"

    def _documents(self, texts: list[str]) -> list[SparseVector]:
        if not texts:
            return []
        progress = self._dense.show_progress_bar
        handoff = self._dense._embed_half(
            texts, query=False, want="sparse", method="embed_documents", progress=progress
        )
        return handoff.sparse()

    def _query(self, text: str) -> SparseVector:
        return self._dense._embed_half(
            [text], query=True, want="sparse", method="embed_query"
        ).sparse()[0]

    async def _adocuments(self, texts: list[str]) -> list[SparseVector]:
        if not texts:
            return []
        progress = self._dense.show_progress_bar
        handoff = await self._dense._aembed_half(
            texts, query=False, want="sparse", progress=progress
        )
        return handoff.sparse()

    async def _aquery(self, text: str) -> SparseVector:
        return (await self._dense._aembed_half([text], query=True, want="sparse")).sparse()[0]
