"""How dense and keyword rankings are combined: reciprocal rank fusion (RRF).

RRF (Cormack et al., 2009) scores an item by ``sum(1 / (RRF_K + rank))`` over the
rankings it appears in. It needs no score calibration between cosine similarities and
BM25 scores, which live on unrelated scales, and it rewards items both retrievers agree on.
"""

from __future__ import annotations

from typing import Literal

Mode = Literal["hybrid", "dense", "bm25"]
MODES: tuple[str, ...] = ("hybrid", "dense", "bm25")
RRF_K = 60
# Each retriever contributes this many candidates (at least k) to the fusion.
FUSION_DEPTH = 50


def check_mode(mode: str) -> Mode:
    if mode not in MODES:
        raise ValueError(f"unknown retrieval mode '{mode}'; choose one of {', '.join(MODES)}")
    return mode  # type: ignore[return-value]


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
