"""Replay the conflict check (rag/answer/conflicts.py) on recorded `rag eval` answers, no model.

The false-conflict rate: on the ordinary dev sets the passages agree, so every question whose
answer claims a conflict is a false one. Every answer the model wrote counts, shown or withheld
(a withheld answer whose passages disagree is shown as the disagreement). Each record's prompt is
rebuilt (search and sentence selection, as the assistant builds it), its raw answer verified by
the word check (the judge is not replayed: it supports no more sentences than the word check
does here, so this errs towards more conflicts) and the conflicts found.

    .venv/bin/python -m eval.replay_conflicts eval/results/v33-hotpotqa/answers.jsonl --corpus eval/benchmarks/hotpotqa/corpus.jsonl

Prints the questions claiming a conflict (with the values) and their share of all questions.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from eval.common import read_jsonl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("answers", type=Path, nargs="+", help="answers.jsonl of rag eval runs")
    parser.add_argument("--corpus", type=Path, default=None, help="the run's --corpus (default: the default index)")
    args = parser.parse_args()
    from rag.answer import conflicts
    from rag.answer.assistant import Assistant
    from rag.answer.citations import is_refusal, verify
    from rag.evaluate.metrics import corpus_index_dir
    from rag.search.index import Index

    index = Index.open(corpus_index_dir(args.corpus) if args.corpus else None, create=False)
    assistant = Assistant(index)
    for path in args.answers:
        rows = read_jsonl(path)
        claimed, seconds = 0, []
        for r in rows:
            if not r.get("raw") or is_refusal(r["raw"]):
                continue
            prompt = assistant.prompt(r["question"], assistant.retrieve(r["question"]))
            text, sentences, citations = verify(r["raw"], prompt.sources, r["question"])
            started = time.perf_counter()
            found = conflicts.find(r["question"], text, sentences, citations, prompt.sources)
            seconds.append(time.perf_counter() - started)
            if found:
                claimed += 1
                print(f"  {r['id']}: {r['question']} -> {[[v.value for v in c.values] for c in found]}")
        ms = 1000 * statistics.median(seconds) if seconds else 0.0
        print(f"{path}: {claimed} of {len(rows)} questions claim a conflict ({100 * claimed / max(1, len(rows)):.1f}%); "
              f"the check took {ms:.1f} ms an answer (p50)")


if __name__ == "__main__":
    main()
