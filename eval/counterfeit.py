"""Conflicting sources: a true and a counterfeit passage both retrieved (issue 28).

A dev set built from public data, RGB's "counterfactual robustness" test in our setting: for
answerable questions of the SQuAD 2.0 fitting pool (``../shared/benchmarks/squad2-fit``) whose
answer is a date, a year, a number or a name found once in its gold paragraph, the paragraph is
copied with the answer replaced by another pool answer of the same kind, and both are indexed
with the rest of the question's article. Each question is answered as ``rag eval`` answers it
(qwen-1.5b, the judge on, the verifier) and sorted by what the reader is shown:

- ``counterfeit alone``: the changed value shown, the true one not (the failure to avoid);
- ``conflict stated``: both values shown (the answer's ``conflicts``, or the model gave both);
- ``true alone``, ``withheld`` (refused), ``neither`` (an answer with neither value).

Figures count the questions whose prompt held both passages' values (``both in prompt``).

    .venv/bin/python -m eval.counterfeit --limit 60     # eval/results/conflicts/counterfeit.{json,md}

Corpus, gold and answers stay in ``.rag/counterfeit/``; the summary is committed.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

from tqdm import tqdm

from eval.common import DEV_SETS, ROOT, read_jsonl
from rag.evaluate.metrics import load_gold
from rag.evaluate.metrics import normalize_answer as normalize

POOL = ROOT.parent / "shared" / "benchmarks" / "squad2-fit" / "gold.jsonl"
CORPUS = DEV_SETS["squad2"][1]
WORK = ROOT / ".rag" / "counterfeit"
OUT = ROOT / "eval" / "results" / "conflicts" / "counterfeit"
MONTH = re.compile(r"\b(January|February|March|April|May|June|July|August|September|October|November|December)\b")
YEAR = re.compile(r"^\d{4}$")
NAME_WORD = re.compile(r"^(?:[A-Z][\w'-]*|of|the|and|de|von)$")


def kind(answer: str) -> str | None:
    """The kind of value an answer is, or None when it is not a clear value."""
    if YEAR.match(answer):
        return "year"
    if MONTH.search(answer) and re.search(r"\d", answer):
        return "date"
    if re.fullmatch(r"[\d,.]+(?: (?:million|billion|percent|%))?", answer):
        return "number"
    words = answer.split()
    if 1 <= len(words) <= 4 and words[0][:1].isupper() and all(NAME_WORD.match(w) for w in words):
        return "name"
    return None


def candidates(seed: int) -> tuple[list[dict[str, Any]], dict[str, list[str]], random.Random]:
    """The pool's answerable one-paragraph questions in a shuffled order, every answer by its kind
    (the values a counterfeit draws from), and the random source that shuffled them."""
    pool = [g for g in load_gold(POOL) if g.get("answerable", True) and len(g.get("sources", [])) == 1]
    by_kind: dict[str, list[str]] = {}
    for g in pool:
        if (k := kind(g["answers"][0])) is not None:
            by_kind.setdefault(k, []).append(g["answers"][0])
    rng = random.Random(seed)
    rng.shuffle(pool)
    return pool, by_kind, rng


def build(limit: int, seed: int = 0) -> tuple[list[dict[str, Any]], Path]:
    """The questions (gold rows with a ``counterfeit`` value) and the corpus file of their
    articles plus the counterfeit copies."""
    paragraphs = {row["id"]: row for row in read_jsonl(CORPUS)}
    pool, by_kind, rng = candidates(seed)
    chosen, copies, used = [], {}, set()
    for g in pool:
        answer, source = g["answers"][0], g["sources"][0]
        text = paragraphs[source]["text"]
        k = kind(answer)
        if k is None or text.count(answer) != 1 or source in used:
            continue  # one question a paragraph: each copy changes one value
        # A name for a name of as many words ("Rollo" -> "Gaston"), a year for a year, ...
        options = [a for a in by_kind[k] if normalize(a) != normalize(answer) and a not in text
                   and (k != "name" or len(a.split()) == len(answer.split()))]
        if not options:
            continue
        fake = rng.choice(options)
        used.add(source)
        copies[source] = {**paragraphs[source], "id": f"{source}:copy", "text": text.replace(answer, fake)}
        chosen.append({**g, "counterfeit": fake, "kind": k})
        if len(chosen) == limit:
            break
    articles = {paragraphs[g["sources"][0]]["title"] for g in chosen}
    rows = [p for p in paragraphs.values() if p["title"] in articles] + list(copies.values())
    WORK.mkdir(parents=True, exist_ok=True)
    corpus = WORK / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    (WORK / "gold.jsonl").write_text("".join(json.dumps(g, ensure_ascii=False) + "\n" for g in chosen))
    return chosen, corpus


def outcome(shown: str, refused: bool, true: list[str], fake: str) -> str:
    if refused:
        return "withheld"
    text = normalize(shown)
    has_true = any(normalize(a) in text for a in true)
    has_fake = normalize(fake) in text
    return {(True, True): "conflict stated", (False, True): "counterfeit alone", (True, False): "true alone"}.get(
        (has_true, has_fake), "neither")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=60)
    args = parser.parse_args()
    from rag.answer.assistant import Assistant
    from rag.evaluate.metrics import corpus_index_dir
    from rag.search.index import Index

    gold, corpus = build(args.limit)
    index = Index.open(corpus_index_dir(corpus))
    index.add([corpus])
    assistant = Assistant(index)
    assistant.load()
    rows = []
    with (WORK / "answers.jsonl").open("w", encoding="utf-8") as sink:
        for g in tqdm(gold, desc="counterfeit", unit="question"):
            answer = assistant.ask(g["question"])
            sources = " ".join(s.text for s in answer.sources)
            both = any(normalize(a) in normalize(sources) for a in g["answers"]) and normalize(g["counterfeit"]) in normalize(sources)
            row = {"id": g["id"], "kind": g["kind"], "question": g["question"], "true": g["answers"], "counterfeit": g["counterfeit"],
                   "both_in_prompt": both, "outcome": outcome(answer.text, answer.refused, g["answers"], g["counterfeit"]),
                   "conflicts": len(answer.conflicts), "answer": answer.text, "raw": answer.raw,
                   "refusal_reason": answer.refusal_reason, "total_s": answer.timings.total_s,
                   "checks_s": answer.timings.checks_s}
            rows.append(row)
            sink.write(json.dumps(row, ensure_ascii=False) + "\n")
    both = [r for r in rows if r["both_in_prompt"]]
    counts = Counter(r["outcome"] for r in both)
    report = {"questions": len(rows), "both_in_prompt": len(both), "outcomes": dict(counts),
              "shares": {k: v / max(1, len(both)) for k, v in counts.items()},
              "raw_gave_both": sum(1 for r in both if r["raw"] and all(
                  any(normalize(a) in normalize(r["raw"]) for a in vals) for vals in (r["true"], [r["counterfeit"]]))),
              "kinds": dict(Counter(r["kind"] for r in both))}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    lines = [f"# A true and a counterfeit passage ({report['both_in_prompt']} of {report['questions']} questions with both in the prompt)\n",
             "| outcome | questions | share |", "|---|---|---|"]
    for name in ("counterfeit alone", "conflict stated", "true alone", "withheld", "neither"):
        lines.append(f"| {name} | {counts.get(name, 0)} | {100 * report['shares'].get(name, 0.0):.0f}% |")
    lines.append(f"\nThe model's own answer already gave both values in {report['raw_gave_both']} of them. Kinds: {report['kinds']}.")
    OUT.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(OUT.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
