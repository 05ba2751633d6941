"""Which store a ``--store`` URI names: one table that help, validation and opening read.

    faiss | milvus:PATH.db | milvus:http(s)://HOST:PORT
"""

from __future__ import annotations

import os
import re
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from rag.core import defaults
from rag.core.errors import InvalidInput
from rag.core.registry import Entry, Registry
from rag.stores.base import Backend

STORES: Registry[Backend] = Registry("store")


def collection_name(index_dir: Path, default_dir: Path) -> str:
    """The Milvus collection prefix for an index directory: ``rag`` for the default one, else
    ``rag_<folder name>`` (so ``rag eval --corpus`` keeps one collection pair per corpus).

    >>> collection_name(Path(".rag/eval-index/squad2-corpus-1a2b"), Path(".rag/index"))
    'rag_squad2_corpus_1a2b'
    """
    if Path(index_dir) == Path(default_dir):
        return "rag"
    return "rag_" + re.sub(r"\W", "_", Path(index_dir).name)


def _faiss(uri: str, index_dir: Path, default_dir: Path) -> Backend:
    from rag.stores.faiss_store import FaissBackend

    return FaissBackend(Path(index_dir))


def _milvus(uri: str, index_dir: Path, default_dir: Path) -> Backend:
    from rag.stores.milvus_store import MilvusBackend

    name = collection_name(index_dir, default_dir)
    return MilvusBackend(uri[len("milvus:"):], name, None if name == "rag" else str(index_dir))


def _check_milvus(uri: str) -> None:
    if len(uri) <= len("milvus:"):
        raise InvalidInput(f"write a Milvus store as milvus:PATH.db or milvus:http(s)://HOST:PORT, got '{uri}'")


def _lite_sample(folder: Path) -> AbstractContextManager[str]:
    return nullcontext(f"milvus:{folder / 'store.db'}")


def _server_sample(folder: Path) -> AbstractContextManager[str]:
    from rag.stores.milvus_store import lite_server

    return lite_server(folder)


# Each entry's ``sample`` is the store its contract tests (tests/test_store_contract.py) run on.
STORES.add(Entry("faiss", "default: the index directory", load=_faiss))
STORES.add(Entry(
    "milvus:PATH.db", "Milvus Lite", check=_check_milvus, load=_milvus, sample=_lite_sample,
    matches=lambda uri: uri.startswith("milvus:") and not uri.startswith(("milvus:http://", "milvus:https://")),
))
STORES.add(Entry(
    "milvus:http(s)://HOST:PORT", "a Milvus server", load=_milvus, sample=_server_sample,
    matches=lambda uri: uri.startswith(("milvus:http://", "milvus:https://")),
))
STORE_HELP = " | ".join(f"{e.name} ({e.description})" for e in STORES)


def default_store() -> str:
    """``$RAG_STORE`` if set, else ``faiss``."""
    return os.environ.get("RAG_STORE") or defaults.STORE


def open_backend(store: str | None, index_dir: Path, default_dir: Path) -> Backend:
    """The backend a ``--store`` URI names, for the index that lives at ``index_dir``.

    Raises:
        InvalidInput: an unknown store URI (the message lists the known ones).
    """
    return STORES.load(store or default_store(), index_dir, default_dir)
