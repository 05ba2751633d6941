"""Replay the conflict check (rag/conflicts.py) on recorded `rag eval` answers, no model.

The false-conflict rate: on the ordinary dev sets the passages agree, so every shown answer
that claims a conflict is a false one. Each record's prompt is rebuilt (search and sentence
selection, as the assistant builds it), its raw answer verified by the word check (the judge is
not replayed: it can only move a citation, not the sentences compared) and the conflicts found.

    .venv/bin/python eval/replay_conflicts.py eval/results/v33-hotpotqa/answers.jsonl --corpus eval/benchmarks/hotpotqa/corpus.jsonl

Prints the shown answers, those claiming a conflict (with the values), and the share.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("answers", type=Path, nargs="+", help="answers.jsonl of rag eval runs")
    parser.add_argument("--corpus", type=Path, default=None, help="the run's --corpus (default: the default index)")
    args = parser.parse_args()
    from rag import conflicts
    from rag.answering import Assistant
    from rag.citations import verify
    from rag.evaluation import corpus_index_dir
    from rag.index import Index

    index = Index.open(corpus_index_dir(args.corpus) if args.corpus else None, create=False)
    assistant = Assistant(index)
    for path in args.answers:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        shown = claimed = 0
        for r in rows:
            if r.get("refused") or not r.get("raw"):
                continue
            shown += 1
            prompt = assistant.prompt(r["question"], assistant.retrieve(r["question"]))
            text, sentences, citations = verify(r["raw"], prompt.sources, r["question"])
            found = conflicts.find(r["question"], text, sentences, citations, prompt.sources)
            if found:
                claimed += 1
                print(f"  {r['id']}: {r['question']} -> {[[v.value for v in c.values] for c in found]}")
        print(f"{path}: {claimed} of {shown} shown answers claim a conflict ({100 * claimed / max(1, shown):.1f}%)")


if __name__ == "__main__":
    main()
