"""Decided: the early-refusal floor per embedder: MiniLM 0.18, e5-small-q4 0.77, EmbeddingGemma 0.21.

The early-refusal floor per embedder: the best passage's cosine below which the assistant
refuses without generating (``min_relevance`` in ``rag.search.embedding.EMBEDDERS``). No generator.

Cosines are on each model's own scale (MiniLM's best passages for answerable questions start
near 0.3, e5's near 0.8), so the floor is measured per embedder: the best dense cosine among
the k passages the assistant would see, for every answerable question of the dev sets, and for
the off-topic questions of ``eval/gold/off_topic.jsonl`` asked of the seeds. The rule: the
floor is the lowest answerable cosine on any dev set, less a margin of a tenth of the gap between
the answerable and the off-topic medians (the model's own scale: 0.06 for MiniLM, 0.01 for
e5), so it stops only questions far from everything; the plausible unanswerable ones are the
checker's work.
It prints the curve (share of answerable questions refused early, share of off-topic ones
caught, per floor) and the chosen floor, and writes both to --out.

    .venv/bin/python -m eval.experiments.relevance_floor --out eval/results/embedders/relevance_floor.md

It uses the indexes `rag eval --corpus ... --embedder NAME` built (see eval/README.md,
"Embedders and fusion weights"), building any that is missing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from eval.common import DEV_SETS, ROOT
from rag.evaluate.metrics import corpus_index_dir, load_gold
from rag.search.embedding import EMBEDDERS
from rag.search.index import Index

OFF_TOPIC = ROOT / "eval" / "gold" / "off_topic.jsonl"
MARGIN = 0.1  # of the gap between the answerable and off-topic median cosines


def best_cosines(index: Index, questions: list[str]) -> np.ndarray:
    """The best dense cosine among the hybrid top k, as ``Assistant.stream`` computes it."""
    return np.array([
        max((h.scores.get("dense", 0.0) for h in index.search(q, k=defaults.K)), default=0.0) for q in questions
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedders", default=",".join(EMBEDDERS))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    lines: list[str] = []
    for name in args.embedders.split(","):
        first = len(lines)
        answerable: dict[str, np.ndarray] = {}
        off_topic = np.zeros(0)
        for set_name, (gold_path, corpus) in DEV_SETS.items():
            index = Index.open(corpus_index_dir(corpus, name), embedder=name)
            index.add([corpus], progress=True)
            gold = load_gold(gold_path)
            answerable[set_name] = best_cosines(index, [g["question"] for g in gold if g["answerable"]])
            if set_name == "seeds":
                off_topic = best_cosines(index, [g["question"] for g in load_gold(OFF_TOPIC)])
        lowest = min(float(v.min()) for v in answerable.values())
        gap = float(np.median(np.concatenate(list(answerable.values()))) - np.median(off_topic))
        floor = float(np.floor((lowest - MARGIN * gap) * 100) / 100)
        lines += [f"## {name}", "",
                  "| floor | " + " | ".join(f"{s} answerable refused early" for s in answerable) + " | off-topic caught |",
                  "|---|" + "---|" * (len(answerable) + 1)]
        start = np.floor(float(off_topic.min()) * 20) / 20  # from the lowest off-topic cosine, in steps of 0.05
        grid = sorted({round(x, 2) for x in np.arange(start, 1.0, 0.05)} | {floor})
        for f in grid:
            if f > max(float(off_topic.max()), lowest) + 0.1:
                break
            shares = " | ".join(f"{float(np.mean(v < f)):.2f}" for v in answerable.values())
            mark = " (chosen)" if f == floor else ""
            lines.append(f"| {f:.2f}{mark} | {shares} | {float(np.mean(off_topic < f)):.2f} |")
        lines += ["", f"lowest answerable best cosine {lowest:.3f}, gap between the medians {gap:.3f}; off-topic best cosines "
                  f"{float(off_topic.min()):.3f}..{float(off_topic.max()):.3f} (median {float(np.median(off_topic)):.3f}); "
                  f"chosen floor {floor:.2f}", ""]
        print("\n".join(lines[first:]), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("# Early-refusal floor per embedder\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
