"""Decided: the judge and score stay: fewer wrong answers shown off the seeds (SQuAD 0.47 against 0.59).

What the semantic checks buy: replay a `rag eval` run's answers through the word check alone.

Generation is greedy and the checks run after it, so a run with the judge off writes the same
answers; only the decision differs. This re-runs retrieval and the checker without the judge (no
model) on the model's recorded answers and compares the decisions with the recorded ones:

    .venv/bin/python -m eval.experiments.replay_checks eval/results/final-squad2/answers.jsonl \
        --corpus eval/benchmarks/squad2/corpus.jsonl

(no `--corpus` for the seeds: the default index). Prints accuracy, false refusals and refusal
accuracy both ways, and the answers whose decision changed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from eval.common import read_jsonl
from rag.answer.assistant import Assistant
from rag.answer.citations import is_refusal, verify
from rag.answer.trust import Signals, assess
from rag.evaluate.metrics import corpus_index_dir
from rag.search.index import Index, default_index_dir


def figures(rows: list[dict], shown: list[bool]) -> dict[str, float | None]:
    answerable = [(r, s) for r, s in zip(rows, shown) if r["answerable"]]
    unanswerable = [s for r, s in zip(rows, shown) if not r["answerable"]]
    return {
        "accuracy": sum(s and r["candidate_correct"] for r, s in answerable) / len(answerable) if answerable else None,
        "false_refusals": sum(not s for _, s in answerable) / len(answerable) if answerable else None,
        "refusal_accuracy": sum(not s for s in unanswerable) / len(unanswerable) if unanswerable else None,
        "wrong_shown": sum(s and not r["candidate_correct"] for r, s in zip(rows, shown)) / len(rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("answers", type=Path)
    parser.add_argument("--corpus", type=Path, default=None)
    args = parser.parse_args()
    index = Index.open(corpus_index_dir(args.corpus) if args.corpus else default_index_dir(), create=False)
    assistant = Assistant(index)
    rows = read_jsonl(args.answers)
    judged, lexical = [], []
    for r in rows:
        judged.append(not r["refused"])
        raw, reason = r.get("raw") or "", r.get("refusal_reason") or ""
        if not raw or is_refusal(raw) or reason == "no relevant passage":
            lexical.append(False)
            continue
        hits = assistant.retrieve(r["question"])
        prompt = assistant.prompt(r["question"], hits)
        text, sentences, citations = verify(raw, prompt.sources, r["question"])
        relevance = max((h.scores.get("dense", 0.0) for h in hits), default=0.0)
        lexical.append(assess(r["question"], text, sentences, citations, Signals(relevance)).shown)
        if lexical[-1] != judged[-1]:
            print(f"{r['id']}: {'right' if r['candidate_correct'] else 'wrong'} answer {raw[:60]!r} "
                  f"shown by the {'judge' if judged[-1] else 'word check'} only")
    for name, shown in (("judge and score", judged), ("word check only", lexical)):
        f = figures(rows, shown)
        print(f"{name}: " + ", ".join(f"{k} {'-' if v is None else f'{v:.2f}'}" for k, v in f.items()))


if __name__ == "__main__":
    main()
