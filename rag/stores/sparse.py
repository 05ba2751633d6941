"""BM25 keyword search over chunk texts, with bm25s (sparse matrices, saved as .npy files)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import bm25s


# NLTK's English stopword list. bm25s's own list has 33 words and keeps question words
# ("which", "who", "did") that match every chunk and drown the terms that matter.
STOPWORDS = frozenset(
    """i me my myself we our ours ourselves you your yours yourself yourselves he him his himself
    she her hers herself it its itself they them their theirs themselves what which who whom this
    that these those am is are was were be been being have has had having do does did doing a an
    the and but if or because as until while of at by for with about against between into through
    during before after above below to from up down in out on off over under again further then
    once here there when where why how all any both each few more most other some such no nor not
    only own same so than too very s t can will just don should now d ll m o re ve y ain aren
    couldn didn doesn hadn hasn haven isn ma mightn mustn needn shan shouldn wasn weren won wouldn""".split()
)


@cache
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize(texts: list[str]) -> list[list[str]]:
    """Lower-cased, stemmed tokens without English stopwords (the same for chunks and queries)."""
    import bm25s

    return bm25s.tokenize(
        texts, stopwords=list(STOPWORDS), stemmer=_stemmer(), return_ids=False, show_progress=False
    )


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
