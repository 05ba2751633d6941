"""rag: a local, offline question-answering assistant over your articles.

The pipeline, one package per stage (ARCHITECTURE.md): :mod:`rag.ingest` (loading, cleaning,
chunking) -> :mod:`rag.stores` (FAISS or Milvus, BM25) -> :mod:`rag.search` (embedding, the index,
hybrid retrieval) -> :mod:`rag.generate` (the models) -> :mod:`rag.answer` (prompt, citations,
trust) -> :mod:`rag.serve` (chat window, OpenAI API, MCP) and :mod:`rag.evaluate` (gold sets).
The public API is re-exported here.

Heavy libraries (torch, sentence-transformers, faiss) load on first use, so importing
``rag`` is instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Embedder": "rag.search.embedding",
    "EmbeddingModel": "rag.search.embedding",
    "Index": "rag.search.index",
    "IndexOpenError": "rag.stores.base",
    "IndexReport": "rag.search.index",
    "ChunkConfig": "rag.ingest.chunking",
    "Document": "rag.core.types",
    "Chunk": "rag.core.types",
    "Hit": "rag.core.types",
    "Scope": "rag.core.types",
    "Skipped": "rag.core.types",
    "Assistant": "rag.answer.assistant",
    "Answer": "rag.answer.assistant",
    "Citation": "rag.core.types",
    "Generator": "rag.generate.base",
    "load_generator": "rag.generate.registry",
}

if TYPE_CHECKING:
    from rag.answer.assistant import Answer, Assistant
    from rag.core.types import Chunk, Citation, Document, Hit, Scope, Skipped
    from rag.generate.base import Generator
    from rag.generate.registry import load_generator
    from rag.ingest.chunking import ChunkConfig
    from rag.search.embedding import Embedder, EmbeddingModel
    from rag.search.index import Index, IndexReport
    from rag.stores.base import IndexOpenError


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
    "Scope",
    "Skipped",
    "load_generator",
    "__version__",
]
assert set(__all__) == {*_EXPORTS, "__version__"}
