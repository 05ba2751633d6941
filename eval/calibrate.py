"""Choose the trust score's weights and threshold from `rag eval` runs on the dev sets.

Every answer in an `answers.jsonl` of `rag eval` records its signals (rag/answer/trust.py), the rules
that fired, and whether the model's own answer was right. This script, without a model:

1. fits the logistic weights of the trust score on all dev sets together, each set weighted
   equally, and checks them by leaving each set out in turn (fit on the others, score it);
2. sweeps the threshold and picks the one with the highest Youden's J (share of right answers
   shown minus share of wrong answers shown), averaged over the sets, reporting each set's
   figures at every threshold;
3. measures each lexical rule at that threshold: the right and the wrong answers it would withhold
   on each set; a rule is kept only if it withholds more wrong than right answers on every set
   where it fires, and wrong answers on at least two sets;
4. writes the curves and the decision to `--out` (calibration.json, calibration.md, calibration.png).

    python -m eval.calibrate seeds=eval/results/dev-seeds/answers.jsonl \\
        hotpotqa=eval/results/dev-hotpotqa/answers.jsonl squad2=eval/results/dev-squad2/answers.jsonl \\
        withheld=eval/results/dev-withheld/answers.jsonl --out eval/results/calibration

The chosen WEIGHTS, BIAS and THRESHOLD are then written into rag/answer/trust.py by hand, with the
commit that measured them (one place for the decision; this script only proposes it).
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eval.common import auroc
from rag.answer.citations import MARKER
from rag.answer.trust import RULES, WEIGHTS, Signals, features

FEATURES = ("log P(answer)", "confidence", "logit support")
# The threshold maximises, averaged over the dev sets, Youden's J of the shown answers: the share
# of right answers shown minus the share of wrong ones shown (an answer to an unanswerable
# question is wrong). Both rates ignore how many of each a set has, so a set where the model is
# mostly wrong does not push every other set into refusing (the net count of right minus wrong
# answers did: seeds false refusals 0.31 at its best threshold).
OBJECTIVE = "j"
# ... among the thresholds that withhold at most this share of the model's right answers on every
# set: the complaint that started this work was correct answers withheld (18% of them).
MAX_RIGHT_WITHHELD = 0.05
# Refusals no threshold or rule can undo: the model's own, nothing relevant retrieved, no sentence
# supported. Any other reason (a low score, a lexical rule) is replayed from the recorded signals.
STRUCTURAL = {"the model found no answer", "no relevant passage", "no sentence of the answer is supported by the sources"}


@dataclass
class Row:
    """One answer the model wrote: its features, rules fired, and whether it was right."""

    set: str
    x: np.ndarray | None  # None: no score possible (model refused, early refusal)
    right: bool
    answerable: bool
    flags: tuple[str, ...]
    blocked: bool  # withheld whatever the threshold (no supported sentence, model refusal, no passage)
    support: float | None = None  # the judge's best sentence support
    cited: bool = True  # the model wrote a [n] marker itself


def load(name: str, path: Path) -> list[Row]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        trust = r.get("trust") or {}
        signals = trust.get("signals")
        x = features(Signals(**signals)) if signals else None
        reason = trust.get("reason") or r.get("refusal_reason")
        structural = reason in STRUCTURAL
        rows.append(Row(name, None if x is None else np.array(x), bool(r.get("candidate_correct")),
                        bool(r.get("answerable", True)), tuple(trust.get("flags", ())), structural or x is None,
                        (signals or {}).get("support"), bool(MARKER.search(r.get("raw") or ""))))
    return rows


def fit(rows: list[Row], l2: float = 1.0, steps: int = 4000) -> tuple[np.ndarray, float]:
    """Logistic regression on the scorable rows, each set's rows weighted to sum to 1."""
    data = [r for r in rows if not r.blocked]
    X = np.stack([r.x for r in data])
    y = np.array([r.right for r in data], float)
    sets = sorted({r.set for r in data})
    w_row = np.array([1 / sum(d.set == r.set for d in data) for r in data]) / len(sets)
    mu, sd = X.mean(0), X.std(0) + 1e-9
    Z = (X - mu) / sd
    w, b = np.zeros(Z.shape[1]), 0.0
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(Z @ w + b)))
        g = (p - y) * w_row
        w -= 0.5 * (Z.T @ g + l2 * w / len(y))
        b -= 0.5 * g.sum()
    return w / sd, float(b - (mu / sd) @ w)


def scores(rows: list[Row], w: np.ndarray, b: float) -> np.ndarray:
    return np.array([-np.inf if r.blocked else 1 / (1 + math.exp(-(float(r.x @ w) + b))) for r in rows])


def figures(rows: list[Row], s: np.ndarray, threshold: float, rules: frozenset[str] = frozenset()) -> dict:
    """Per-set figures when answers with score >= threshold (and no withholding rule) are shown."""
    shown = np.array([v >= threshold and not (set(r.flags) & rules) for r, v in zip(rows, s)])
    right = np.array([r.right for r in rows])
    answerable = np.array([r.answerable for r in rows])
    out = {"coverage": float(shown.mean()), "answered_accuracy": float(right[shown].mean()) if shown.any() else None,
           "net": float((shown & right).sum() - (shown & ~right).sum()) / len(rows),
           "right_withheld": float((~shown)[right].mean()) if right.any() else None,
           "wrong_shown": float(shown[~right].mean()) if (~right).any() else None}
    # Youden's J over the model's answers: right ones shown minus wrong ones shown, each as a rate
    out["j"] = (1 - (out["right_withheld"] or 0.0)) - (out["wrong_shown"] or 0.0)
    if answerable.any():
        out["accuracy"] = float((shown & right)[answerable].mean())
        out["false_refusals"] = float((~shown)[answerable].mean())
    if (~answerable).any():
        out["refusal_accuracy"] = float((~shown)[~answerable].mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="NAME=answers.jsonl")
    parser.add_argument("--out", type=Path, default=Path("eval/results/calibration"))
    args = parser.parse_args()
    rows: list[Row] = []
    for spec in args.runs:
        name, _, path = spec.partition("=")
        rows += load(name, Path(path))
    names = list(dict.fromkeys(r.set for r in rows))
    by_set = {n: [r for r in rows if r.set == n] for n in names}

    w, b = fit(rows)
    s_all = scores(rows, w, b)
    report: dict = {"features": FEATURES, "weights": [round(float(v), 4) for v in w], "bias": round(b, 4),
                    "sets": {}, "held_out": {}, "single_signal_auroc": {}, "curves": {}, "rules": {}}
    # leave one set out: is the combination good on data it was not fitted on?
    for held in names:
        wh, bh = fit([r for r in rows if r.set != held])
        s_h = scores(by_set[held], wh, bh)
        report["held_out"][held] = auroc(s_h, np.array([r.right for r in by_set[held]]))
    # ... and does each signal earn its place? held-out AUROC with one signal left out
    report["without"] = {}
    for i, f in enumerate(FEATURES):
        keep = [j for j in range(len(FEATURES)) if j != i]
        reduced = [Row(r.set, None if r.x is None else r.x[keep], r.right, r.answerable, r.flags, r.blocked) for r in rows]
        out = {}
        for held in names:
            wh, bh = fit([r for r in reduced if r.set != held])
            out[held] = auroc(scores([r for r in reduced if r.set == held], wh, bh),
                              np.array([r.right for r in by_set[held]]))
        report["without"][f] = out
    for n in names:
        rs = by_set[n]
        y = np.array([r.right for r in rs])
        report["single_signal_auroc"][n] = {
            f: auroc(np.array([-np.inf if r.blocked else r.x[i] for r in rs]), y) for i, f in enumerate(FEATURES)
        }
    index = {n: [i for i, r in enumerate(rows) if r.set == n] for n in names}
    report["fitted_auroc"] = {n: auroc(s_all[index[n]], np.array([r.right for r in by_set[n]])) for n in names}
    # threshold sweep: mean over sets of (right - wrong) answers per question
    grid = np.round(np.arange(0.0, 1.0001, 0.02), 2)
    sweep = []
    for t in grid:
        per = {n: figures(by_set[n], s_all[index[n]], t) for n in names}
        sweep.append((t, float(np.mean([per[n][OBJECTIVE] for n in names])), per))
    allowed = [item for item in sweep
               if all((item[2][n]["right_withheld"] or 0.0) <= MAX_RIGHT_WITHHELD for n in names)]
    best_t, best_net, best_per = max(allowed, key=lambda item: (item[1], -item[0]))
    report["threshold"] = float(best_t)
    report["sets"] = best_per
    report["curves"] = {n: [[float(t), per[n]["coverage"], per[n]["answered_accuracy"]] for t, _, per in sweep]
                        for n in names}
    report["sweep"] = [{"threshold": float(t), "net": net, **{n: per[n] for n in names}} for t, net, per in sweep]
    # each rule on top of the threshold: right and wrong answers it would withhold per set
    kept = set()
    # every rule whose flag the runs recorded (rules removed since are still measured here)
    for rule in sorted({f for r in rows for f in r.flags} | set(RULES)):
        effect = {}
        for n in names:
            rs, s = by_set[n], s_all[index[n]]
            hit = [r for r, v in zip(rs, s) if v >= best_t and rule in r.flags]
            effect[n] = {"right": sum(r.right for r in hit), "wrong": sum(not r.right for r in hit)}
        # it pays: more wrong than right answers withheld on every set where it fires, and it
        # fires on at least two sets (a rule that only ever fires on one set fixes that set's questions)
        pays = all(e["wrong"] > e["right"] for e in effect.values() if e["right"] or e["wrong"])
        pays = pays and sum(e["wrong"] > 0 for e in effect.values()) >= 2
        report["rules"][rule] = {"per_set": effect, "kept": pays}
        if pays:
            kept.add(rule)
    report["kept_rules"] = sorted(kept)
    # the judge's own bar: the share of right and of wrong answers whose best sentence support is
    # below p (marked unsupported, so withheld), for all answers and for those the model left uncited
    report["support_sweep"] = []
    for p in (0.3, 0.5, 0.7, 0.8, 0.85, 0.9, 0.95):
        row = {"p": p}
        for n in names:
            judged = [r for r in by_set[n] if r.support is not None]
            for label, group in (("all", judged), ("uncited", [r for r in judged if not r.cited])):
                right = [r.support < p for r in group if r.right]
                wrong = [r.support < p for r in group if not r.right]
                row[f"{n}/{label}"] = [float(np.mean(right)) if right else None, float(np.mean(wrong)) if wrong else None,
                                       len(group)]
        report["support_sweep"].append(row)
    report["sets_with_rules"] = {n: figures(by_set[n], s_all[index[n]], best_t, frozenset(kept)) for n in names}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "calibration.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    (args.out / "calibration.md").write_text(markdown(report, names), encoding="utf-8")
    chart(args.out / "calibration.png", report, names)
    print(markdown(report, names))


def markdown(report: dict, names: list[str]) -> str:
    lines = ["# Trust calibration", "",
             f"Weights ({', '.join(report['features'])}): {report['weights']}, bias {report['bias']}; "
             f"threshold {report['threshold']:.2f}: the highest mean over the sets of Youden's J (right answers shown "
             f"minus wrong answers shown, as rates) among thresholds that withhold at most {MAX_RIGHT_WITHHELD:.0%} of "
             "the right answers on every set.", "",
             "| set | AUROC (fitted on all) | AUROC (fitted without this set) | " +
             " | ".join(f"AUROC {f}" for f in report["features"]) + " |",
             "|---|---|---|" + "---|" * len(report["features"])]
    for n in names:
        single = report["single_signal_auroc"][n]
        fmt = lambda v: "–" if v is None else f"{v:.2f}"  # noqa: E731
        fitted = report.get("fitted_auroc", {}).get(n)
        lines.append(f"| {n} | {fmt(fitted)} | {fmt(report['held_out'][n])} | " +
                     " | ".join(fmt(single[f]) for f in report["features"]) + " |")
    lines += ["", "Held-out AUROC with one signal left out (lower than the full column: the signal pays):", "",
              "| left out | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for f, per in report["without"].items():
        lines.append(f"| {f} | " + " | ".join("–" if per[n] is None else f"{per[n]:.3f}" for n in names) + " |")
    lines.append("| (none) | " + " | ".join("–" if report["held_out"][n] is None else f"{report['held_out'][n]:.3f}"
                                          for n in names) + " |")
    lines += ["", "At the threshold, without and with the kept rules "
              f"({', '.join(report['kept_rules']) or 'none'}):", "",
              "| set | coverage | accuracy of answered | accuracy (answerable) | false refusals | refusal accuracy |",
              "|---|---|---|---|---|---|"]
    for n in names:
        for label, f in (("", report["sets"][n]), (" + rules", report["sets_with_rules"][n])):
            cell = lambda k: "–" if f.get(k) is None else f"{f[k]:.2f}"  # noqa: E731
            lines.append(f"| {n}{label} | {cell('coverage')} | {cell('answered_accuracy')} | {cell('accuracy')} | "
                         f"{cell('false_refusals')} | {cell('refusal_accuracy')} |")
    lines += ["", "Rules at the threshold (right / wrong answers each would withhold):", "",
              "| rule | " + " | ".join(names) + " | kept |", "|---|" + "---|" * (len(names) + 1)]
    for rule, info in report["rules"].items():
        lines.append(f"| {rule} | " + " | ".join(f"{info['per_set'][n]['right']} / {info['per_set'][n]['wrong']}"
                                               for n in names) + f" | {'yes' if info['kept'] else 'no'} |")
    lines += ["", "The judge's bar (SUPPORT_PROBABILITY, ATTACH_PROBABILITY in rag/answer/citations.py): share of right / "
              "wrong answers whose best sentence support is below p, all answers and those the model left uncited "
              "(n in brackets):", "",
              "| p | " + " | ".join(names) + " | " + " | ".join(f"{n} uncited" for n in names) + " |",
              "|---|" + "---|" * (2 * len(names))]
    fmt2 = lambda v: "–" if v is None else f"{v:.2f}"  # noqa: E731
    for row in report["support_sweep"]:
        cells = [f"{fmt2(row[f'{n}/all'][0])} / {fmt2(row[f'{n}/all'][1])}" for n in names]
        cells += [f"{fmt2(row[f'{n}/uncited'][0])} / {fmt2(row[f'{n}/uncited'][1])} ({row[f'{n}/uncited'][2]})"
                  for n in names]
        lines.append(f"| {row['p']:.2f} | " + " | ".join(cells) + " |")
    lines += ["", "Threshold sweep (accuracy of answerable / false refusals / refusal accuracy / right answers withheld "
              "/ wrong answers shown, per set):", "",
              "| threshold | mean J | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for row in report["sweep"][::2]:
        cells = []
        for n in names:
            f = row[n]
            parts = [f"{f[k]:.2f}" if f.get(k) is not None else "–"
                     for k in ("accuracy", "false_refusals", "refusal_accuracy", "right_withheld", "wrong_shown")]
            cells.append(" / ".join(parts))
        lines.append(f"| {row['threshold']:.2f} | {row['net']:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def chart(path: Path, report: dict, names: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, n in enumerate(names):
        pts = [(c, a) for _, c, a in report["curves"][n] if a is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], color=f"C{i}", label=n)
        f = report["sets"][n]
        if f["answered_accuracy"] is not None:
            ax.scatter([f["coverage"]], [f["answered_accuracy"]], color=f"C{i}", s=70, edgecolor="black", zorder=3)
    ax.scatter([], [], color="grey", edgecolor="black", label=f"threshold {report['threshold']:.2f}")
    ax.set_xlabel("coverage (share of questions answered)")
    ax.set_ylabel("accuracy of answered questions")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title("trust score: risk and coverage per dev set")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    assert len(WEIGHTS) == len(FEATURES)
    main()
