"""Compare verifier candidates fitted on the SQuAD 2.0 pool, scored on the dev sets (issue 33).

Reads what ``eval/verifier_collect.py`` wrote (``.rag/verifier/<set>/``): for the pool, the fit;
for every dev set, the test (never fitted on). Each candidate is a logistic regression
(standardised inputs, L2 strength chosen by 5-fold cross-validation on the pool) over one group of
inputs, for one label:

- ``right``: the model's answer is right (an answer to an unanswerable question never is), on the
  answers the model wrote; what the trust score must tell apart (target AUROC >= 0.90);
- ``in_prompt``: a gold answer string is in the prompt, on every question: "do these sources
  answer?", the early-refusal signal.

Inputs: the hidden state at one layer and one moment (``prompt``, ``answer``, ``judge``; see
verifier_collect.py), and, for reference, today's trust score (``trust``: fitted on the dev sets
themselves, so flattered) and its three signals refitted on the pool (``signals``). A learning
curve refits the best hidden-state candidates on growing shares of the pool.

    .venv/bin/python eval/verifier_fit.py     # writes eval/results/verifier/candidates.{json,md}
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.trust import Signals, features  # noqa: E402

DATA = ROOT / ".rag" / "verifier"
DEV = ("seeds", "hotpotqa", "withheld", "squad2")
LABELS = ("right", "in_prompt")


def load(name: str, folder: Path = DATA) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """A set's records and, per moment, an array (questions x layers x width); rows without a
    moment are NaN."""
    path = folder / name
    records = [json.loads(line) for line in (path / "records.jsonl").read_text().splitlines()]
    arrays: dict[str, list[np.ndarray | None]] = {"prompt": [], "answer": [], "judge": []}
    for r in records:
        with np.load(path / "states" / f"{r['id']}.npz") as states:
            for moment, rows in arrays.items():
                rows.append(states[moment].astype(np.float32) if moment in states else None)
    out = {}
    for moment, rows in arrays.items():
        shape = next((x.shape for x in rows if x is not None), None)
        if shape is None:
            continue
        out[moment] = np.stack([x if x is not None else np.full(shape, np.nan, np.float32) for x in rows])
    return records, out


def answered(r: dict[str, Any]) -> bool:
    """The model wrote an answer (not its own "I don't know", not an early refusal)."""
    reason = r.get("refusal_reason") or (r.get("trust") or {}).get("reason")
    return bool(r.get("raw")) and reason not in ("the model found no answer", "no relevant passage")


def label(r: dict[str, Any], name: str) -> bool | None:
    if name == "right":
        return bool(r["candidate_correct"]) if answered(r) else None
    return bool(r["in_prompt"])


def signals(r: dict[str, Any]) -> list[float] | None:
    s = (r.get("trust") or {}).get("signals")
    x = features(Signals(**s)) if s else None
    return None if x is None else list(x)


def auroc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve (ties count half); None with one class only."""
    pos, neg = scores[labels], scores[~labels]
    if not len(pos) or not len(neg):
        return None
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    values = np.concatenate([pos, neg])[order]
    i = 0
    while i < len(values):  # average ranks over ties
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def fit(x: np.ndarray, y: np.ndarray) -> Any:
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=np.logspace(-4, 1, 11).tolist(), cv=5,
                                                                 scoring="roc_auc", max_iter=2000))
    return model.fit(x, y)


def inputs(kind: str, records: list[dict[str, Any]], states: dict[str, np.ndarray], layer_at: int) -> np.ndarray | None:
    if kind == "signals":
        rows = [signals(r) for r in records]
        return np.array([x if x is not None else [np.nan] * 3 for x in rows], dtype=np.float64)
    if kind == "trust":
        return np.array([[(r.get("trust") or {}).get("score", np.nan) or np.nan] for r in records], dtype=np.float64)
    moment = kind
    if moment not in states:
        return None
    return states[moment][:, layer_at, :].astype(np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=ROOT / "eval" / "results" / "verifier" / "candidates")
    args = parser.parse_args()
    pool, pool_states = load("pool", args.data)
    dev = {name: load(name, args.data) for name in DEV if (args.data / name / "records.jsonl").exists()}
    layers = [int(v) for v in np.load(next((args.data / "pool" / "states").glob("*.npz")))["layers"]]
    candidates = [("trust", None), ("signals", None)] + [(m, i) for m in ("prompt", "answer", "judge") for i in range(len(layers))]
    rows = []
    for target in LABELS:
        for kind, at in candidates:
            x = inputs(kind, pool, pool_states, at or 0)
            if x is None:
                continue
            y = np.array([label(r, target) for r in pool], dtype=object)
            keep = np.array([v is not None for v in y]) & ~np.isnan(x).any(axis=1)
            started = time.perf_counter()
            model = None if kind == "trust" else fit(x[keep], y[keep].astype(bool))
            row: dict[str, Any] = {"label": target, "input": kind if at is None else f"{kind} L{layers[at]}",
                                   "fit_n": int(keep.sum()), "fit_s": round(time.perf_counter() - started, 1), "auroc": {}}
            for name, (records, states) in {"pool": (pool, pool_states), **dev}.items():
                xd = inputs(kind, records, states, at or 0)
                yd = np.array([label(r, target) for r in records], dtype=object)
                k = np.array([v is not None for v in yd]) & ~np.isnan(xd).any(axis=1)
                if not k.any():
                    continue
                score = xd[k, 0] if model is None else model.predict_proba(xd[k])[:, 1]
                value = auroc(score, yd[k].astype(bool))
                row["auroc"][name] = None if value is None else round(value, 3)
                row.setdefault("n", {})[name] = int(k.sum())
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    sets = ["pool", *dev]
    lines = [f"# Verifier candidates (fitted on the pool, {len(pool)} questions)\n",
             "| label | input | fit n | " + " | ".join(f"AUROC {s}" for s in sets) + " |",
             "|---|---|---|" + "---|" * len(sets)]
    for row in rows:
        cells = [str(row["auroc"].get(s, "-")) for s in sets]
        lines.append(f"| {row['label']} | {row['input']} | {row['fit_n']} | " + " | ".join(cells) + " |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
