"""Dense vector search with FAISS (inner product on unit vectors = cosine similarity).

The index type follows the corpus size: exact search (``flat``) is both fastest and
exact for small corpora; above ``APPROXIMATE_FROM`` vectors a graph index (``hnsw``)
keeps query time flat. ``ivf`` is available for very large corpora where HNSW's
memory overhead matters. Thresholds come from ``eval/bench.py`` (see eval/README.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rag.core.errors import InvalidInput

INDEX_KINDS: tuple[str, ...] = ("auto", "flat", "hnsw", "ivf")
APPROXIMATE_FROM = 100_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
# Candidates HNSW keeps while searching. On 1M synthetic vectors recall@10 against exact search
# was 0.81 at 64, 0.93 at 128 and 0.99 at 256 for 0.38 / 0.58 / 1.08 ms a query, against 49 ms
# for exact search and ~12 ms for embedding the query (eval/results/bench.md).
HNSW_EF_SEARCH = 256
# IVF searches a share of its lists that grows with their number: a fixed 16 of sqrt(n) lists
# kept recall@10 at 0.995 for 100k vectors but 0.75 at 1M (eval/results/bench.md, nprobe sweep).
IVF_NPROBE = 16
IVF_PROBE_SHARE = 8  # search at least nlist / 8 lists
# A scoped search over at most this many rows scores them exactly (a 3 MB slice of 384-d vectors,
# under a millisecond); a graph or list index filtered to a few rows would visit mostly others
# and can come back with fewer than k.
EXACT_ROWS = 2_000
BLOCK_ROWS = 65_536  # rows scored at once by nearest_rows, so a wide scope copies little at a time


def resolve_kind(kind: str, n: int) -> str:
    """The concrete index type for ``n`` vectors."""
    if kind not in INDEX_KINDS:
        raise InvalidInput(f"unknown dense index type '{kind}'; choose one of {', '.join(INDEX_KINDS)}")
    if kind == "auto":
        return "flat" if n < APPROXIMATE_FROM else "hnsw"
    return kind


def ivf_nprobe(nlist: int) -> int:
    """Lists an IVF index searches per query.

    >>> ivf_nprobe(316), ivf_nprobe(1000)
    (39, 125)
    """
    return min(nlist, max(IVF_NPROBE, nlist // IVF_PROBE_SHARE))


class DenseIndex:
    """A FAISS index over the rows of a float32 matrix; row ``i`` is the i-th vector."""

    def __init__(self, index: Any, kind: str) -> None:
        self._index = index
        self.kind = kind

    @property
    def size(self) -> int:
        return int(self._index.ntotal)

    @classmethod
    def build(cls, vectors: np.ndarray, kind: str = "auto") -> DenseIndex:
        import faiss

        n, dim = vectors.shape
        concrete = resolve_kind(kind, n)
        index: Any
        if concrete == "flat":
            index = faiss.IndexFlatIP(dim)
        elif concrete == "hnsw":
            index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        else:
            # sqrt(n) lists is the usual rule of thumb; IVF needs ~39 training points per list.
            nlist = max(1, min(int(np.sqrt(n)), n // 39))
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
            if n:
                index.train(vectors)
        if n:
            index.add(vectors)
        dense = cls(index, concrete)
        dense._tune()
        return dense

    def _tune(self) -> None:
        if self.kind == "hnsw":
            self._index.hnsw.efSearch = HNSW_EF_SEARCH
        elif self.kind == "ivf":
            self._index.nprobe = ivf_nprobe(self._index.nlist)

    def add(self, vectors: np.ndarray) -> None:
        if len(vectors):
            self._index.add(vectors)

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """``(row, cosine)`` pairs for one query vector, best first; with ``allowed`` (one boolean
        per row), only allowed rows, skipped by FAISS during the search rather than dropped after.
        An approximate index (HNSW, IVF) can return fewer than ``k`` when few rows are allowed."""
        k = min(k, self.size if allowed is None else int(np.count_nonzero(allowed)))
        if k < 1:
            return []
        import faiss

        params = None
        if allowed is not None:
            # One bit per row, read by FAISS in place: ``bits`` must outlive the search below.
            bits = np.packbits(allowed.astype(bool, copy=False), bitorder="little")
            params = self._parameters(faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits)))

        # subtle: one query gains nothing from FAISS's OpenMP threads, and when another process
        # holds a core their barrier stalls: flat search over 10k chunks took 36 ms instead of
        # 0.5 ms on 2 busy cores (eval/bench.py). The setting is per calling thread; restore it
        # so builds in this thread stay parallel.
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            scores, rows = self._index.search(query.reshape(1, -1).astype(np.float32, copy=False), k, params=params)
        finally:
            faiss.omp_set_num_threads(threads)
        return [(int(r), float(s)) for r, s in zip(rows[0], scores[0]) if r >= 0]

    def _parameters(self, selector: Any) -> Any:
        """Search parameters that keep this index's own search settings and add ``selector``
        (FAISS reads a kind's settings from its own parameter type, defaults otherwise)."""
        import faiss

        params: Any
        if self.kind == "hnsw":
            params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]  # in faiss, not in its stubs
            params.efSearch = self._index.hnsw.efSearch
        elif self.kind == "ivf":
            params = faiss.SearchParametersIVF()
            params.nprobe = self._index.nprobe
        else:
            params = faiss.SearchParameters()
        params.sel = selector
        return params

    def save(self, file: Path) -> None:
        import faiss

        faiss.write_index(self._index, str(file))

    @classmethod
    def load(cls, file: Path, kind: str) -> DenseIndex:
        import faiss

        dense = cls(faiss.read_index(str(file)), kind)
        dense._tune()
        return dense


def nearest_rows(vectors: np.ndarray, rows: np.ndarray, query: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The ``k`` of ``rows`` whose vectors have the highest inner product with ``query``, exactly,
    as ``(row, score)`` pairs, best first (ties: the earlier row).

    >>> nearest_rows(np.eye(3, dtype=np.float32), np.array([0, 2]), np.array([0.1, 0.9, 0.5], dtype=np.float32), 1)
    [(2, 0.5)]
    """
    if not len(rows) or k < 1:
        return []
    scores = np.concatenate([vectors[rows[i : i + BLOCK_ROWS]] @ query for i in range(0, len(rows), BLOCK_ROWS)])
    best = np.argsort(-scores, kind="stable")[:k]
    return [(int(rows[i]), float(scores[i])) for i in best]
