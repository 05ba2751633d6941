"""rag: a local, offline question-answering assistant over your articles.

The pipeline, one module per stage: :mod:`rag.loading` -> :mod:`rag.cleaning` ->
:mod:`rag.chunking` -> :mod:`rag.embedding` -> :mod:`rag.index` (FAISS in
:mod:`rag.dense`, BM25 in :mod:`rag.sparse`, fusion in :mod:`rag.retrieval`).

Heavy libraries (torch, sentence-transformers, faiss) load on first use, so importing
``rag`` is instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Embedder": "rag.embedding",
    "EmbeddingModel": "rag.embedding",
    "Index": "rag.index",
    "IndexOpenError": "rag.index",
    "IndexReport": "rag.index",
    "ChunkConfig": "rag.chunking",
    "Document": "rag.types",
    "Chunk": "rag.types",
    "Hit": "rag.types",
    "Skipped": "rag.loading",
    "Assistant": "rag.answering",
    "Answer": "rag.answering",
    "Citation": "rag.citations",
    "Generator": "rag.generation",
    "load_generator": "rag.generation",
}

if TYPE_CHECKING:
    from rag.answering import Answer, Assistant
    from rag.chunking import ChunkConfig
    from rag.citations import Citation
    from rag.embedding import Embedder, EmbeddingModel
    from rag.generation import Generator, load_generator
    from rag.index import Index, IndexOpenError, IndexReport
    from rag.loading import Skipped
    from rag.types import Chunk, Document, Hit


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'rag' has no attribute '{name}'")


__all__ = [  # the same names as _EXPORTS, spelled out for tools that read __all__
    "Answer",
    "Assistant",
    "Chunk",
    "ChunkConfig",
    "Citation",
    "Document",
    "Embedder",
    "EmbeddingModel",
    "Generator",
    "Hit",
    "Index",
    "IndexOpenError",
    "IndexReport",
    "Skipped",
    "load_generator",
    "__version__",
]
assert set(__all__) == {*_EXPORTS, "__version__"}
