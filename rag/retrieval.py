"""How dense and keyword results are combined in hybrid mode.

Two fusions are available:

- ``convex`` (default): both retrievers score every candidate (the union of their top
  ``FUSION_DEPTH``); each score list is min-max normalised over the candidates and the
  two are averaged with weight ``ALPHA``. Keeping the score *margins* matters: a rare
  name that only BM25 matches strongly should beat a chunk that is merely first by a
  hair in dense search.
- ``rrf``: reciprocal rank fusion (Cormack et al., 2009), ``sum(1 / (RRF_K + rank))``,
  which uses ranks only.

Convex beat RRF on the seeds gold set and HotpotQA (hit@1 0.92 vs 0.90 and 0.89 vs 0.84 at
the untuned weight 0.5, measured before the weight was chosen per embedder), in line with
Bruch et al., "An Analysis of Fusion Functions for Hybrid Retrieval" (2023). The weight is
now chosen per embedder (eval/README.md, "Embedders and fusion weights").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Mode = Literal["hybrid", "dense", "bm25"]
MODES: tuple[str, ...] = ("hybrid", "dense", "bm25")
Fusion = Literal["convex", "rrf"]
FUSIONS: tuple[str, ...] = ("convex", "rrf")
ALPHA = 0.5  # weight of the dense score in convex fusion; 0.5 = no preference
RRF_K = 60
# Each retriever contributes this many candidates (at least k) to the fusion.
FUSION_DEPTH = 50


@dataclass(frozen=True)
class FusionSettings:
    """How hybrid search fuses, recorded in each index's manifest: the weight of the dense
    score (``alpha``; 1 is dense only, 0 BM25 only) and each retriever's candidate depth.

    A new index takes the weight measured for its embedder (``rag.embedding.EMBEDDERS``):
    the better the embedder, the less BM25 adds (eval/README.md, "Embedders and fusion weights").
    """

    alpha: float = ALPHA
    depth: int = FUSION_DEPTH

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"fusion alpha must be between 0 and 1, got {self.alpha}")
        if self.depth < 1:
            raise ValueError(f"fusion depth must be >= 1, got {self.depth}")


def check_mode(mode: str) -> Mode:
    if mode not in MODES:
        raise ValueError(f"unknown retrieval mode '{mode}'; choose one of {', '.join(MODES)}")
    return mode  # type: ignore[return-value]


def check_fusion(fusion: str) -> Fusion:
    if fusion not in FUSIONS:
        raise ValueError(f"unknown fusion '{fusion}'; choose one of {', '.join(FUSIONS)}")
    return fusion  # type: ignore[return-value]


def _min_max(scores: np.ndarray) -> np.ndarray:
    span = float(scores.max() - scores.min()) if len(scores) else 0.0
    return (scores - scores.min()) / span if span > 0 else np.zeros_like(scores)


def convex_fusion(
    candidates: list[int], dense: np.ndarray, sparse: np.ndarray, alpha: float = ALPHA
) -> list[tuple[int, float]]:
    """Fuse two score arrays over the same ``candidates`` into ``(id, score)``, best first.

    A chunk second in dense search but far ahead in BM25 comes first:

    >>> [row for row, _ in convex_fusion([7, 8, 9], np.array([0.9, 0.8, 0.7]), np.array([0.0, 5.0, 1.0]))]
    [8, 7, 9]
    """
    combined = alpha * _min_max(dense.astype(np.float64)) + (1 - alpha) * _min_max(sparse.astype(np.float64))
    order = np.argsort(-combined, kind="stable")
    return [(candidates[i], float(combined[i])) for i in order]


def reciprocal_rank_fusion(rankings: list[list[int]], rrf_k: int = RRF_K) -> list[tuple[int, float]]:
    """Fuse ranked lists of ids into one ``(id, score)`` list, best first.

    Ties keep the order of first appearance, so the first ranking breaks them.

    >>> reciprocal_rank_fusion([[1, 2, 3], [2, 3]])[0][0]
    2
    """
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (rrf_k + rank)
    return sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
