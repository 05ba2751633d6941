"""Decided: no early refusal ships: at the threshold that refuses 1% of the prompts holding the answer it catches too few of the rest (issue 33); the product's hook for it was removed in issue 48.

The early check: before any answer token, do the prompt's sources hold the answer? (issue 33)

The assistant would refuse without generating when sure the passages it found do not hold the
answer. The check is a logistic model over :data:`EARLY` (the best cosine; the shares of the question's names, numbers and
words found in the sources), computed from search and sentence selection alone, so it is
fitted on every question of the SQuAD 2.0 pool and of ``pool-withheld`` (the pool's answerable
questions without their own paragraphs), no generator needed. Label: a gold answer string is in
the prompt's sources ("holds"). The threshold is the one that refuses at most ``--lose`` (1%)
of the pool's questions whose prompt holds the answer, out of fold.

Each set's inputs are cached in ``.rag/early/<set>.jsonl`` (search only: about 0.1 s a
question). The report (``eval/results/verifier/early.{json,md}``) gives the AUROC per set and
the whole curve: per threshold and set, the share of prompts holding the answer that would be
refused (lost), of those not holding it (caught), and of unanswerable questions refused.

    .venv/bin/python -m eval.experiments.early_check     # the curves (a record: it reads issue 33's collection)
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from eval.common import ROOT, auroc, git, read_jsonl
from eval.verifier_collect import SETS, in_prompt, load_gold, open_index, parts  # type: ignore[attr-defined]
from eval.verifier_fit import fit, out_of_fold, strength
from rag.answer.verifier import Asked, Verifier

EARLY = ("best cosine", "question names in sources", "question numbers in sources",
         "question words in best source", "question names in best source")
EARLY_FILE = ROOT / ".rag" / "early" / "verifier-early.json"  # no longer read by the product


def early(question: str, sources: Sequence[str], relevance: float) -> list[float]:
    """The early check's inputs, in :data:`EARLY` order, from the texts of the prompt's sources:
    the best cosine, the shares of the question's names and numbers found in any source, and the
    largest shares of its words and of its names found together in one source (a near-miss
    names the asked country in one passage and the asked year in another)."""
    asked = Asked(question)
    each = [asked.found(text) for text in sources]
    _, names, numbers = asked.found(" ".join(sources))
    return [relevance, names, numbers, max((f[0] for f in each), default=0.0), max((f[1] for f in each), default=0.0)]

DATA = ROOT / ".rag" / "early"
FIT = ("pool", "pool-withheld")
DEV = ("seeds", "seeds-withheld", "hotpotqa", "withheld", "squad2")
OUT = ROOT / "eval" / "results" / "verifier" / "early"


def collect(name: str) -> list[dict[str, Any]]:
    """Each question's early-check inputs and label for one set, cached in ``.rag/early/<set>.jsonl``."""
    from rag.answer.assistant import Assistant
    from rag.search.embedding import relevance_floor

    path = DATA / f"{name}.jsonl"
    if path.exists():
        return read_jsonl(path)
    gold_path, corpus = SETS[name]
    rows = []
    for group, where in parts(name, load_gold(gold_path), corpus):
        assistant = Assistant(open_index(where, group))
        floor = relevance_floor(assistant.index.settings.embedder)
        for g in tqdm(group, desc=name, unit="question"):
            hits = assistant.retrieve(g["question"])
            best = max((h.scores.get("dense", 0.0) for h in hits), default=0.0)
            prompt = assistant.prompt(g["question"], hits) if hits else None
            texts = [s.text for s in prompt.sources] if prompt else []
            answers = g.get("answers") or g.get("withheld_answers") or []
            rows.append({"id": str(g["id"]), "answerable": bool(g.get("answerable", True)),
                         "holds": in_prompt({"answers": answers}, " ".join(texts)), "relevant": best >= floor,
                         "values": dict(zip(EARLY, early(g["question"], texts, best), strict=True))})
    DATA.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def matrix(rows: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([[r["values"][n] for n in EARLY] for r in rows]), np.array([r["holds"] for r in rows])


def curve(rows: list[dict[str, Any]], p: np.ndarray, t: float) -> dict[str, float]:
    """At threshold ``t`` (refuse when p < t, among questions that pass the relevance floor): the
    share of prompts holding the answer refused (lost), of the others refused (caught), and of
    unanswerable questions refused early."""
    holds = np.array([r["holds"] for r in rows])
    refused = (p < t) & np.array([r["relevant"] for r in rows])
    unanswerable = np.array([not r["answerable"] for r in rows])
    share = lambda mask: float((refused & mask).sum() / mask.sum()) if mask.any() else float("nan")  # noqa: E731
    return {"lost": share(holds), "caught": share(~holds), "unanswerable_refused": share(unanswerable)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="write rag/answer/verifier-early.json")
    parser.add_argument("--lose", type=float, default=0.01, help="the share of answer-holding pool prompts it may refuse")
    args = parser.parse_args()
    from rag.search.embedding import MINILM_NAME as EMBEDDER

    sets = {name: collect(name) for name in (*FIT, *DEV)}
    pool = [r for name in FIT for r in sets[name]]
    x, y = matrix(pool)
    model = fit(x, y)
    oof = out_of_fold(x, y, strength(model))
    threshold = float(np.quantile(oof[y], args.lose))
    scaler, head = model[0], model[-1]
    commit = git("rev-parse", "--short", "HEAD")
    check = Verifier(
        inputs=EARLY, mean=tuple(map(float, scaler.mean_)), scale=tuple(map(float, scaler.scale_)),
        weights=tuple(map(float, head.coef_[0])), bias=float(head.intercept_[0]), threshold=round(threshold, 4),
        generator="", generator_sha256="", embedder=EMBEDDER,
        fitted_on=f"{len(pool)} questions of ../shared/benchmarks/squad2-fit and its withheld variant "
                  f"(eval/experiments/early_check.py --write at commit {commit}), C={strength(model):g}, label: a gold answer in the sources",
    )
    if args.write:
        check.save(EARLY_FILE)
    scores = {"fit": oof, **{n: np.array([check.probability(r["values"]) for r in sets[n]]) for n in DEV}}
    records = {"fit": pool, **{n: sets[n] for n in DEV}}
    report: dict[str, Any] = {
        "check": check.__dict__, "questions": {n: len(r) for n, r in records.items()},
        "holds": {n: float(np.mean([r["holds"] for r in rows])) for n, rows in records.items()},
        "auroc": {n: auroc(scores[n], np.array([r["holds"] for r in rows])) for n, rows in records.items()},
        "at_threshold": {n: curve(rows, scores[n], check.threshold) for n, rows in records.items()},
        "sweep": [{"threshold": t, **{n: curve(rows, scores[n], t) for n, rows in records.items()}}
                  for t in (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    write_markdown(report, list(records), OUT.with_suffix(".md"), args.lose)
    print(OUT.with_suffix(".md").read_text())


def write_markdown(report: dict[str, Any], sets: list[str], path: Path, lose: float) -> None:
    pct = lambda v: "-" if v != v else f"{100 * v:.1f}%"  # noqa: E731  (NaN: the set has none)
    check = report["check"]
    lines = [
        "# The early check (eval/experiments/early_check.py; not shipped): do the prompt's sources hold the answer?\n",
        f"Fitted on {report['questions']['fit']} questions (`fit`: the SQuAD 2.0 pool and pool-withheld; its figures are",
        f"out of fold). Inputs: {', '.join(check['inputs'])}. Threshold {check['threshold']}: refuses at most {100 * lose:g}% of the",
        "pool's prompts that hold the answer. `lost`: prompts holding the answer refused early; `caught`: prompts",
        "not holding it refused early; `unanswerable`: unanswerable questions refused early.\n",
        "| set | questions | prompt holds the answer | AUROC | lost | caught | unanswerable refused |",
        "|---|---|---|---|---|---|---|",
    ]
    for n in sets:
        at, area = report["at_threshold"][n], report["auroc"][n]
        lines.append(f"| {n} | {report['questions'][n]} | {pct(report['holds'][n])} | "
                     f"{'-' if area is None else f'{area:.3f}'} | {pct(at['lost'])} | {pct(at['caught'])} | "
                     f"{pct(at['unanswerable_refused'])} |")
    lines += ["", "## The curve: lost / caught per threshold\n", "| threshold | " + " | ".join(sets) + " |",
              "|---|" + "---|" * len(sets)]
    for row in report["sweep"]:
        lines.append(f"| {row['threshold']} | " + " | ".join(f"{pct(row[n]['lost'])} / {pct(row[n]['caught'])}" for n in sets) + " |")
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
