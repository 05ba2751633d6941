"""BM25 keyword search over chunk texts, with bm25s (sparse matrices, saved as .npy files)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.core.text import tokenize

if TYPE_CHECKING:
    import bm25s


def top_rows(scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The ``k`` highest positive scores as ``(row, score)`` pairs, best first (ties: lower row).

    >>> top_rows(np.array([0.0, 2.0, 1.0, 3.0]), 2)
    [(3, 3.0), (1, 2.0)]
    """
    k = min(k, len(scores))
    if k < 1:
        return []
    rows = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    rows = rows[np.lexsort((rows, -scores[rows]))]
    return [(int(r), float(scores[r])) for r in rows if scores[r] > 0]


class BM25Index:
    """BM25 over a fixed list of texts; row ``i`` is the i-th text given to :meth:`build`."""

    def __init__(self, retriever: bm25s.BM25 | None, size: int) -> None:
        self._retriever = retriever
        self.size = size

    @classmethod
    def build(cls, texts: list[str]) -> BM25Index:
        import bm25s

        if not texts:
            return cls(None, 0)
        retriever = bm25s.BM25()
        retriever.index(tokenize(texts), show_progress=False)
        return cls(retriever, len(texts))

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """``(row, score)`` pairs, best first; only texts sharing a term with the query."""
        return top_rows(self.score_all(query), k)

    def score_all(self, query: str) -> np.ndarray:
        """The BM25 score of ``query`` for every row (0 where no term matches).

        Hybrid search takes its keyword candidates and their scores from this one array,
        so the query is tokenised and scored once.
        """
        terms = self._terms(query)
        if self._retriever is None or not terms:
            return np.zeros(self.size, dtype=np.float32)
        # This is what bm25s's ``retrieve`` does before its top-k selection, without its
        # per-call thread pool (which doubled BM25 latency at 10k chunks, eval/bench.py).
        return np.asarray(self._retriever.get_scores(terms), dtype=np.float32)

    def _terms(self, query: str) -> list[str]:
        if self._retriever is None:
            return []
        vocab = self._retriever.vocab_dict
        return [t for t in tokenize([query])[0] if t in vocab]

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        if self._retriever is not None:
            self._retriever.save(str(folder))
        (folder / "size").write_text(str(self.size))

    @classmethod
    def load(cls, folder: Path) -> BM25Index:
        import bm25s

        size = int((folder / "size").read_text())
        if size == 0:
            return cls(None, 0)
        retriever = bm25s.BM25.load(str(folder), mmap=False)
        n = int(retriever.scores["num_docs"])
        if n != size:
            raise ValueError(f"BM25 index holds {n} texts, expected {size}")
        return cls(retriever, size)
