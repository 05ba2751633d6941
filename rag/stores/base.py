"""What every store is: the :class:`Backend` protocol, and the errors a store raises.

:class:`rag.search.index.Index` decides what changes (which documents are new, changed or gone,
what to embed) and how results are ranked (:mod:`rag.search.retrieval`); a backend only stores
and searches. Two exist, chosen with ``--store URI`` or ``$RAG_STORE``
(:mod:`rag.stores.factory`):

- ``faiss`` (default): FAISS + bm25s files in the index directory, one atomic generation
  per write (:mod:`rag.stores.faiss_store`).
- ``milvus:PATH.db`` (Milvus Lite, embedded) or ``milvus:http(s)://HOST:PORT`` (a Milvus
  server or cluster; token from ``$RAG_MILVUS_TOKEN``): the chunks, their vectors and
  Milvus's own BM25 index live in the engine, which runs both searches
  (:mod:`rag.stores.milvus_store`).

A search result is identified by a backend's own key (a row number for FAISS, a hash of the
chunk id for Milvus); the index only passes keys back to the backend that produced them.
The payloads a backend takes and gives (:class:`~rag.core.types.Change`,
:class:`~rag.core.types.Passage`, and the :class:`~rag.core.types.Scope` a search is limited to)
are in :mod:`rag.core.types`.
"""

from __future__ import annotations

from collections.abc import Hashable
from contextlib import AbstractContextManager
from typing import Any, Protocol

import numpy as np

from rag.core.errors import RagError
from rag.core.types import Change, Chunk, Document, Passage, Scope

Key = Hashable  # a search result's id in the backend that produced it



class IndexOpenError(RagError, RuntimeError):
    """The index cannot be used as it is; the message says how to rebuild."""


class StoreError(RagError, RuntimeError):
    """The store failed to read or write (a Milvus server went away, say); the message is one line."""


class IndexBusyError(RagError, RuntimeError):
    """Another process is writing the same index (or, for Milvus Lite, has its file open)."""


class Backend(Protocol):
    """What :class:`rag.search.index.Index` needs from a store."""

    location: str  # where the index lives, for messages ("index at <location>")
    options: str  # the command-line options that name this index ("--index-dir DIR", "--store URI")

    def manifest(self) -> dict[str, Any] | None:
        """The index's recorded settings, or None when nothing was ever stored.

        Raises:
            IndexOpenError: the stored index is damaged.
        """
        ...

    def open(self, dim: int, dense_index: str) -> None:
        """Load (or connect to) the stored data, checking it against the manifest's settings."""
        ...

    def start_empty(self) -> None:
        """Act as an empty index; what is stored stays readable elsewhere until the next commit replaces it."""
        ...

    def refresh(self) -> None:
        """See what other processes committed since :meth:`open`."""
        ...

    def write_lock(self) -> AbstractContextManager[None]:
        """Hold the store's writer lock (raise :class:`IndexBusyError` if taken)."""
        ...

    def collect(self) -> None:
        """Delete what a killed writer left behind; called with the lock held and nothing to write."""
        ...

    def commit(self, manifest: dict[str, Any], change: Change, dense_index: str) -> None:
        """Apply ``change`` and record ``manifest``; after a :meth:`start_empty`, replace everything."""
        ...

    def hashes(self) -> dict[str, str]:
        """Content hash by document id."""
        ...

    def documents(self) -> list[Document]:
        """The stored documents, in the order they were added (a changed one when it last changed)."""
        ...

    def document(self, doc_id: str) -> Document | None: ...

    def chunks(self, doc_id: str | None = None) -> list[Chunk]: ...

    def __len__(self) -> int:
        """Number of chunks."""
        ...

    def dense_search(self, vector: np.ndarray, depth: int, scope: Scope | None = None) -> list[tuple[Key, float]]:
        """The ``depth`` chunks nearest ``vector`` as ``(key, cosine)``, best first; with a ``scope``,
        the nearest of the chunks inside it (filtered in the search, so up to ``depth`` of them)."""
        ...

    def bm25_search(self, query: str, depth: int, scope: Scope | None = None) -> list[tuple[Key, float]]:
        """The ``depth`` best BM25 matches with a positive score, best first; with a ``scope``, the
        best of the chunks inside it."""
        ...

    def dense_scores(self, vector: np.ndarray, keys: list[Key]) -> np.ndarray:
        """The cosine of each of ``keys`` with ``vector`` (the exact score, also for approximate indexes)."""
        ...

    def bm25_scores(self, query: str, keys: list[Key]) -> np.ndarray:
        """The BM25 score of each of ``keys`` (0 for no match)."""
        ...

    def passages(self, keys: list[Key]) -> list[Passage]:
        """The chunks behind ``keys``, in the same order."""
        ...


def rebuild_hint(options: str) -> str:
    return f"rebuild it with: rag index --rebuild {options} PATH..."
