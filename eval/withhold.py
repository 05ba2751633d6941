"""Make an unanswerable half of HotpotQA: withhold the gold paragraphs of every other question.

HotpotQA's distractor setting gives each question two gold paragraphs and eight distractors on
the same topic. Removing a question's gold paragraphs from the corpus leaves its distractors:
the answer is then in no passage, but passages about the same people and places are, which is
the situation where a small model answers with a cited near-miss. The questions whose gold
paragraphs stay are the answerable half.

    python -m eval.withhold   # writes eval/benchmarks/hotpotqa-withheld/{corpus,gold}.jsonl

Odd-numbered questions (in file order) lose their gold paragraphs, unless a paragraph is also gold
for a kept question: such a question is dropped, since it may still be answerable.
"""

from __future__ import annotations

import json

from eval.common import BENCHMARKS, read_jsonl

SOURCE = BENCHMARKS / "hotpotqa"
TARGET = BENCHMARKS / "hotpotqa-withheld"


def main() -> None:
    gold = read_jsonl(SOURCE / "gold.jsonl")
    corpus = read_jsonl(SOURCE / "corpus.jsonl")
    kept = [row for i, row in enumerate(gold) if i % 2 == 0]
    needed = {doc for row in kept for doc in row["sources"]}
    withheld, rows = set(), []
    for i, row in enumerate(gold):
        if i % 2 == 0:
            rows.append(row)
        elif not set(row["sources"]) & needed:
            withheld |= set(row["sources"])
            rows.append({**row, "answerable": False, "answers": [], "sources": [],
                         "withheld_answers": row["answers"], "withheld_sources": row["sources"]})
    TARGET.mkdir(parents=True, exist_ok=True)
    with (TARGET / "corpus.jsonl").open("w", encoding="utf-8") as out:
        for doc in corpus:
            if doc["id"] not in withheld:
                out.write(json.dumps(doc, ensure_ascii=False) + "\n")
    with (TARGET / "gold.jsonl").open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    unanswerable = sum(not r["answerable"] for r in rows)
    print(f"{len(rows)} questions ({len(rows) - unanswerable} answerable, {unanswerable} unanswerable); "
          f"{len(corpus) - len(withheld)} of {len(corpus)} paragraphs kept")


if __name__ == "__main__":
    main()
