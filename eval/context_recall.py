"""Context recall: how often the gold answer is inside what the model is shown. No model needed.

For each answerable gold question (yes/no answers skipped: they never appear verbatim), this
checks whether a gold answer (every item for list questions) occurs in

- the first k retrieved chunks, whole ("chunks"), and
- the sentences ``rag/answer/prompting.py`` selects from them for the prompt ("prompt").

The model cannot answer better than "prompt" allows, so this is the quick first test of any
change to retrieval or sentence selection; `rag eval` then measures the answers.

    .venv/bin/python -m eval.context_recall --gold eval/gold/seeds.jsonl --index-dir .rag/index
    .venv/bin/python -m eval.context_recall --gold eval/benchmarks/hotpotqa/gold.jsonl \
        --index-dir .rag/eval-index/<corpus index>
"""

from __future__ import annotations

import argparse
import statistics

from rag.answer.prompting import CONTEXT_WORDS, MAX_SENTENCES, select_sources
from rag.evaluate.metrics import is_correct, load_gold
from rag.search.index import Index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gold", required=True)
    parser.add_argument("--index-dir", required=True)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--budget", type=int, default=CONTEXT_WORDS, help="prompt words")
    parser.add_argument("--max-sentences", type=int, default=MAX_SENTENCES)
    parser.add_argument("--misses", action="store_true", help="list the questions the prompt misses")
    args = parser.parse_args()

    index = Index.open(args.index_dir, create=False)
    gold = [g for g in load_gold(args.gold) if g["answerable"] and g["answers"][0].lower() not in ("yes", "no")]
    in_chunks = in_prompt = 0
    words: list[int] = []
    for g in gold:
        hits = index.search(g["question"], k=args.k)
        sources = select_sources(g["question"], hits, index.embedder, args.budget, args.max_sentences)
        prompt = " ".join(s.text for s in sources)
        words.append(len(prompt.split()))
        in_chunks += is_correct(" ".join(h.text for h in hits), g)
        found = is_correct(prompt, g)
        in_prompt += found
        if args.misses and not found:
            print(f"miss {g['id']}: {g['question']}")
    n = len(gold)
    print(
        f"{args.gold}: {n} questions, k={args.k}, budget {args.budget} words: "
        f"answer in chunks {in_chunks}/{n} ({in_chunks / n:.2f}), in prompt {in_prompt}/{n} ({in_prompt / n:.2f}), "
        f"prompt words p50 {statistics.median(words):.0f}"
    )


if __name__ == "__main__":
    main()
