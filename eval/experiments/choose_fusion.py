"""Decided: the hybrid fusion weight per embedder: minilm 0.5, e5-small-q4 0.65, embeddinggemma-300m 0.65.

The hybrid fusion weight per embedder, from the `rag eval --retrieval-only` sweep.

Reads ``eval/results/embedders/<set>-<embedder>-{modes,alpha}/metrics.json`` (the commands
are in eval/README.md, "Embedders and fusion weights"), prints one table per embedder (hit@1,
hit@5 and all gold documents in the top k per dev set, for BM25, dense and each weight) and
picks the weight with the best mean over the three dev sets of hit@1 and all-gold-in-top-k:
the prompt gives the first chunk whole and the other chunks' best sentences, so an answer
needs its best passage first and every passage it needs among the k. Ties go to the weight
nearest 0.5 (no preference).

    .venv/bin/python -m eval.experiments.choose_fusion --out eval/results/embedders/fusion.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from eval.common import DEV_SETS, ROOT

RUNS = ROOT / "eval" / "results" / "embedders"
SETS = tuple(DEV_SETS)


def rows(embedder: str) -> dict[str, dict[str, dict[str, float]]]:
    """``{setting label: {set: retrieval metrics}}`` for one embedder."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for name in SETS:
        for kind in ("modes", "alpha"):
            path = RUNS / f"{name}-{embedder}-{kind}" / "metrics.json"
            if not path.exists():
                continue
            for setting in json.loads(path.read_text())["settings"]:
                label = setting["mode"] if setting["alpha"] is None else f"alpha {setting['alpha']:g}"
                table.setdefault(label, {})[name] = setting["metrics"]["retrieval"]
    return table


def score(metrics: dict[str, dict[str, float]]) -> float | None:
    if set(metrics) != set(SETS):
        return None
    return sum(m["hit@1"] + m["all@k"] for m in metrics.values()) / (2 * len(SETS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedders", default="minilm,e5-small-q4,embeddinggemma-300m")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    lines = ["# Fusion weight per embedder", "",
             "hit@1 / hit@5 / all gold documents in the top 4, per dev set; score: mean of hit@1 and all@4 "
             "over the three sets.", ""]
    for embedder in args.embedders.split(","):
        table = rows(embedder)
        if not table:
            continue
        weights = {label: score(m) for label, m in table.items() if label.startswith("alpha")}
        scored = {label: s for label, s in weights.items() if s is not None}
        chosen = max(scored, key=lambda label: (round(scored[label], 4), -abs(float(label.split()[1]) - 0.5))) if scored else None
        lines += [f"## {embedder}", "", "| setting | " + " | ".join(SETS) + " | score |", "|---|" + "---|" * (len(SETS) + 1)]
        for label, metrics in table.items():
            cells = [f"{m['hit@1']:.2f} / {m['hit@5']:.2f} / {m['all@k']:.2f}" if (m := metrics.get(s)) else "-" for s in SETS]
            s = score(metrics)
            mark = " **(chosen)**" if label == chosen else ""
            lines.append(f"| {label}{mark} | " + " | ".join(cells) + f" | {'-' if s is None else f'{s:.3f}'} |")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
