"""Decided: the probe verifier (hidden states at the prompt's end and the answer's last token, stacked with the trust signals) over the signals alone and the cross-encoder (issue 33); refitted since by eval/verifier_fit.py.

Compare verifier candidates fitted on the SQuAD 2.0 pool, scored on the dev sets (issue 33).
The record of that choice: it reads the data layout of issue 33's collection (the first 900 pool
questions, six layers) and is not meant to be rerun; eval/verifier_fit.py fits the product's
verifiers today.

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

    .venv/bin/python -m eval.verifier_fit     # writes eval/results/verifier/candidates.{json,md}

``--write`` fits the product's verifier instead (:func:`product`): the trust signals and the
lexical checks, on the whole pool and ``pool-withheld`` (the pool's answerable questions asked
without their own paragraphs, when collected), with the threshold that keeps 90% of the pool's right answers
(out of fold); it writes ``rag/answer/verifier.json`` and the curves on every set to
``eval/results/verifier/verifier.{json,md}``:

    .venv/bin/python -m eval.verifier_fit --write

``--write-probe`` fits the probe verifier (:func:`product_probe`): the same inputs plus the
log-odds of one hidden-state probe at the prompt's end and one at the answer's last token (the
layer of each chosen by cross-validation on the fitting answers; the stack fitted on their
out-of-fold log-odds), with its threshold chosen the same way; it writes
``rag/answer/verifier-probe.json`` and ``eval/results/verifier/probe.{json,md}``:

    .venv/bin/python -m eval.verifier_fit --write-probe
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eval.common import ROOT, auroc, git, read_jsonl  # auroc: the same AUROC as the trust calibration
from rag.answer.trust import FEATURES, Signals, features
from rag.answer.trust import inputs as trust_inputs
from rag.answer.verifier import LEXICAL, Verifier
from rag.answer.verifier import lexical as verifier_lexical

# scikit-learn 1.8 announces changes to LogisticRegressionCV's defaults on every fit; the
# arguments used here behave the same before and after them.
warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")

DATA = ROOT / ".rag" / "verifier"
DEV = ("seeds", "hotpotqa", "withheld", "squad2", "seeds-withheld")
LABELS = ("right", "in_prompt")


def load(name: str, folder: Path = DATA) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """A set's records and, per moment, an array (questions x layers x width); rows without a
    moment are NaN."""
    path = folder / name
    records = read_jsonl(path / "records.jsonl")
    add_quotes(name, records, folder)
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


def lexical(r: dict[str, Any]) -> list[float]:
    """rag.answer.verifier's cheap signals for an answer record (its quotes added by :func:`add_quotes`)."""
    first = (r.get("retrieved") or [{}])[0]
    relevance = ((r.get("trust") or {}).get("signals") or {}).get("relevance", 0.0)
    return verifier_lexical(r["question"], r.get("raw") or "", r.get("quotes", []), first, relevance)


def add_quotes(name: str, records: list[dict[str, Any]], folder: Path) -> None:
    """Give each record the quotes its answer cites by shared words (rag.answer.verifier.quotes): the
    records of withheld answers keep no citations. The prompt is rebuilt (search and sentence
    selection, no generator) and the result cached in ``<set>/quotes.json``."""
    cache_path = folder / name / "quotes.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    missing = {r["id"]: r for r in records if r["id"] not in cache}
    if missing:
        from verifier_collect import SETS, load_gold, open_index, parts

        from rag.answer.assistant import Assistant
        from rag.answer.verifier import quotes

        gold_path, corpus = SETS[name]
        for rows, where in parts(name, load_gold(gold_path), corpus):
            todo = [missing[str(g["id"])] for g in rows if str(g["id"]) in missing]
            if not todo:
                continue
            assistant = Assistant(open_index(where, rows))
            for r in todo:
                raw = r.get("raw") or ""
                if not raw:
                    cache[r["id"]] = []
                    continue
                prompt = assistant.prompt(r["question"], assistant.retrieve(r["question"]))
                cache[r["id"]] = quotes(raw, prompt.sources, r["question"])
        cache_path.write_text(json.dumps(cache))
    for r in records:
        r["quotes"] = cache[r["id"]]


def fit(x: np.ndarray, y: np.ndarray, c: float | None = None) -> Any:
    """Standardised logistic regression; L2 strength by 3-fold cross-validation unless ``c`` is given."""
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if c is None:
        head: Any = LogisticRegressionCV(Cs=np.logspace(-4, 0, 5).tolist(), cv=3, scoring="roc_auc", max_iter=500)
    else:
        head = LogisticRegression(C=c, max_iter=500)
    return make_pipeline(StandardScaler(), head).fit(x, y)


def strength(model: Any) -> float:
    return float(model[-1].C_[0]) if hasattr(model[-1], "C_") else float(model[-1].C)


def inputs(kind: str, records: list[dict[str, Any]], states: dict[str, np.ndarray], layer_at: int) -> np.ndarray | None:
    if kind == "signals":
        rows = [signals(r) for r in records]
        return np.array([x if x is not None else [np.nan] * 3 for x in rows], dtype=np.float64)
    if kind == "lexical":
        return np.array([lexical(r) for r in records], dtype=np.float64)
    if kind == "signals+lexical":
        a, b = inputs("signals", records, states, 0), inputs("lexical", records, states, 0)
        return np.hstack([a, b])  # type: ignore[list-item]
    if kind == "trust":
        return np.array([[(r.get("trust") or {}).get("score", np.nan) or np.nan] for r in records], dtype=np.float64)
    if kind == "moments":  # the three moments at one layer, side by side
        parts = [states[m][:, layer_at, :] for m in ("prompt", "answer", "judge") if m in states]
        return np.hstack(parts).astype(np.float64) if len(parts) == 3 else None
    moment = kind
    if moment not in states:
        return None
    if layer_at == -1:  # every collected layer, side by side
        return states[moment].reshape(len(records), -1).astype(np.float64)
    return states[moment][:, layer_at, :].astype(np.float64)


def usable(kind: str, records: list[dict[str, Any]], states: dict[str, np.ndarray], at: int, target: str
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Inputs, labels and the mask of rows that have both, for one candidate and label."""
    x = inputs(kind, records, states, at)
    if x is None:
        return None
    y = np.array([label(r, target) for r in records], dtype=object)
    keep = np.array([v is not None for v in y]) & ~np.isnan(x).any(axis=1)
    return x, np.array([bool(v) for v in y]), keep


def out_of_fold(x: np.ndarray, y: np.ndarray, c: float, folds: int = 5) -> np.ndarray:
    """Each pool row's probability from a probe fitted on the other folds, at strength ``c`` (for
    honest stacking and a threshold chosen on the pool)."""
    from sklearn.model_selection import StratifiedKFold

    out = np.zeros(len(y))
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=0).split(x, y):
        out[test] = fit(x[train], y[train], c).predict_proba(x[test])[:, 1]
    return out


def figures(rows: list[dict[str, Any]], shown: np.ndarray) -> dict[str, float]:
    """With ``shown`` answers shown: the share of all questions with a wrong answer shown, the
    share of the model's right answers shown, and refusal accuracy (unanswerable questions not
    answered)."""
    right = np.array([bool(r["candidate_correct"]) and answered(r) for r in rows])
    unanswerable = np.array([not r["answerable"] for r in rows])
    return {"wrong_shown": float((shown & ~right).mean()),
            "right_kept": float((shown & right).sum() / max(1, right.sum())),
            "refusal_accuracy": float((~shown & unanswerable).sum() / max(1, unanswerable.sum()))}


def operating(scores: dict[str, np.ndarray], records: dict[str, list[dict[str, Any]]], threshold: float
              ) -> dict[str, dict[str, float]]:
    """Per set, :func:`figures` with answers shown when the model answered and the score reaches ``threshold``."""
    return {name: figures(rows, np.array([answered(r) for r in rows]) & (scores[name] >= threshold))
            for name, rows in records.items()}


def today(records: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Per set, :func:`figures` for the decisions the product made (the recorded ``refused``)."""
    return {name: figures(rows, np.array([not r["refused"] for r in rows])) for name, rows in records.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=ROOT / "eval" / "results" / "verifier" / "candidates")
    parser.add_argument("--write", action="store_true", help="fit the product's verifier and write rag/answer/verifier.json")
    parser.add_argument("--write-probe", action="store_true", help="fit the probe verifier and write rag/answer/verifier-probe.json")
    args = parser.parse_args()
    pool, pool_states = load("pool", args.data)
    dev = {name: load(name, args.data) for name in DEV if (args.data / name / "records.jsonl").exists()}
    if args.write_probe:
        fitting, fitting_states = pool, pool_states
        if (args.data / "pool-withheld" / "records.jsonl").exists():
            more, more_states = load("pool-withheld", args.data)
            clean = np.array([not r.get("withheld_in_prompt") for r in more])
            fitting = pool + [r for r, ok in zip(more, clean) if ok]
            fitting_states = {m: np.concatenate([pool_states[m], more_states[m][clean]]) for m in pool_states}
        product_probe(fitting, fitting_states, dev, args.out.with_name("probe"))
        return
    if args.write:
        fitting = pool
        if (args.data / "pool-withheld" / "records.jsonl").exists():
            # The pool's answerable questions asked without their own paragraphs; a question whose
            # answer still reached the prompt from another paragraph is not a clean "unanswerable".
            fitting = pool + [r for r in load("pool-withheld", args.data)[0] if not r.get("withheld_in_prompt")]
        product(fitting, {name: records for name, (records, _) in dev.items()}, args.out.with_name("verifier"))
        return
    sets = {"pool": (pool, pool_states), **dev}
    layers = [int(v) for v in np.load(next((args.data / "pool" / "states").glob("*.npz")))["layers"]]
    candidates = [("trust", None), ("signals", None), ("lexical", None), ("signals+lexical", None)]
    candidates += [(m, i) for m in ("prompt", "answer", "judge") for i in range(len(layers))]
    candidates += [("prompt", -1), ("answer", -1), ("judge", -1)]
    candidates += [("moments", layers.index(layer)) for layer in (14, 18, 22) if layer in layers]
    rows: list[dict[str, Any]] = []
    oof: dict[tuple[str, str], np.ndarray] = {}  # (label, input) -> pool out-of-fold probabilities
    for target in LABELS:
        for kind, at in candidates:
            got = usable(kind, pool, pool_states, at or 0, target)
            if got is None:
                continue
            x, y, keep = got
            name = kind if at is None else f"{kind} all layers" if at == -1 else f"{kind} L{layers[at]}"
            started = time.perf_counter()
            row: dict[str, Any] = {"label": target, "input": name, "fit_n": int(keep.sum()), "auroc": {}, "n": {}}
            if kind == "trust":
                model = None
            else:
                model = fit(x[keep], y[keep])
                if kind != "signals+lexical":
                    oof[(target, name)] = np.full(len(pool), np.nan)
                    oof[(target, name)][keep] = out_of_fold(x[keep], y[keep], strength(model))
                    row["auroc"]["pool_cv"] = round(auroc(oof[(target, name)][keep], y[keep]) or 0, 3)
            row["fit_s"] = round(time.perf_counter() - started, 1)
            for set_name, (records, states) in sets.items():
                if set_name == "pool":
                    continue
                got = usable(kind, records, states, at or 0, target)
                assert got is not None
                xd, yd, k = got
                if not k.any():
                    continue
                score = xd[k, 0] if model is None else model.predict_proba(xd[k])[:, 1]
                value = auroc(score, yd[k])
                row["auroc"][set_name] = None if value is None else round(value, 3)
                row["n"][set_name] = int(k.sum())
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    report = {"pool_questions": len(pool), "layers": layers, "candidates": rows}
    report.update(stack(pool, pool_states, dev, oof, layers))
    report["learning_curve"] = learning_curve(pool, pool_states, dev, report["stack_inputs"], layers)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    write_markdown(report, ["pool_cv", *dev], args.out.with_suffix(".md"))
    print(args.out.with_suffix(".md").read_text())


def best(oof: dict[tuple[str, str], np.ndarray], pool: list[dict[str, Any]], target: str, moment: str) -> str | None:
    """The layer of ``moment`` whose probe has the best cross-validated AUROC on the pool."""
    y = np.array([label(r, target) for r in pool], dtype=object)
    scored = []
    for (t, name), p in oof.items():
        if t == target and name.startswith(moment + " L"):
            k = ~np.isnan(p) & np.array([v is not None for v in y])
            scored.append((auroc(p[k], y[k].astype(bool)) or 0, name))
    return max(scored)[1] if scored else None


def stack(pool: list[dict[str, Any]], pool_states: dict[str, np.ndarray], dev: dict[str, Any],
          oof: dict[tuple[str, str], np.ndarray], layers: list[int]) -> dict[str, Any]:
    """The final candidate: one logistic regression over the signals, the lexical checks and the
    best probe of each moment (by pool cross-validation), the probes' pool inputs out of fold."""
    chosen = [name for moment in ("prompt", "answer", "judge") if (name := best(oof, pool, "right", moment))]

    def probe_inputs(records: list[dict[str, Any]], states: dict[str, np.ndarray], pool_rows: bool) -> np.ndarray:
        columns = [inputs("signals+lexical", records, states, 0)]
        for name in chosen:
            if pool_rows:
                columns.append(oof[("right", name)][:, None])
            else:
                moment, layer = name.split(" L")
                x = inputs(moment, records, states, layers.index(int(layer)))
                assert x is not None
                p = np.full(len(records), np.nan)
                ok = ~np.isnan(x).any(axis=1)
                p[ok] = probes[name].predict_proba(x[ok])[:, 1]
                columns.append(p[:, None])
        return np.hstack(columns)  # type: ignore[arg-type]

    probes = {}
    for name in chosen:
        moment, layer = name.split(" L")
        got = usable(moment, pool, pool_states, layers.index(int(layer)), "right")
        assert got is not None
        x, y, keep = got
        probes[name] = fit(x[keep], y[keep])
    x = probe_inputs(pool, pool_states, True)
    y = np.array([label(r, "right") for r in pool], dtype=object)
    keep = np.array([v is not None for v in y]) & ~np.isnan(x).any(axis=1)
    model = fit(x[keep], y[keep].astype(bool))
    pool_scores = np.zeros(len(pool))
    pool_scores[keep] = out_of_fold(x[keep], y[keep].astype(bool), strength(model))
    # The threshold, from the pool's out-of-fold scores: keep 90% of the right answers.
    right = np.array([bool(v) for v in y]) & keep
    threshold = float(np.quantile(pool_scores[right], 0.10)) if right.any() else 0.5
    scores, aurocs = {"pool": pool_scores}, {"pool_cv": auroc(pool_scores[keep], y[keep].astype(bool))}
    for name, (records, states) in dev.items():
        xd = probe_inputs(records, states, False)
        ok = ~np.isnan(xd).any(axis=1)
        sd = np.zeros(len(records))
        sd[ok] = model.predict_proba(xd[ok])[:, 1]
        scores[name] = sd
        yd = np.array([label(r, "right") for r in records], dtype=object)
        k = ok & np.array([v is not None for v in yd])
        aurocs[name] = auroc(sd[k], yd[k].astype(bool))
    records = {"pool": pool, **{n: r for n, (r, _) in dev.items()}}
    sweep = [{"threshold": round(float(t), 3), **{n: v for n, v in operating(scores, records, float(t)).items()}}
             for t in np.linspace(0.02, 0.98, 49)]
    return {"stack_inputs": chosen, "stack_auroc": {k: None if v is None else round(v, 3) for k, v in aurocs.items()},
            "threshold": round(threshold, 3), "at_threshold": operating(scores, records, threshold),
            "today": today(records), "sweep": sweep}


def learning_curve(pool: list[dict[str, Any]], pool_states: dict[str, np.ndarray], dev: dict[str, Any],
                   chosen: list[str], layers: list[int]) -> list[dict[str, Any]]:
    """Dev AUROC of each chosen probe fitted on growing random shares of the pool (3 draws each)."""
    rng = np.random.default_rng(0)
    out = []
    for name in chosen:
        moment, layer = name.split(" L")
        at = layers.index(int(layer))
        got = usable(moment, pool, pool_states, at, "right")
        assert got is not None
        x, y, keep = got
        rows = np.flatnonzero(keep)
        c = strength(fit(x[keep], y[keep]))  # the strength chosen on the whole pool, kept for each size
        for n in sorted({50, 100, 200, 400, 800, 1600, len(rows)}):
            if n > len(rows):
                continue
            values: dict[str, list[float]] = {}
            for _ in range(3 if n < len(rows) else 1):
                pick = rng.choice(rows, n, replace=False)
                if y[pick].all() or not y[pick].any():
                    continue
                model = fit(x[pick], y[pick], c)
                for set_name, (records, states) in dev.items():
                    got_d = usable(moment, records, states, at, "right")
                    assert got_d is not None
                    xd, yd, k = got_d
                    value = auroc(model.predict_proba(xd[k])[:, 1], yd[k])
                    if value is not None:
                        values.setdefault(set_name, []).append(value)
            out.append({"input": name, "n": n, "auroc": {k: round(float(np.mean(v)), 3) for k, v in values.items()}})
    return out


def values(r: dict[str, Any]) -> dict[str, float]:
    """The product's verifier inputs for an answer record, by name (rag.answer.trust.inputs)."""
    s = (r.get("trust") or {}).get("signals") or {}
    kept = {k: s.get(k) for k in ("answer_probability", "confidence", "support")}
    return trust_inputs(Signals(s.get("relevance", 0.0), **kept, lexical=tuple(lexical(r))))


def blocked(r: dict[str, Any]) -> bool:
    """Withheld whatever the score: no supported sentence, or a lexical rule fired (rag.answer.trust.assess)."""
    trust = r.get("trust") or {}
    return bool(trust.get("flags")) or trust.get("reason") == "no sentence of the answer is supported by the sources"


# The product's inputs: those whose scale does not depend on the corpus (the model's own
# probabilities, shares of what the question names, the answer's length). The retrieval scores of
# LEXICAL are left out: BM25 and the fused score change scale with the corpus, and with them the
# pool's cross-validated AUROC rose by 0.005 only (eval/README.md, "The product's verifier").
PRODUCT_INPUTS = (*FEATURES, "question words quoted", "question names quoted", "question numbers quoted", "answer words")


def fit_verifier(x: np.ndarray, y: np.ndarray, names: Sequence[str], source: str, probes: tuple[Any, ...] = ()
                 ) -> tuple[Verifier, np.ndarray]:
    """The product's logistic model over ``names`` (columns of ``x``), fitted on the rows with a
    label in ``y`` (None: the model wrote no answer) and every input; the threshold keeps 90% of
    the right answers out of fold. Returns it with the out-of-fold probabilities (NaN where unfitted)."""
    from rag.core.bundled import BUNDLED
    from rag.search.embedding import MINILM_NAME as EMBEDDER

    keep = np.array([v is not None for v in y]) & ~np.isnan(x).any(axis=1)
    yk = y[keep].astype(bool)
    model = fit(x[keep], yk)
    oof = np.full(len(x), np.nan)
    oof[keep] = out_of_fold(x[keep], yk, strength(model))
    threshold = float(np.quantile(oof[keep][yk], 0.10))
    commit = git("rev-parse", "--short", "HEAD")
    scaler, head = model[0], model[-1]
    verifier = Verifier(
        inputs=tuple(names), mean=tuple(map(float, scaler.mean_)), scale=tuple(map(float, scaler.scale_)),
        weights=tuple(map(float, head.coef_[0])), bias=float(head.intercept_[0]), threshold=round(threshold, 4),
        generator="qwen-1.5b", generator_sha256=BUNDLED["qwen-1.5b"].sha256, embedder=EMBEDDER,
        fitted_on=f"{int(keep.sum())} answers of {source}, data of commit {commit}), C={strength(model):g}",
        probes=probes,
    )
    return verifier, oof


def product(pool: list[dict[str, Any]], dev: dict[str, list[dict[str, Any]]], out: Path,
            names: tuple[str, ...] = PRODUCT_INPUTS) -> Verifier:
    """Fit the product's verifier on the pool's answers (:data:`PRODUCT_INPUTS`), choose its
    threshold from the pool's out-of-fold curve, write it to ``rag/answer/verifier.json`` and its
    curves (AUROC, and per threshold: wrong shown, right kept, refusal accuracy on every set)."""


    def matrix(records: list[dict[str, Any]]) -> np.ndarray:
        rows = [values(r) for r in records]
        return np.array([[row.get(n, np.nan) for n in names] for row in rows], dtype=np.float64)

    y = np.array([label(r, "right") for r in pool], dtype=object)
    verifier, oof = fit_verifier(matrix(pool), y, names, "../shared/benchmarks/squad2-fit (eval/verifier_fit.py --write")
    verifier.save()
    records = {"fit": pool, **dev}
    scores = {"fit": np.nan_to_num(oof, nan=-1.0)}
    for name, rows in dev.items():
        scores[name] = np.array([-1.0 if (p := verifier.probability(values(r))) is None else p for r in rows])
    aurocs = {}
    for name, rows in records.items():
        yd = np.array([label(r, "right") for r in rows], dtype=object)
        k = np.array([v is not None for v in yd]) & (scores[name] >= 0)
        aurocs[name] = auroc(scores[name][k], yd[k].astype(bool))

    def decisions(t: float) -> dict[str, dict[str, float]]:
        return {name: figures(rows, np.array([answered(r) and not blocked(r) for r in rows]) & (scores[name] >= t))
                for name, rows in records.items()}

    rules: dict[str, dict[str, list[int]]] = {}  # rule -> set -> [right, wrong] it withholds among those the score shows
    for name, rows in records.items():
        for r, value in zip(rows, scores[name]):
            if answered(r) and value >= verifier.threshold:
                for flag in (r.get("trust") or {}).get("flags", []):
                    rules.setdefault(flag, {}).setdefault(name, [0, 0])[0 if r["candidate_correct"] else 1] += 1
    report = {"verifier": verifier.__dict__, "pool_answers": int(keep.sum()), "auroc": aurocs, "rules": rules,
              "cost": cost(verifier, dev.get("seeds", [])),
              "threshold": verifier.threshold, "at_threshold": decisions(verifier.threshold), "today": today(records),
              "sweep": [{"threshold": round(float(t), 2), **decisions(float(t))} for t in np.linspace(0.05, 0.95, 19)]}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    pct = lambda v: f"{100 * v:.0f}%"  # noqa: E731
    sets = list(records)
    lines = [f"# The product's verifier (rag/answer/verifier.json), fitted on {report['pool_answers']} pool answers\n",
             f"Inputs: {', '.join(names)}. `fit`: the fitting answers, out of fold (5 folds); the other sets are never fitted on.\n",
             "| | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets),
             "| AUROC right/wrong | " + " | ".join("-" if aurocs[s] is None else f"{aurocs[s]:.3f}" for s in sets) + " |",
             f"\nAt the threshold {verifier.threshold} (keeps 90% of the pool's right answers), against today's decisions:\n",
             "| set | wrong shown (today) | right kept (today) | refusal accuracy (today) |", "|---|---|---|---|"]
    for name, v in report["at_threshold"].items():
        t = report["today"][name]
        lines.append(f"| {name} | {pct(v['wrong_shown'])} ({pct(t['wrong_shown'])}) | {pct(v['right_kept'])} "
                     f"({pct(t['right_kept'])}) | {pct(v['refusal_accuracy'])} ({pct(t['refusal_accuracy'])}) |")
    for rule, counts in rules.items():
        lines.append(f"\nThe rule `{rule}` withholds, among the answers the score shows (right / wrong): "
                     + ", ".join(f"{n} {c[0]} / {c[1]}" for n, c in counts.items()) + ".")
    if report["cost"]:
        c = report["cost"]
        lines.append(f"\nCost on the seeds' answers: {c['verifier_ms_p50']} ms an answer (p50: the quotes by shared words, "
                     f"the lexical checks, the score) against {c['answer_s_p50']} s for the whole answer (p50, as collected); "
                     f"the judge's checks add {pct(c['checks_over_answer_p50'])} to an answer without them (p50).")
    lines += [f"\nAn early refusal on {prompt_probe.name} alone (before any answer token), below log-odds "
              f"{report['early']['log_odds_below']} (loses 1% of the fitting answers' right ones, out of fold): "
              "right answers lost / wrong answers caught: "
              + "; ".join(f"{n} {pct(v['right_lost'])} / {pct(v['wrong_caught'])}" for n, v in early.items()) + "."]
    lines += ["\n## The curve: wrong shown / right kept / refusal accuracy at each threshold\n",
              "| threshold | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
    for row in report["sweep"]:
        cells = [f"{pct(row[s]['wrong_shown'])} / {pct(row[s]['right_kept'])} / {pct(row[s]['refusal_accuracy'])}" for s in sets]
        lines.append(f"| {row['threshold']} | " + " | ".join(cells) + " |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(out.with_suffix(".md").read_text())
    return verifier


PROBE_MOMENTS = ("prompt", "answer")  # the moments the product's generator keeps (GenerationStats.hidden)


def fold(model: Any) -> tuple[np.ndarray, float]:
    """A standardised logistic pipeline as one direction and bias on the raw state (rag.answer.verifier.Probe)."""
    scaler, head = model[0], model[-1]
    weights = head.coef_[0] / scaler.scale_
    return weights, float(head.intercept_[0] - np.dot(weights, scaler.mean_))


def product_probe(fitting: list[dict[str, Any]], states: dict[str, np.ndarray],
                  dev: dict[str, tuple[list[dict[str, Any]], dict[str, np.ndarray]]], out: Path) -> Verifier:
    """Fit the probe verifier: :data:`PRODUCT_INPUTS` and, for each of :data:`PROBE_MOMENTS`, the
    log-odds of a probe at the layer whose probe cross-validates best on the fitting answers (its
    fitting inputs out of fold, so the stack learns how far to trust it on answers it did not see);
    the threshold keeps 90% of the fitting answers' right ones (out of fold). Writes
    ``rag/answer/verifier-probe.json`` and the curves on every set beside those of ``rag/answer/verifier.json``."""

    from rag.answer.verifier import FILE, PROBE_FILE, Probe

    layers = [int(v) for v in np.load(next((DATA / "pool" / "states").glob("*.npz")))["layers"]]
    y_all = np.array([label(r, "right") for r in fitting], dtype=object)
    answered_rows = np.array([v is not None for v in y_all])
    probes: list[Any] = []
    oof_log_odds: dict[str, np.ndarray] = {}
    choice: dict[str, dict[str, Any]] = {}
    for moment in PROBE_MOMENTS:
        scored = []
        for at, layer in enumerate(layers):
            x = states[moment][:, at, :].astype(np.float64)
            keep = answered_rows & ~np.isnan(x).any(axis=1)
            y = y_all[keep].astype(bool)
            model = fit(x[keep], y)
            oof = np.full(len(fitting), np.nan)
            oof[keep] = logit(out_of_fold(x[keep], y, strength(model)))
            scored.append((auroc(oof[keep], y) or 0.0, layer, model, oof))
            print(f"probe {moment} L{layer}: out-of-fold AUROC {scored[-1][0]:.3f}", file=sys.stderr, flush=True)
        value, layer, model, oof = max(scored, key=lambda t: t[0])
        weights, bias = fold(model)
        probe = Probe(moment, layer, tuple(float(f"{w:.6g}") for w in weights), float(f"{bias:.6g}"))
        probes.append(probe)
        oof_log_odds[probe.name] = oof
        choice[probe.name] = {"pool_cv": round(value, 3), "by_layer": {f"L{at_layer}": round(a, 3) for a, at_layer, _, _ in scored},
                              "C": strength(model)}
    names = (*PRODUCT_INPUTS, *(p.name for p in probes))

    def matrix(records: list[dict[str, Any]], probe_values: dict[str, np.ndarray]) -> np.ndarray:
        rows = [values(r) for r in records]
        return np.array([[row.get(n, probe_values[n][i] if n in probe_values else np.nan) for n in names]
                         for i, row in enumerate(rows)], dtype=np.float64)

    def probe_values(records: list[dict[str, Any]], set_states: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out_values = {}
        for probe in probes:
            x = set_states.get(probe.moment)
            column = np.full(len(records), np.nan)
            if x is not None:
                at = layers.index(probe.layer)
                ok = ~np.isnan(x[:, at, :]).any(axis=1)
                column[ok] = [probe.log_odds(row) for row in x[ok, at, :].astype(np.float64)]
            out_values[probe.name] = column
        return out_values

    verifier, oof = fit_verifier(matrix(fitting, oof_log_odds), y_all, names,
                                 "../shared/benchmarks/squad2-fit and its withheld variant (eval/verifier_fit.py --write-probe",
                                 tuple(probes))
    verifier.save(PROBE_FILE)
    plain = Verifier.load(FILE)
    records = {"fit": fitting, **{n: r for n, (r, _) in dev.items()}}
    scores: dict[str, dict[str, np.ndarray]] = {"probes": {"fit": np.nan_to_num(oof, nan=-1.0)}, "plain": {}}
    for name, rows in records.items():
        given = probe_values(rows, states if name == "fit" else dev[name][1])
        if name != "fit":
            xd = matrix(rows, given)
            scores["probes"][name] = np.array([-1.0 if np.isnan(v).any() else verifier.probability(dict(zip(names, v))) or -1.0
                                               for v in xd])
        scores["plain"][name] = np.array([-1.0 if (p := plain.probability(values(r))) is None else p for r in rows])
    aurocs: dict[str, dict[str, float | None]] = {}
    for kind, by_set in scores.items():
        for name, rows in records.items():
            yd = np.array([label(r, "right") for r in rows], dtype=object)
            k = np.array([v is not None for v in yd]) & (by_set[name] >= 0)
            aurocs.setdefault(kind, {})[name] = auroc(by_set[name][k], yd[k].astype(bool))

    def decisions(kind: str, t: float) -> dict[str, dict[str, float]]:
        return {name: figures(rows, np.array([answered(r) and not blocked(r) for r in rows]) & (scores[kind][name] >= t))
                for name, rows in records.items()}

    # An early refusal would act on the prompt probe alone, before any answer token: at the
    # threshold that loses 1% of the fitting answers' right ones (out of fold), what it catches.
    prompt_probe = next(p for p in probes if p.moment == "prompt")
    early_oof = oof_log_odds[prompt_probe.name]
    fit_right = answered_rows & ~np.isnan(early_oof) & (y_all == True)  # noqa: E712
    early_at = float(np.quantile(early_oof[fit_right], 0.01))
    early: dict[str, dict[str, float]] = {}
    for name, rows in records.items():
        column = early_oof if name == "fit" else probe_values(rows, dev[name][1])[prompt_probe.name]
        right = np.array([label(r, "right") is True for r in rows]) & ~np.isnan(column)
        wrong = np.array([label(r, "right") is False for r in rows]) & ~np.isnan(column)
        refused = column < early_at
        early[name] = {"right_lost": float((refused & right).sum() / max(1, right.sum())),
                       "wrong_caught": float((refused & wrong).sum() / max(1, wrong.sum()))}

    report = {"verifier": {**verifier.__dict__, "probes": [{"name": p.name} for p in probes]}, "probe_choice": choice,
              "early": {"probe": prompt_probe.name, "log_odds_below": round(early_at, 3), "by_set": early},
              "fit_answers": int(keep.sum()), "auroc": aurocs, "threshold": verifier.threshold,
              "at_threshold": decisions("probes", verifier.threshold),
              "plain_at_threshold": decisions("plain", plain.threshold), "plain_threshold": plain.threshold,
              "sweep": [{"threshold": round(float(t), 2), **decisions("probes", float(t))} for t in np.linspace(0.05, 0.95, 19)]}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    pct = lambda v: f"{100 * v:.0f}%"  # noqa: E731
    sets = list(records)
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    lines = [f"# The probe verifier (rag/answer/verifier-probe.json), fitted on {report['fit_answers']} answers\n",
             f"Inputs: {', '.join(names)}. `fit`: the fitting answers, out of fold (5 folds); the other sets are never fitted on.\n",
             "Probe layers by out-of-fold AUROC on the fitting answers: "
             + "; ".join(f"{n}: " + ", ".join(f"{k} {v}" for k, v in c["by_layer"].items()) for n, c in choice.items()) + ".\n",
             "| AUROC right/wrong | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets),
             "| rag/answer/verifier-probe.json | " + " | ".join(fmt(aurocs["probes"][s]) for s in sets) + " |",
             "| rag/answer/verifier.json (no probes) | " + " | ".join(fmt(aurocs["plain"][s]) for s in sets) + " |",
             f"\nAt the threshold {verifier.threshold} (keeps 90% of the fitting answers' right ones, out of fold), "
             f"against rag/answer/verifier.json at its own threshold {plain.threshold}:\n",
             "| set | wrong shown (no probes) | right kept (no probes) | refusal accuracy (no probes) |", "|---|---|---|---|"]
    for name, v in report["at_threshold"].items():
        t = report["plain_at_threshold"][name]
        lines.append(f"| {name} | {pct(v['wrong_shown'])} ({pct(t['wrong_shown'])}) | {pct(v['right_kept'])} "
                     f"({pct(t['right_kept'])}) | {pct(v['refusal_accuracy'])} ({pct(t['refusal_accuracy'])}) |")
    lines += [f"\nAn early refusal on {prompt_probe.name} alone (before any answer token), below log-odds "
              f"{report['early']['log_odds_below']} (loses 1% of the fitting answers' right ones, out of fold): "
              "right answers lost / wrong answers caught: "
              + "; ".join(f"{n} {pct(v['right_lost'])} / {pct(v['wrong_caught'])}" for n, v in early.items()) + "."]
    lines += ["\n## The curve: wrong shown / right kept / refusal accuracy at each threshold\n",
              "| threshold | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
    for row in report["sweep"]:
        cells = [f"{pct(row[s]['wrong_shown'])} / {pct(row[s]['right_kept'])} / {pct(row[s]['refusal_accuracy'])}" for s in sets]
        lines.append(f"| {row['threshold']} | " + " | ".join(cells) + " |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(out.with_suffix(".md").read_text())
    return verifier


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def cost(verifier: Verifier, records: list[dict[str, Any]]) -> dict[str, float] | None:
    """What the verifier adds to an answer, timed on recorded answers: its quotes by shared words,
    the lexical checks and the score (the prompt rebuilt beforehand, as the product has it)."""
    from eval.verifier_collect import SETS, open_index
    from rag.answer.assistant import Assistant
    from rag.answer.verifier import quotes

    answers = [r for r in records if r.get("raw")]
    if not answers:
        return None
    assistant = Assistant(open_index(SETS["seeds"][1]))
    times = []
    for r in answers:
        hits = assistant.retrieve(r["question"])
        prompt = assistant.prompt(r["question"], hits)
        started = time.perf_counter()
        found = quotes(r["raw"], prompt.sources, r["question"])
        words = verifier_lexical(r["question"], r["raw"], found, {"score": hits[0].score, **hits[0].scores}, 0.5)
        verifier.probability({**values(r), **dict(zip(LEXICAL, words))})
        times.append(time.perf_counter() - started)
    return {"verifier_ms_p50": round(1000 * float(np.median(times)), 2), "answers": len(answers),
            "answer_s_p50": round(float(np.median([r["timings"]["total_s"] for r in answers])), 2),
            # the judge's checks against the answer without them: what the 25% budget is measured on
            "checks_over_answer_p50": round(float(np.median([r["timings"].get("checks_s", 0.0) / max(1e-9, r["timings"]["total_s"] - r["timings"].get("checks_s", 0.0)) for r in answers])), 3)}


def write_markdown(report: dict[str, Any], sets: list[str], path: Path) -> None:
    pct = lambda v: f"{100 * v:.0f}%"  # noqa: E731
    lines = [f"# Verifier candidates (fitted on {report['pool_questions']} pool questions)\n",
             "AUROC; `pool_cv` is 5-fold cross-validation on the pool, the others are dev sets never fitted on.\n",
             "| label | input | fit n | " + " | ".join(sets) + " |", "|---|---|---|" + "---|" * len(sets)]
    for row in report["candidates"]:
        cells = [str(row["auroc"].get(s, "-")) for s in sets]
        lines.append(f"| {row['label']} | {row['input']} | {row['fit_n']} | " + " | ".join(cells) + " |")
    lines += ["", f"## Stack: signals + lexical + {', '.join(report['stack_inputs'])}", "",
              "| | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets),
              "| AUROC right/wrong | " + " | ".join(str(report["stack_auroc"].get(s, "-")) for s in sets) + " |", "",
              f"Threshold {report['threshold']} (keeps 90% of the right answers on the pool, out of fold):", "",
              "| set | wrong shown (today) | right kept (today) | refusal accuracy (today) |", "|---|---|---|---|"]
    for name, v in report["at_threshold"].items():
        t = report["today"][name]
        lines.append(f"| {name} | {pct(v['wrong_shown'])} ({pct(t['wrong_shown'])}) | {pct(v['right_kept'])} "
                     f"({pct(t['right_kept'])}) | {pct(v['refusal_accuracy'])} ({pct(t['refusal_accuracy'])}) |")
    lines += ["", "## Learning curve (mean dev AUROC of the probe alone, 3 draws per size)", "",
              "| input | pool answers | " + " | ".join(sets[1:]) + " |", "|---|---|" + "---|" * (len(sets) - 1)]
    for row in report["learning_curve"]:
        lines.append(f"| {row['input']} | {row['n']} | " + " | ".join(str(row["auroc"].get(s, "-")) for s in sets[1:]) + " |")
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
