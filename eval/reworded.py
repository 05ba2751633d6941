"""Conflicting sources in other words: a true passage and a counterfeit that says it differently (issue 46).

``eval/counterfeit.py`` copies a passage with one value changed, so the two differ in one short
place. Here the counterfeit is written differently: for answerable questions of the SQuAD 2.0
fitting pool whose answer is a date, a year, a number or a name found once in its paragraph, the
sentence holding the answer is reworded by the bundled model ("Rewrite this sentence in other
words ..."; kept only when the rewording still holds the answer as written and no longer differs
from the sentence in one short place, :func:`rag.answer.conflicts.difference`), the answer in it
replaced by another pool answer of the same kind, and the result indexed as a short report of its
own ("According to a later report, ...") beside the question's article. Each question is then
answered as ``rag eval`` answers it and sorted by what the reader is shown (as in
``eval/counterfeit.py``): ``counterfeit alone`` (the failure to avoid), ``conflict stated``,
``true alone``, ``withheld``, ``neither``; figures count the questions whose prompt held both values.

    .venv/bin/python -m eval.reworded --limit 60     # eval/results/conflicts/reworded.{json,md}

Rewordings, corpus, gold and answers stay in ``.rag/reworded/``; the summary is committed.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from tqdm import tqdm

from eval.common import ROOT, read_jsonl
from eval.counterfeit import CORPUS, candidates, kind, outcome
from rag.evaluate.metrics import normalize_answer as normalize

WORK = ROOT / ".rag" / "reworded"
OUT = ROOT / "eval" / "results" / "conflicts" / "reworded"
REWORD = ("Rewrite this sentence in other words, in a different order, keeping every fact, name and number "
          "exactly as written. Reply with the new sentence only.\n\n{sentence}")


def sentence_with(text: str, answer: str) -> str | None:
    """The sentence of ``text`` that holds ``answer``."""
    from rag.ingest.chunking import split_sentences

    return next((text[a:b] for a, b in split_sentences(text) if answer in text[a:b]), None)


def reword(generator: Any, sentence: str) -> str:
    reply = "".join(generator.stream([{"role": "user", "content": REWORD.format(sentence=sentence)}], max_tokens=120))
    return re.sub(r"\s+", " ", reply).strip().strip('"')


def build(limit: int, generator: Any, seed: int = 0) -> tuple[list[dict[str, Any]], Path]:
    """The questions (gold rows with a ``counterfeit`` value and its reworded report) and the corpus
    of their articles plus the reports; rewordings are cached in ``.rag/reworded/rewordings.json``."""
    from rag.answer.conflicts import difference

    WORK.mkdir(parents=True, exist_ok=True)
    cache_path = WORK / "rewordings.json"
    cache: dict[str, str] = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    paragraphs = {row["id"]: row for row in read_jsonl(CORPUS)}
    pool, by_kind, rng = candidates(seed)
    chosen, reports, used = [], [], set()
    for g in tqdm(pool, desc="rewording", unit="question"):
        answer, source = g["answers"][0], g["sources"][0]
        text = paragraphs[source]["text"]
        k = kind(answer)
        if k is None or text.count(answer) != 1 or source in used:
            continue
        sentence = sentence_with(text, answer)
        if sentence is None:
            continue
        if sentence not in cache:
            cache[sentence] = reword(generator, sentence)
            cache_path.write_text(json.dumps(cache, ensure_ascii=False))
        reworded = cache[sentence]
        if answer not in reworded or reworded.count(answer) != 1 or difference(sentence, reworded) is not None:
            continue  # the value was lost, or the rewording is the sentence with one short place changed
        options = [a for a in by_kind[k] if normalize(a) != normalize(answer) and a not in text and a not in reworded
                   and (k != "name" or len(a.split()) == len(answer.split()))]
        if not options:
            continue
        fake = rng.choice(options)
        used.add(source)
        report = f"According to a later report, {reworded.replace(answer, fake)}"
        reports.append({"id": f"{source}:reworded", "title": paragraphs[source]["title"], "text": report})
        chosen.append({**g, "counterfeit": fake, "kind": k, "sentence": sentence, "report": report})
        if len(chosen) == limit:
            break
    articles = {paragraphs[g["sources"][0]]["title"] for g in chosen}
    rows = [p for p in paragraphs.values() if p["title"] in articles] + reports
    corpus = WORK / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    (WORK / "gold.jsonl").write_text("".join(json.dumps(g, ensure_ascii=False) + "\n" for g in chosen))
    return chosen, corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=60)
    args = parser.parse_args()
    from rag.answer.assistant import Assistant
    from rag.evaluate.metrics import corpus_index_dir
    from rag.search.index import Index

    assistant = Assistant(Index.open(ROOT / ".rag" / "index", create=False))
    generator = assistant.load()
    gold, corpus = build(args.limit, generator)
    index = Index.open(corpus_index_dir(corpus))
    index.add([corpus])
    assistant = Assistant(index, generator=generator)
    rows = []
    with (WORK / "answers.jsonl").open("w", encoding="utf-8") as sink:
        for g in tqdm(gold, desc="reworded", unit="question"):
            answer = assistant.ask(g["question"])
            sources = normalize(" ".join(s.text for s in answer.sources))
            both = any(normalize(a) in sources for a in g["answers"]) and normalize(g["counterfeit"]) in sources
            row = {"id": g["id"], "kind": g["kind"], "question": g["question"], "true": g["answers"],
                   "counterfeit": g["counterfeit"], "both_in_prompt": both,
                   "outcome": outcome(answer.text, answer.refused, g["answers"], g["counterfeit"]),
                   "conflicts": len(answer.conflicts), "answer": answer.text, "raw": answer.raw,
                   "refusal_reason": answer.refusal_reason, "report": g["report"], "sentence": g["sentence"]}
            rows.append(row)
            sink.write(json.dumps(row, ensure_ascii=False) + "\n")
    both = [r for r in rows if r["both_in_prompt"]]
    counts = Counter(r["outcome"] for r in both)
    by_kind = {k: dict(Counter(r["outcome"] for r in both if r["kind"] == k)) for k in sorted({r["kind"] for r in both})}
    report = {"command": f"python -m eval.reworded --limit {args.limit}", "questions": len(rows), "both_in_prompt": len(both),
              "outcomes": dict(counts), "shares": {k: v / max(1, len(both)) for k, v in counts.items()}, "by_kind": by_kind,
              "counterfeit_alone_anywhere": sum(r["outcome"] == "counterfeit alone" for r in rows),
              # a disagreement stated with another value than the counterfeit's: the value of something else
              "misplaced": sum(r["conflicts"] > 0 and r["outcome"] != "conflict stated" for r in rows)}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    lines = [f"# A true passage and a reworded counterfeit ({report['both_in_prompt']} of {report['questions']} questions "
             "with both values in the prompt)\n", f"`{report['command']}`\n", "| outcome | questions | share |", "|---|---|---|"]
    for name in ("counterfeit alone", "conflict stated", "true alone", "withheld", "neither"):
        lines.append(f"| {name} | {counts.get(name, 0)} | {100 * report['shares'].get(name, 0.0):.0f}% |")
    lines.append(f"\nBy kind of value (questions with both in the prompt): {by_kind}. The counterfeit value alone was "
                 f"shown for {report['counterfeit_alone_anywhere']} of all {len(rows)} questions; a disagreement was stated "
                 f"with another value than the counterfeit's (the value of something else) for {report['misplaced']}.")
    OUT.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(OUT.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
