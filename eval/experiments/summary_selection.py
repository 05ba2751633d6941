"""Which of a part's sentences should the model summarize: all, or those with the most facts?

The 1.5B summarizes the first sentences it is shown, and a news lead's first sentence is often its
vaguest: the Qatar-Belgium article's summary said "Qatar and Belgium discussed enhanced
cybersecurity collaboration" from a part whose next sentences name the minister, the city and the
day (eval/results/summaries.md: 1 of its 5 key facts). Each variant below summarizes the five seed
articles as ``Assistant.summarize_stream`` does, showing the model only the ``keep`` sentences of
each part with the most fact words (:func:`facts_in`: numbers and names), with the part sizes set
as named. Measured, not shipped: fewer sentences covered fewer key facts, not more
(eval/README.md, "Summaries"). Figures per variant: the key facts of ``eval/gold/summaries.jsonl``
covered (a dev set, chosen on: say so), the sentences the checks kept, the first sentence's time and
the whole summary's.

    .venv/bin/python -m eval.experiments.summary_selection     # writes eval/results/summary_selection.{json,md}

Run it alone on the machine: the model uses both cores.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

from eval.common import ROOT, cpu_name, git, read_jsonl
from eval.summaries import GOLD, covered
from rag.answer import assistant as answering
from rag.answer import summary as summaries
from rag.answer.assistant import Assistant
from rag.answer.summary import Summary
from rag.core.types import Document, Prompt, Span
from rag.search.index import Index

# name: (SALIENT, FIRST_PART_WORDS, PART_WORDS)
VARIANTS: dict[str, tuple[int | None, int, int]] = {
    "all sentences (150 / 450 words)": (None, 150, 450),
    "3 most salient": (3, 150, 450),
    "4 most salient": (4, 150, 450),
    "6 most salient": (6, 150, 450),
    "4 most salient, 600-word parts": (4, 150, 600),
}
OUT = ROOT / "eval" / "results" / "summary_selection"
NUMBER_WORDS = frozenset("one two three four five six seven eight nine ten eleven twelve twenty thirty forty fifty "
                         "hundred thousand million billion half first second third".split())


def facts_in(sentence: str) -> int:
    """How many distinct fact words ``sentence`` holds: numbers (in digits or words) and names (a
    capitalized word that does not open the sentence)."""
    words = re.findall(r"[\w’'-]+", sentence)
    return len({w for i, w in enumerate(words)
                if any(ch.isdigit() for ch in w) or w.lower() in NUMBER_WORDS or (i > 0 and w[0].isupper())})


def salient(sentences: Sequence[Span], keep: int | None) -> list[Span]:
    """The ``keep`` sentences with the most fact words (a tie goes to the earlier), in their order."""
    if keep is None or len(sentences) <= keep:
        return list(sentences)
    ranked = sorted(range(len(sentences)), key=lambda i: (-facts_in(sentences[i].text), i))
    return [sentences[i] for i in sorted(ranked[:keep])]


def run(assistant: Assistant, golds: list[dict[str, Any]]) -> dict[str, Any]:
    rows = []
    for gold in golds:
        summary = None
        for item in assistant.summarize_stream(gold["doc_id"]):
            if isinstance(item, Summary):
                summary = item
        assert summary is not None
        hits = covered(summary.text, gold["facts"])
        rows.append({"doc_id": gold["doc_id"], "facts": sum(hits), "of": len(hits), "kept": len(summary.sentences),
                     "written": len(summary.sentences) + len(summary.dropped),
                     "first_sentence_s": round(summary.timings["first_sentence_s"], 2),
                     "total_s": round(summary.timings["total_s"], 2),
                     "prompt_tokens": int(summary.timings["prompt_tokens"]), "summary": summary.text})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return {"facts": sum(r["facts"] for r in rows), "of": sum(r["of"] for r in rows),
            "kept": sum(r["kept"] for r in rows), "written": sum(r["written"] for r in rows),
            "first_max": max(r["first_sentence_s"] for r in rows),
            "total_median": statistics.median(r["total_s"] for r in rows), "total_max": max(r["total_s"] for r in rows),
            "prompt_tokens": sum(r["prompt_tokens"] for r in rows), "articles": rows}


def main() -> None:
    assistant = Assistant(Index.open(ROOT / ".rag" / "index", create=False))
    assistant.load()
    golds = list(read_jsonl(GOLD))
    results = {}
    shipped = (answering.part_prompt, summaries.FIRST_PART_WORDS, summaries.PART_WORDS)
    try:
        for name, (keep, first, words) in VARIANTS.items():
            def part_prompt(document: Document, sentences: Sequence[Span], keep: int | None = keep) -> Prompt:
                return summaries.summary_prompt(summaries.SUMMARY_TASK, summaries.sources_of(document, salient(sentences, keep)))

            answering.part_prompt, summaries.FIRST_PART_WORDS, summaries.PART_WORDS = part_prompt, first, words  # as the assistant calls it
            print(f"== {name}", file=sys.stderr, flush=True)
            results[name] = run(assistant, golds)
    finally:
        answering.part_prompt, summaries.FIRST_PART_WORDS, summaries.PART_WORDS = shipped
    report = {"command": "python -m eval.experiments.summary_selection", "code": git("describe", "--always", "--dirty"),
              "cpu": cpu_name(), "date": time.strftime("%Y-%m-%d %H:%M"), "variants": results}
    OUT.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    lines = ["# Summaries: all of a part's sentences, or the most salient", "",
             f"`{report['command']}` at {report['code']}, {report['date']}, {report['cpu']}; the five seed articles, "
             "key facts from eval/gold/summaries.jsonl (a dev set, chosen on).", "",
             "| variant | key facts | sentences kept / written | first sentence (max) | whole (median / max) | prompt tokens |",
             "|---|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['facts']} of {r['of']} | {r['kept']} / {r['written']} | {r['first_max']} s | "
                     f"{r['total_median']} / {r['total_max']} s | {r['prompt_tokens']} |")
    lines += ["", "## The summaries", ""]
    for name, r in results.items():
        lines += [f"### {name}", "", *[f"- {a['doc_id']} ({a['facts']} of {a['of']}): {a['summary']}" for a in r["articles"]], ""]
    OUT.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines[:len(VARIANTS) + 6]))


if __name__ == "__main__":
    main()
