"""Where an index keeps its documents, chunks, vectors and keyword index: the storage backends.

:class:`rag.index.Index` decides what changes (which documents are new, changed or gone,
what to embed) and how results are ranked (:mod:`rag.retrieval`); a backend only stores
and searches. Two exist, chosen with ``--store URI`` or ``$RAG_STORE``:

- ``faiss`` (default): FAISS + bm25s files in the index directory, one atomic generation
  per write (:mod:`rag.faiss_backend`).
- ``milvus:PATH.db`` (Milvus Lite, embedded) or ``milvus:http(s)://HOST:PORT`` (a Milvus
  server or cluster; token from ``$RAG_MILVUS_TOKEN``): the chunks, their vectors and
  Milvus's own BM25 index live in the engine, which runs both searches
  (:mod:`rag.milvus_backend`).

A search result is identified by a backend's own key (a row number for FAISS, a hash of the
chunk id for Milvus); the index only passes keys back to the backend that produced them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Hashable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rag.errors import InvalidInput, RagError
from rag.types import Chunk, Document

Key = Hashable
DEFAULT_STORE = "faiss"
STORE_HELP = "faiss (default: the index directory) | milvus:PATH.db (Milvus Lite) | milvus:http(s)://HOST:PORT"


class IndexOpenError(RagError, RuntimeError):
    """The index cannot be used as it is; the message says how to rebuild."""


class StoreError(RagError, RuntimeError):
    """The store failed to read or write (a Milvus server went away, say); the message is one line."""


@dataclass(frozen=True)
class Change:
    """One write: documents to delete, then documents (new or changed) to store with their chunks."""

    remove: frozenset[str]
    documents: tuple[Document, ...]
    hashes: dict[str, str]  # content hash of each document in ``documents``
    chunks: tuple[Chunk, ...]
    vectors: np.ndarray  # one row per chunk
    passages: tuple[str, ...]  # what BM25 indexes for each chunk (rag.chunking.passage_text)


@dataclass(frozen=True)
class Passage:
    """A stored chunk with what a search hit shows of its document."""

    chunk: Chunk
    title: str
    date: str | None
    page: int | None


class Backend(Protocol):
    """What :class:`rag.index.Index` needs from a store."""

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
        """Hold the store's writer lock (raise :class:`rag.store.IndexBusyError` if taken)."""
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

    def dense_search(self, vector: np.ndarray, depth: int) -> list[tuple[Key, float]]:
        """The ``depth`` chunks nearest ``vector`` as ``(key, cosine)``, best first."""
        ...

    def bm25_search(self, query: str, depth: int) -> list[tuple[Key, float]]:
        """The ``depth`` best BM25 matches with a positive score, best first."""
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


def default_store() -> str:
    """``$RAG_STORE`` if set, else ``faiss``."""
    return os.environ.get("RAG_STORE") or DEFAULT_STORE


def collection_name(index_dir: Path, default_dir: Path) -> str:
    """The Milvus collection prefix for an index directory: ``rag`` for the default one, else
    ``rag_<folder name>`` (so ``rag eval --corpus`` keeps one collection pair per corpus).

    >>> collection_name(Path(".rag/eval-index/squad2-corpus-1a2b"), Path(".rag/index"))
    'rag_squad2_corpus_1a2b'
    """
    if Path(index_dir) == Path(default_dir):
        return "rag"
    return "rag_" + re.sub(r"\W", "_", Path(index_dir).name)


def open_backend(store: str | None, index_dir: Path, default_dir: Path) -> Backend:
    """The backend a ``--store`` URI names, for the index that lives at ``index_dir``.

    Raises:
        ValueError: an unknown store URI.
    """
    uri = store or default_store()
    if uri == "faiss":
        from rag.faiss_backend import FaissBackend

        return FaissBackend(Path(index_dir))
    if uri.startswith("milvus:") and len(uri) > len("milvus:"):
        from rag.milvus_backend import MilvusBackend

        name = collection_name(index_dir, default_dir)
        return MilvusBackend(uri[len("milvus:"):], name, None if name == "rag" else str(index_dir))
    raise InvalidInput(f"unknown store '{uri}'; use {STORE_HELP}")


def rebuild_hint(options: str) -> str:
    return f"rebuild it with: rag index --rebuild {options} PATH..."

