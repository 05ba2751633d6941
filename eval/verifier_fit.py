"""Fit the product's verifiers on data as varied as the product's failures, and show on the dev sets what each choice does (issue 45).

Reads what ``eval/verifier_collect.py`` wrote (``.rag/verifier/<set>/``): the fitting sets
(:data:`eval.verifier_collect.FITTING`: the SQuAD 2.0 and two-hop pools and their variants, labelled
by construction, :mod:`eval.fitting_data`) to fit on, and the dev sets (:data:`DEV`) to report on,
never fitted on. An answer's label is ``right``: the model wrote an answer and it is correct (an
answer to an unanswerable question never is).

The verifier is a logistic model over named inputs (:class:`rag.answer.verifier.Verifier`):

- the model's own signals: ``log answer probability``, ``confidence`` and, when the judge ran,
  ``support log-odds`` (rag/answer/trust.py);
- what the question names, found in the quotes the answer cites, and the answer's length
  (:data:`LEXICAL_INPUTS`, rag/answer/verifier.py);
- the log-odds of two probes of the generator's hidden state, at the prompt's end and at the
  answer's last token (:class:`rag.answer.verifier.Probe`), each at the layer whose probe
  cross-validates best on the fitting answers; the stack is fitted on their out-of-fold log-odds.

What it measures, every figure on every dev set:

1. learning curves: AUROC against the fitting set's size, and against which kinds of fitting data
   are in it (SQuAD only, + its variants, + two-hop, + its variants; and each kind left out);
2. each input's contribution: the stack refitted without it (the judge's support among them);
3. the threshold: wrong answers shown, right answers kept, refusal accuracy and accuracy at every
   threshold, and the one chosen on the fitting answers (out of fold) by the cost it states.

``--write`` writes ``rag/answer/verifier-probe.json`` (the stack with the probes) and
``rag/answer/verifier.json`` (the same without them, for answers that carry no hidden states), and
the report to ``eval/results/verifier/fit.{json,md}``.

    .venv/bin/python -m eval.verifier_fit            # the report only
    .venv/bin/python -m eval.verifier_fit --write    # and the two product files
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eval.common import ROOT, auroc, git, read_jsonl
from eval.verifier_collect import FITTING

# scikit-learn announces changes to LogisticRegressionCV's defaults on every fit; the arguments
# used here behave the same before and after them.
warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")

DATA = ROOT / ".rag" / "verifier"
DEV = ("seeds", "seeds-withheld", "squad2", "hotpotqa", "withheld", "twowiki-dev", "twowiki-dev-half")
SIGNALS = ("log answer probability", "confidence", "support log-odds")
# What the question names found in the quotes, and the answer's length: on scales that do not depend
# on the corpus (the retrieval scores of rag.answer.verifier.LEXICAL do; issue 33 left them out).
LEXICAL_INPUTS = ("question words quoted", "question names quoted", "question numbers quoted", "answer words")
MOMENTS = ("prompt", "answer")  # the hidden states the product's generator keeps (GenerationStats.hidden)
# Kinds of fitting data, in the order the learning curve adds them.
KINDS = {"SQuAD": ("pool",), "SQuAD variants": ("pool-withheld", "pool-swap"),
         "two-hop": ("twowiki",), "two-hop variants": ("twowiki-half", "twowiki-swap", "twowiki-withheld")}
# The cost written beside the threshold: a wrong answer shown counts this many right answers withheld.
WRONG_COSTS = 3.0
RIGHT_KEPT = 0.90  # the threshold keeps this share of the fitting answers' right ones (issue 45's target)
JUDGE_MARGIN = 0.01  # dev AUROC the judge must add on some set to stay on the default path


@dataclass
class Set:
    """One collected set: its records, and per moment the states (questions x layers x width)."""

    name: str
    records: list[dict[str, Any]]
    states: dict[str, np.ndarray]
    layers: list[int]
    probes: dict[str, np.ndarray] = field(default_factory=dict)  # probe log-odds by input name

    @property
    def labels(self) -> np.ndarray:
        """``right`` per record: True, False, or None where the model wrote no answer."""
        return np.array([label(r) for r in self.records], dtype=object)


def load(name: str, folder: Path = DATA) -> Set | None:
    path = folder / name
    if not (path / "records.jsonl").exists():
        return None
    records = read_jsonl(path / "records.jsonl")
    rows: dict[str, list[np.ndarray | None]] = {m: [] for m in MOMENTS}
    layers: list[int] = []
    for r in records:
        with np.load(path / "states" / f"{r['id']}.npz") as saved:
            layers = [int(v) for v in saved["layers"]]
            for moment in MOMENTS:
                rows[moment].append(saved[moment].astype(np.float32) if moment in saved else None)
    states = {}
    for moment, found in rows.items():
        shape = next((x.shape for x in found if x is not None), None)
        if shape is not None:
            states[moment] = np.stack([x if x is not None else np.full(shape, np.nan, np.float32) for x in found])
    return Set(name, records, states, layers)


def join(sets: Sequence[Set], name: str = "fit") -> Set:
    return Set(name, [r for s in sets for r in s.records],
               {m: np.concatenate([s.states[m] for s in sets]) for m in MOMENTS if all(m in s.states for s in sets)},
               sets[0].layers)


def answered(r: dict[str, Any]) -> bool:
    """The model wrote an answer (not its own "I don't know", not an early refusal)."""
    reason = r.get("refusal_reason") or (r.get("trust") or {}).get("reason")
    return bool(r.get("raw")) and reason not in ("the model found no answer", "no relevant passage")


def label(r: dict[str, Any]) -> bool | None:
    return bool(r["candidate_correct"]) if answered(r) else None


def blocked(r: dict[str, Any], judge: bool = True) -> bool:
    """Withheld whatever the score: no supported sentence (by the judge, or ``judge`` off by shared
    words alone, as collected), or a lexical rule fired (rag.answer.trust.assess)."""
    trust = r.get("trust") or {}
    if trust.get("flags"):
        return True
    if judge:
        return trust.get("reason") == "no sentence of the answer is supported by the sources"
    return not r.get("supported_without_judge", True)


def values(r: dict[str, Any]) -> dict[str, float]:
    """A record's inputs by name, as the product computes them (rag.answer.trust.inputs)."""
    from rag.answer.trust import Signals
    from rag.answer.trust import inputs as trust_inputs

    s = (r.get("trust") or {}).get("signals") or {}
    kept = {k: s.get(k) for k in ("answer_probability", "confidence", "support")}
    lexical = s.get("lexical")
    return trust_inputs(Signals(s.get("relevance", 0.0), **kept, lexical=tuple(lexical) if lexical else None))


# ---------------------------------------------------------------------------------- fitting


def fit(x: np.ndarray, y: np.ndarray, c: float | None = None, scoring: str = "roc_auc") -> Any:
    """Standardised logistic regression; L2 strength by 3-fold cross-validation on ``scoring`` unless
    ``c`` is given. The probes are chosen by how they rank (``roc_auc``); the stack, whose output is
    shown as a probability and thresholded, by ``neg_log_loss``: ranking alone lets the strength go
    so low that every score sits within a few hundredths of the base rate."""
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if c is None:
        head: Any = LogisticRegressionCV(Cs=np.logspace(-4, 1, 6).tolist(), cv=3, scoring=scoring, max_iter=1000)
    else:
        head = LogisticRegression(C=c, max_iter=1000)
    return make_pipeline(StandardScaler(), head).fit(x, y)


def strength(model: Any) -> float:
    return float(model[-1].C_[0]) if hasattr(model[-1], "C_") else float(model[-1].C)


def out_of_fold(x: np.ndarray, y: np.ndarray, c: float, folds: int = 5) -> np.ndarray:
    """Each row's probability from a model fitted on the other folds, at strength ``c``."""
    from sklearn.model_selection import StratifiedKFold

    out = np.zeros(len(y))
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=0).split(x, y):
        out[test] = fit(x[train], y[train], c).predict_proba(x[test])[:, 1]
    return out


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def fold(model: Any) -> tuple[np.ndarray, float]:
    """A standardised logistic pipeline as one direction and bias on the raw state (rag.answer.verifier.Probe)."""
    scaler, head = model[0], model[-1]
    weights = head.coef_[0] / scaler.scale_
    return weights, float(head.intercept_[0] - np.dot(weights, scaler.mean_))


@dataclass
class Fitted:
    """A verifier fitted on one fitting set: its probes, its stack, and the fitting answers' out-of-fold scores."""

    probes: list[Any]  # rag.answer.verifier.Probe
    names: tuple[str, ...]
    model: Any
    oof: np.ndarray  # per fitting record (NaN where the model wrote no answer)
    choice: dict[str, Any]

    def score(self, s: Set) -> np.ndarray:
        """Each record's probability (NaN where the model wrote no answer or an input is missing)."""
        x = matrix(s, self.names, self.probes)
        out = np.full(len(s.records), np.nan)
        ok = ~np.isnan(x).any(axis=1) & np.array([answered(r) for r in s.records])
        if ok.any():
            out[ok] = self.model.predict_proba(x[ok])[:, 1]
        return out


def probe_log_odds(s: Set, probe: Any) -> np.ndarray:
    x = s.states.get(probe.moment)
    column = np.full(len(s.records), np.nan)
    if x is not None:
        at = s.layers.index(probe.layer)
        ok = ~np.isnan(x[:, at, :]).any(axis=1)
        column[ok] = x[ok, at, :].astype(np.float64) @ np.asarray(probe.weights) + probe.bias
    return column


def matrix(s: Set, names: Sequence[str], probes: Sequence[Any], oof: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """The inputs ``names`` of every record of ``s``: the probes' log-odds (``oof`` for the fitting set's
    own, out of fold), the rest from the record."""
    columns = {p.name: (oof or {}).get(p.name, probe_log_odds(s, p)) for p in probes}
    rows = [values(r) for r in s.records]
    return np.array([[columns[n][i] if n in columns else row.get(n, np.nan) for n in names] for i, row in enumerate(rows)],
                    dtype=np.float64).reshape(len(rows), len(names))  # a set with no record yet is 0 x inputs


def fit_probes(s: Set, moments: Sequence[str] = MOMENTS, layers: Sequence[int] | None = None
               ) -> tuple[list[Any], dict[str, np.ndarray], dict[str, Any]]:
    """One probe per moment, at the layer (of ``layers``, default all collected) whose probe is best
    out of fold on the fitting answers; with their out-of-fold log-odds and the choice."""
    from rag.answer.verifier import Probe

    y_all = s.labels
    probes, oof, choice = [], {}, {}
    for moment in moments:
        if moment not in s.states:
            continue
        scored = []
        for at, layer in enumerate(s.layers):
            if layers is not None and layer not in layers:
                continue
            x = s.states[moment][:, at, :].astype(np.float64)
            keep = np.array([v is not None for v in y_all]) & ~np.isnan(x).any(axis=1)
            y = y_all[keep].astype(bool)
            model = fit(x[keep], y)
            column = np.full(len(s.records), np.nan)
            column[keep] = logit(out_of_fold(x[keep], y, strength(model)))
            scored.append((auroc(column[keep], y) or 0.0, layer, model, column))
        value, layer, model, column = max(scored, key=lambda t: t[0])
        weights, bias = fold(model)
        probe = Probe(moment, layer, tuple(float(f"{w:.6g}") for w in weights), float(f"{bias:.6g}"))
        probes.append(probe)
        oof[probe.name] = column
        choice[probe.name] = {"out_of_fold": round(value, 3), "C": strength(model),
                              "by_layer": {f"L{lay}": round(a, 3) for a, lay, _, _ in scored}}
    return probes, oof, choice


def fit_stack(s: Set, names: Sequence[str], probes: Sequence[Any], oof: dict[str, np.ndarray], choice: dict[str, Any]) -> Fitted:
    """The logistic stack over ``names`` on the fitting answers that have every input."""
    x = matrix(s, names, probes, oof)
    y_all = s.labels
    keep = np.array([v is not None for v in y_all]) & ~np.isnan(x).any(axis=1)
    y = y_all[keep].astype(bool)
    model = fit(x[keep], y, scoring="neg_log_loss")
    scores = np.full(len(s.records), np.nan)
    scores[keep] = out_of_fold(x[keep], y, strength(model))
    return Fitted(list(probes), tuple(names), model, scores, choice)


def fit_verifier(s: Set, with_probes: bool = True, drop: Sequence[str] = (), layers: Sequence[int] | None = None) -> Fitted:
    """Probes (unless ``with_probes`` is off) and the stack over every input but ``drop``."""
    probes, oof, choice = fit_probes(s, layers=layers) if with_probes else ([], {}, {})
    probes = [p for p in probes if p.name not in drop]
    names = tuple(n for n in (*SIGNALS, *LEXICAL_INPUTS, *(p.name for p in probes)) if n not in drop)
    return fit_stack(s, names, probes, oof, choice)


# ---------------------------------------------------------------------------------- measuring


def figures(s: Set, scores: np.ndarray, threshold: float, judge: bool = True) -> dict[str, float]:
    """With answers shown when the model answered, no rule blocked them and the score reaches
    ``threshold``: wrong answers shown (of all questions), the model's right answers kept, refusal
    accuracy, accuracy (right answers shown of answerable questions)."""
    rows = s.records
    shown = np.array([answered(r) and not blocked(r, judge) for r in rows]) & (np.nan_to_num(scores, nan=-1.0) >= threshold)
    right = np.array([bool(r["candidate_correct"]) and answered(r) for r in rows])
    unanswerable = np.array([not r["answerable"] for r in rows])
    answerable = ~unanswerable
    return {"wrong_shown": float((shown & ~right).mean()),
            "right_kept": float((shown & right).sum() / max(1, right.sum())),
            "refusal_accuracy": float((~shown & unanswerable).sum() / max(1, unanswerable.sum())) if unanswerable.any() else None,
            "accuracy": float((shown & right & answerable).sum() / max(1, answerable.sum())) if answerable.any() else None}


def shipped(s: Set, path: Path) -> tuple[np.ndarray, float]:
    """The scores that the verifier in ``path`` (the product's, before ``--write``) gives each record,
    recomputed from its inputs and its states, and that verifier's threshold. (At collection the
    answers were scored by ``verifier.json``: the collection's own tap keeps the states, so the
    probes had none to read; the probe verifier is what the product runs.)"""
    from rag.answer.verifier import Verifier

    verifier = Verifier.load(path)
    columns = {p.name: probe_log_odds(s, p) for p in verifier.probes}
    out = np.full(len(s.records), np.nan)
    for i, r in enumerate(s.records):
        if answered(r):
            probes = {name: None if np.isnan(column[i]) else float(column[i]) for name, column in columns.items()}
            p = verifier.probability({**values(r), **probes})
            out[i] = np.nan if p is None else p
    return out, verifier.threshold


def auroc_of(s: Set, scores: np.ndarray) -> float | None:
    y = s.labels
    keep = ~np.isnan(scores) & np.array([v is not None for v in y])
    value = auroc(scores[keep], y[keep].astype(bool)) if keep.any() else None
    return None if value is None else round(value, 3)


def aurocs(fitted: Fitted, dev: dict[str, Set]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name, s in dev.items():
        scores, y = fitted.score(s), s.labels
        keep = ~np.isnan(scores) & np.array([v is not None for v in y])
        value = auroc(scores[keep], y[keep].astype(bool)) if keep.any() else None
        out[name] = None if value is None else round(value, 3)
    return out


def recorded_aurocs(dev: dict[str, Set]) -> dict[str, float | None]:
    """The AUROC of the trust score recorded at collection (``verifier.json``), on the same answers."""
    return {name: auroc_of(s, np.array([(r.get("trust") or {}).get("score") for r in s.records], dtype=float))
            for name, s in dev.items()}


def fit_auroc(fitted: Fitted, s: Set) -> float | None:
    y = s.labels
    keep = ~np.isnan(fitted.oof) & np.array([v is not None for v in y])
    value = auroc(fitted.oof[keep], y[keep].astype(bool)) if keep.any() else None
    return None if value is None else round(value, 3)


def choose_threshold(fitted: Fitted, s: Set, right_kept: float = RIGHT_KEPT, wrong_costs: float = WRONG_COSTS
                     ) -> tuple[float, list[dict[str, float]]]:
    """The highest threshold that keeps ``right_kept`` of the fitting answers' right ones (out of
    fold), with the curve: at every threshold the wrong answers shown, the right ones withheld, and
    their cost when a wrong answer shown counts ``wrong_costs`` right ones withheld.

    Not the cost's minimum: the fitting sets are mostly wrong answers (half of SQuAD 2.0 is
    unanswerable, two-hop answers are mostly wrong), so the minimum sits where few right answers
    are kept, and a score's scale moves with each set's share of right answers. The share of right
    answers kept is a rank, which carries better from one set to another."""
    y = s.labels
    ok = ~np.isnan(fitted.oof) & np.array([v is not None for v in y])
    scores, right = fitted.oof[ok], y[ok].astype(bool)
    curve = []
    for t in np.round(np.arange(0.01, 0.99, 0.01), 2):
        shown = scores >= t
        wrong = int((shown & ~right).sum())
        withheld = int((~shown & right).sum())
        curve.append({"threshold": float(t), "wrong_shown": wrong, "right_withheld": withheld,
                      "right_kept": round(1 - withheld / max(1, int(right.sum())), 3), "cost": wrong_costs * wrong + withheld})
    keeping = [c for c in curve if c["right_kept"] >= right_kept]
    return (max(keeping, key=lambda c: c["threshold"]) if keeping else curve[0])["threshold"], curve


# ---------------------------------------------------------------------------------- the run


def subset(s: Set, keep: np.ndarray, name: str) -> Set:
    return Set(name, [r for r, k in zip(s.records, keep) if k], {m: a[keep] for m, a in s.states.items()}, s.layers)


def learning_curves(fitting: dict[str, Set], dev: dict[str, Set], layers: Sequence[int]) -> dict[str, Any]:
    """Dev AUROC against the fitting set's size (shares of all of it) and against the kinds in it."""
    everything = join(list(fitting.values()))
    by_size = []
    rng = np.random.default_rng(0)
    for share in (0.1, 0.25, 0.5, 1.0):
        keep = rng.random(len(everything.records)) < share if share < 1 else np.ones(len(everything.records), bool)
        part = subset(everything, keep, f"{share:.0%}")
        fitted = fit_verifier(part, layers=layers)
        by_size.append({"share": share, "answers": int(sum(label(r) is not None for r in part.records)),
                        "auroc": aurocs(fitted, dev)})
        print(f"size {share}: {by_size[-1]}", file=sys.stderr, flush=True)
    by_kind = []
    names = [n for kind in KINDS.values() for n in kind if n in fitting]
    steps: list[tuple[str, list[str]]] = []
    so_far: list[str] = []
    for kind, sets in KINDS.items():
        present = [n for n in sets if n in fitting]
        if present:
            so_far = [*so_far, *present]
            steps.append((("+ " if len(steps) else "") + kind, list(so_far)))
    for kind, sets in KINDS.items():
        present = [n for n in sets if n in fitting]
        if present and len(present) < len(names):
            steps.append((f"all but {kind}", [n for n in names if n not in present]))
    for label_, chosen in steps:
        fitted = fit_verifier(join([fitting[n] for n in chosen]), layers=layers)
        by_kind.append({"kinds": label_, "sets": chosen, "answers": int(sum(label(r) is not None for n in chosen for r in fitting[n].records)),
                        "auroc": aurocs(fitted, dev)})
        print(f"kinds {label_}: {by_kind[-1]['auroc']}", file=sys.stderr, flush=True)
    return {"by_size": by_size, "by_kind": by_kind}


def ablation(everything: Set, dev: dict[str, Set], full: Fitted, oof: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """The stack refitted without each input in turn (the probes as fitted, their fitting log-odds
    ``oof`` out of fold), dev AUROC of each."""
    rows = []
    for dropped in (None, *full.names):
        names = tuple(n for n in full.names if n != dropped)
        fitted = fit_stack(everything, names, [p for p in full.probes if p.name in names], oof, full.choice)
        rows.append({"without": dropped or "(nothing)", "auroc": aurocs(fitted, dev), "fit": fit_auroc(fitted, everything)})
        print(f"without {dropped}: {rows[-1]['auroc']}", file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--write", action="store_true", help="write rag/answer/verifier-probe.json and rag/answer/verifier.json")
    parser.add_argument("--layers", default="", help="the layers the probes may use (default: every one collected)")
    parser.add_argument("--no-curves", action="store_true", help="skip the learning curves (minutes)")
    parser.add_argument("--out", type=Path, default=ROOT / "eval" / "results" / "verifier" / "fit")
    parser.add_argument("--replay", type=Path, default=None,
                        help="also write each dev set's answers as the shipped verifier decides them (DIR/SET.answers.jsonl), "
                             "for eval/paired.py against the records (the verifier shipped at collection)")
    args = parser.parse_args()
    fitting = {n: s for n in FITTING if (s := load(n, args.data)) is not None}
    dev = {n: s for n in DEV if (s := load(n, args.data)) is not None}
    if not fitting:
        raise SystemExit(f"nothing collected in {args.data}: run python -m eval.verifier_collect all first")
    layers = [int(v) for v in args.layers.split(",")] if args.layers else None
    from rag.answer.verifier import PROBE_FILE

    before = {n: shipped(s, PROBE_FILE) for n, s in dev.items()}  # read before --write replaces it
    everything = join(list(fitting.values()))
    probes, oof, choice = fit_probes(everything, layers=layers)
    names = (*SIGNALS, *LEXICAL_INPUTS, *(p.name for p in probes))
    full = fit_stack(everything, names, probes, oof, choice)
    plain = fit_stack(everything, (*SIGNALS, *LEXICAL_INPUTS), [], {}, {})
    threshold, cost_curve = choose_threshold(full, everything)
    plain_threshold, _ = choose_threshold(plain, everything)
    report: dict[str, Any] = {
        "command": "python -m eval.verifier_fit" + (" --write" if args.write else ""), "code": git("describe", "--always", "--dirty"),
        "fitting": {n: {"questions": len(s.records), "answers": int(sum(label(r) is not None for r in s.records))} for n, s in fitting.items()},
        "dev": {n: {"questions": len(s.records), "answers": int(sum(label(r) is not None for r in s.records))} for n, s in dev.items()},
        "probes": choice, "inputs": list(names),
        "auroc": {"probe verifier": {**aurocs(full, dev), "fit (out of fold)": fit_auroc(full, everything)},
                  "without probes": {**aurocs(plain, dev), "fit (out of fold)": fit_auroc(plain, everything)},
                  "shipped before (verifier-probe.json, recomputed)": {n: auroc_of(s, before[n][0]) for n, s in dev.items()},
                  "verifier.json (scored at collection)": recorded_aurocs(dev)},
        "threshold": {"chosen": threshold, "right_kept": RIGHT_KEPT, "wrong_costs": WRONG_COSTS, "plain": plain_threshold,
                      "at_chosen": next(c for c in cost_curve if c["threshold"] == threshold),
                      "cost_minimum": min(cost_curve, key=lambda c: (c["cost"], c["threshold"])), "cost_curve": cost_curve},
        "at_threshold": {n: {**figures(s, full.score(s), threshold), "today": figures(s, *before[n])} for n, s in dev.items()},
        "sweep": [{"threshold": float(t), **{n: figures(s, full.score(s), float(t)) for n, s in dev.items()}}
                  for t in np.round(np.arange(0.02, 0.97, 0.02), 2)],
        "ablation": ablation(everything, dev, full, oof),
    }
    # The judge's turns cost a share of every answer: the stack without its support, and without the
    # judge at all (a sentence supported by shared words alone), at its own threshold.
    no_judge = fit_stack(everything, tuple(n for n in names if n != SIGNALS[2]), probes, oof, choice)
    no_judge_threshold, _ = choose_threshold(no_judge, everything)
    report["no_judge"] = {
        "auroc": {**aurocs(no_judge, dev), "fit (out of fold)": fit_auroc(no_judge, everything)}, "threshold": no_judge_threshold,
        "at_threshold": {n: figures(s, no_judge.score(s), no_judge_threshold, judge=False) for n, s in dev.items()},
        "checks_share_p50": {n: checks_share(s) for n, s in dev.items()}}
    # Issue 45's rule: the judge leaves the default path if the stack without it is as good (within
    # JUDGE_MARGIN AUROC) on every dev set with right and wrong answers.
    pairs = [(report["auroc"]["probe verifier"].get(n), report["no_judge"]["auroc"].get(n)) for n in dev]
    drop_judge = all(b is not None and a - b <= JUDGE_MARGIN for a, b in pairs if a is not None)
    report["no_judge"]["decision"] = "dropped: the default path skips the judge" if drop_judge else "kept: the judge pays on some dev set"
    if not args.no_curves:
        report["learning"] = learning_curves(fitting, dev, layers or everything.layers)
    ship, ship_threshold = (no_judge, no_judge_threshold) if drop_judge else (full, threshold)
    if args.write:
        write_product(ship, plain, ship_threshold, plain_threshold, fitting)
    if args.replay:
        replay(dev, {n: ship.score(s) for n, s in dev.items()}, ship_threshold, not drop_judge, args.replay, "answers")
        replay(dev, {n: b[0] for n, b in before.items()}, next(iter(before.values()))[1], True, args.replay, "before")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    print(args.out.with_suffix(".md").read_text())


def replay(dev: dict[str, Set], scores: dict[str, np.ndarray], threshold: float, judge: bool, folder: Path, kind: str) -> None:
    """Each dev set's records with ``refused`` as ``scores`` decide at ``threshold`` (as :func:`figures`
    counts shown), as ``FOLDER/SET.KIND.jsonl``: ``eval/paired.py SET=FOLDER/SET.before.jsonl,FOLDER/SET.answers.jsonl``
    compares the verifiers on the same answers."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, s in dev.items():
        rows = [{**r, "refused": not (answered(r) and not blocked(r, judge) and score >= threshold)}
                for r, score in zip(s.records, np.nan_to_num(scores[name], nan=-1.0))]
        (folder / f"{name}.{kind}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def checks_share(s: Set) -> float | None:
    """The median share of an answer's time spent on the checks after it streamed (the judge's turns, mostly)."""
    shares = [r["timings"]["checks_s"] / r["timings"]["total_s"] for r in s.records
              if answered(r) and (r.get("timings") or {}).get("total_s") and r["timings"].get("checks_s") is not None]
    return round(float(np.median(shares)), 3) if shares else None


def write_product(full: Fitted, plain: Fitted, threshold: float, plain_threshold: float, fitting: dict[str, Set]) -> None:
    from rag.answer.verifier import FILE, PROBE_FILE, Verifier
    from rag.core.bundled import BUNDLED
    from rag.search.embedding import MINILM_NAME

    source = ", ".join(f"{n} ({sum(label(r) is not None for r in s.records)})" for n, s in fitting.items())
    for fitted, t, path in ((full, threshold, PROBE_FILE), (plain, plain_threshold, FILE)):
        scaler, head = fitted.model[0], fitted.model[-1]
        Verifier(inputs=fitted.names, mean=tuple(map(float, scaler.mean_)), scale=tuple(map(float, scaler.scale_)),
                 weights=tuple(map(float, head.coef_[0])), bias=float(head.intercept_[0]), threshold=t,
                 generator="qwen-1.5b", generator_sha256=BUNDLED["qwen-1.5b"].sha256, embedder=MINILM_NAME,
                 fitted_on=f"answers of {source} (eval/verifier_fit.py --write at {git('rev-parse', '--short', 'HEAD')}), "
                           f"C={strength(fitted.model):g}",
                 probes=tuple(fitted.probes)).save(path)


def markdown(report: dict[str, Any]) -> str:
    pct: Callable[[float | None], str] = lambda v: "–" if v is None else f"{100 * v:.0f}%"  # noqa: E731
    num: Callable[[float | None], str] = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    sets = list(report["dev"])
    lines = ["# The verifier, fitted on the pools and their variants (issue 45)", "",
             f"`{report['command']}` at {report['code']}. Fitting sets (questions / answers the model wrote): "
             + ", ".join(f"{n} {v['questions']}/{v['answers']}" for n, v in report["fitting"].items())
             + ". Dev sets, never fitted on: " + ", ".join(f"{n} {v['questions']}/{v['answers']}" for n, v in report["dev"].items()) + ".", "",
             "Probe layers, by out-of-fold AUROC on the fitting answers: "
             + "; ".join(f"{n}: " + ", ".join(f"{k} {v}" for k, v in c["by_layer"].items()) for n, c in report["probes"].items()) + ".", "",
             "## AUROC (right against wrong answers)", "", "| | fit (out of fold) | " + " | ".join(sets) + " |",
             "|---|---|" + "---|" * len(sets)]
    for kind, by in report["auroc"].items():
        lines.append(f"| {kind} | {num(by.get('fit (out of fold)'))} | " + " | ".join(num(by.get(s)) for s in sets) + " |")
    t = report["threshold"]
    lines += ["", f"## At the chosen threshold {t['chosen']}", "",
              f"Chosen on the fitting answers out of fold: the highest threshold that keeps {t['right_kept']:.0%} of their "
              f"right answers. There it shows {t['at_chosen']['wrong_shown']} wrong answers and withholds "
              f"{t['at_chosen']['right_withheld']} right ones: a cost of {t['at_chosen']['cost']:g} when a wrong answer shown "
              f"counts {t['wrong_costs']:g} right ones withheld, against {t['cost_minimum']['cost']:g} at the cost's minimum "
              f"({t['cost_minimum']['threshold']}: {t['cost_minimum']['wrong_shown']} wrong shown, "
              f"{t['cost_minimum']['right_withheld']} right withheld; every threshold's in fit.json). Against the decisions "
              "shipped before (verifier-probe.json at its threshold, recomputed on the same answers) in brackets.", "",
              "| set | wrong shown | right kept | refusal accuracy | accuracy |", "|---|---|---|---|---|"]
    for name, v in report["at_threshold"].items():
        d = v["today"]
        lines.append(f"| {name} | {pct(v['wrong_shown'])} ({pct(d['wrong_shown'])}) | {pct(v['right_kept'])} ({pct(d['right_kept'])}) | "
                     f"{pct(v['refusal_accuracy'])} ({pct(d['refusal_accuracy'])}) | {pct(v['accuracy'])} ({pct(d['accuracy'])}) |")
    nj = report["no_judge"]
    lines += ["", f"## Without the judge (threshold {nj['threshold']}, its own): {nj['decision']}", "",
              "The judge's turns take this median share of an answer's time: "
              + ", ".join(f"{n} {pct(v)}" for n, v in nj["checks_share_p50"].items()) + ".", "",
              "| | fit (out of fold) | " + " | ".join(sets) + " |", "|---|---|" + "---|" * len(sets),
              f"| AUROC without the judge | {num(nj['auroc'].get('fit (out of fold)'))} | " + " | ".join(num(nj["auroc"].get(x)) for x in sets) + " |",
              "| wrong shown / right kept | | " + " | ".join(
                  f"{pct(nj['at_threshold'][x]['wrong_shown'])} / {pct(nj['at_threshold'][x]['right_kept'])}" for x in sets) + " |"]
    lines += ["", "## Each input's contribution: the stack refitted without it (dev AUROC)", "",
              "| without | fit | " + " | ".join(sets) + " |", "|---|---|" + "---|" * len(sets)]
    for row in report["ablation"]:
        lines.append(f"| {row['without']} | {num(row['fit'])} | " + " | ".join(num(row["auroc"].get(s)) for s in sets) + " |")
    if "learning" in report:
        lines += ["", "## Learning curves (dev AUROC)", "", "| fitting data | answers | " + " | ".join(sets) + " |",
                  "|---|---|" + "---|" * len(sets)]
        for row in report["learning"]["by_size"]:
            lines.append(f"| {row['share']:.0%} of all | {row['answers']} | " + " | ".join(num(row["auroc"].get(s)) for s in sets) + " |")
        for row in report["learning"]["by_kind"]:
            lines.append(f"| {row['kinds']} | {row['answers']} | " + " | ".join(num(row["auroc"].get(s)) for s in sets) + " |")
    lines += ["", "## The curve: wrong shown / right kept / refusal accuracy / accuracy at each threshold", "",
              "| threshold | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
    for row in report["sweep"]:
        lines.append(f"| {row['threshold']} | " + " | ".join(
            f"{pct(row[s]['wrong_shown'])} / {pct(row[s]['right_kept'])} / {pct(row[s]['refusal_accuracy'])} / {pct(row[s]['accuracy'])}"
            for s in sets) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
