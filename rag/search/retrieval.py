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

from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast

import numpy as np

from rag.core import defaults
from rag.core.errors import InvalidInput
from rag.core.types import Scope

if TYPE_CHECKING:
    from rag.stores.base import Backend

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

    A new index takes the weight measured for its embedder (``rag.search.embedding.EMBEDDERS``):
    the better the embedder, the less BM25 adds (eval/README.md, "Embedders and fusion weights").
    """

    alpha: float = ALPHA
    depth: int = FUSION_DEPTH

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise InvalidInput(f"fusion alpha must be between 0 and 1, got {self.alpha}")
        if self.depth < 1:
            raise InvalidInput(f"fusion depth must be >= 1, got {self.depth}")


def check_mode(mode: str) -> Mode:
    if mode not in MODES:
        raise InvalidInput(f"unknown retrieval mode '{mode}'; choose one of {', '.join(MODES)}")
    return cast(Mode, mode)


def check_k(k: object, most: int | None = None) -> int:
    """``k`` (passages to retrieve) if it is a whole number from 1 (to ``most``, when given)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1 or (most is not None and k > most):
        if most is None:
            raise InvalidInput(f"k must be > 0, got {k}")
        raise InvalidInput(f"number of passages must be 1 to {most}, got {k}")
    return k


def check_fusion(fusion: str) -> Fusion:
    if fusion not in FUSIONS:
        raise InvalidInput(f"unknown fusion '{fusion}'; choose one of {', '.join(FUSIONS)}")
    return cast(Fusion, fusion)


def _min_max(scores: np.ndarray) -> np.ndarray:
    span = float(scores.max() - scores.min()) if len(scores) else 0.0
    return (scores - scores.min()) / span if span > 0 else np.zeros_like(scores)


def convex_fusion(
    candidates: list[Hashable], dense: np.ndarray, sparse: np.ndarray, alpha: float = ALPHA
) -> list[tuple[Hashable, float]]:
    """Fuse two score arrays over the same ``candidates`` into ``(id, score)``, best first.

    A chunk second in dense search but far ahead in BM25 comes first:

    >>> [row for row, _ in convex_fusion([7, 8, 9], np.array([0.9, 0.8, 0.7]), np.array([0.0, 5.0, 1.0]))]
    [8, 7, 9]
    """
    combined = alpha * _min_max(dense.astype(np.float64)) + (1 - alpha) * _min_max(sparse.astype(np.float64))
    order = np.argsort(-combined, kind="stable")
    return [(candidates[i], float(combined[i])) for i in order]


def reciprocal_rank_fusion(rankings: list[list[Hashable]], rrf_k: int = RRF_K) -> list[tuple[Hashable, float]]:
    """Fuse ranked lists of ids into one ``(id, score)`` list, best first.

    Ties keep the order of first appearance, so the first ranking breaks them.

    >>> reciprocal_rank_fusion([[1, 2, 3], [2, 3]])[0][0]
    2
    """
    scores: dict[Hashable, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (rrf_k + rank)
    return sorted(scores.items(), key=lambda kv: kv[1], reverse=True)


@dataclass(frozen=True)
class Ranked:
    """One ranked chunk: the backend's key, the fused score and each retriever's own score."""

    key: Hashable
    score: float
    scores: dict[str, float]  # "dense" and/or "bm25", where that retriever scored the chunk


def rank(
    backend: Backend,
    query: str,
    vector: np.ndarray | None,
    k: int,
    mode: Mode = defaults.MODE,
    fusion: Fusion = "convex",
    settings: FusionSettings = FusionSettings(),
    scope: Scope | None = None,
) -> list[Ranked]:
    """The ``k`` best chunks of ``backend`` for ``query`` (``vector`` is its embedding, needed
    unless ``mode`` is ``bm25``), among those inside ``scope`` when one is given. The backend runs
    the searches, each filtered to the scope; the fusion is done here, the same for every backend."""
    depth = max(k, settings.depth) if mode == "hybrid" else k
    dense = backend.dense_search(vector, depth, scope) if mode != "bm25" and vector is not None else []
    sparse = backend.bm25_search(query, depth, scope) if mode != "dense" else []
    if mode == "dense":
        ranked = dense
    elif mode == "bm25":
        ranked = sparse
    elif fusion == "rrf":
        ranked = reciprocal_rank_fusion([[key for key, _ in dense], [key for key, _ in sparse]])
    else:
        # Score every candidate with both retrievers, so a chunk missing from one list
        # gets its real score there rather than none; only the missing scores are asked for.
        candidates = list(dict.fromkeys([key for key, _ in dense] + [key for key, _ in sparse]))
        if not candidates:
            return []
        assert vector is not None
        dense_of, sparse_of = dict(dense), dict(sparse)
        if missing := [key for key in candidates if key not in dense_of]:
            dense_of.update(zip(missing, map(float, backend.dense_scores(vector, missing))))
        if missing := [key for key in candidates if key not in sparse_of]:
            sparse_of.update(zip(missing, map(float, backend.bm25_scores(query, missing))))
        dense_all = np.array([dense_of[key] for key in candidates])
        sparse_all = np.array([sparse_of[key] for key in candidates])
        dense = list(zip(candidates, map(float, dense_all)))
        sparse = [(key, float(s)) for key, s in zip(candidates, sparse_all) if s > 0]
        ranked = convex_fusion(candidates, dense_all, sparse_all, settings.alpha)
    dense_scores, sparse_scores = dict(dense), dict(sparse)
    out = []
    for key, score in ranked[:k]:
        parts = {"dense": dense_scores.get(key), "bm25": sparse_scores.get(key)}
        out.append(Ranked(key, float(score), {name: s for name, s in parts.items() if s is not None}))
    return out
