"""Lists across articles: the question asked of each article's passages alone, the answers joined?

The 1.5B model often names two items of a list whatever the prompt holds ("Which countries has
Qatar signed cybersecurity agreements with?" -> "Qatar and Rwanda" with Belgian, Italian and
American passages in the prompt; eval/README.md, "Lists and two-part questions"). Here the
product's prompt for each seeds question that :func:`rag.answer.prompting.asks_for_several` flags
is answered two ways, greedy:

- ``one``: the product's prompt, as it is;
- ``by-article``: the same sources split by article (numbers kept), the question asked of each
  article's sources alone, and the answers that are not "I don't know" joined in the order of the
  sources.

The figure is the share answered right (every item of the gold list, :func:`is_correct`), the
prompt tokens evaluated per question and the wall time, beside the joined answers for reading (a
right list with wrong items beside it is not a win). Chosen on the seeds, a dev set: say so.
The issue's own question, which the gold set lacks, is answered too and printed.

    .venv/bin/python -m eval.experiments.list_each       # writes eval/results/list_each.{json,md}
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

from eval.common import ROOT, cpu_name, git
from rag.answer import prompting
from rag.answer.assistant import Assistant
from rag.answer.citations import is_refusal
from rag.core.types import Prompt
from rag.evaluate.metrics import is_correct, load_gold
from rag.search import hops
from rag.search.index import Index

ISSUE_QUESTION = "Which countries has Qatar signed cybersecurity agreements with?"


def by_article(prompt: Prompt, labels: prompting.Labels) -> list[Prompt]:
    """``prompt``'s sources split by article, in order of first appearance, one prompt each."""
    groups: dict[str, list[Any]] = {}
    for source in prompt.sources:
        groups.setdefault(source.hit.doc_id, []).append(source)
    return [prompting.build_prompt(prompt.question, tuple(sources), labels) for sources in groups.values()]


def main() -> None:
    assistant = Assistant(Index.open(ROOT / ".rag" / "index"))
    generator = assistant.load()
    gold = [g for g in load_gold(ROOT / "eval" / "gold" / "seeds.jsonl")
            if g.get("answers") and prompting.asks_for_several(g["question"])]
    gold.append({"id": "issue", "question": ISSUE_QUESTION, "answers": []})
    rows: list[dict[str, Any]] = []

    def write(prompt: Prompt) -> tuple[str, int]:
        text = "".join(generator.stream(list(prompt.messages), max_tokens=assistant.settings.max_tokens)).strip()
        stats = generator.stats  # type: ignore[attr-defined]
        return text, stats.prompt_tokens - stats.cached_tokens

    for g in gold:
        hits = assistant.retrieve(g["question"])
        second = hops.follow(assistant.index, g["question"], hits)
        prompt = assistant.prompt(g["question"], [*hits, *second], hops_from=len(hits) if second else None)
        started = time.perf_counter()
        text, evaluated = write(prompt)
        rows.append({"id": g["id"], "variant": "one", "answer": text, "evaluated_tokens": evaluated,
                     "seconds": round(time.perf_counter() - started, 2)})
        started = time.perf_counter()
        parts, evaluated = [], 0
        for part in by_article(prompt, assistant.source_labels):
            answer, tokens = write(part)
            evaluated += tokens
            if answer and not is_refusal(answer):
                parts.append(answer)
        rows.append({"id": g["id"], "variant": "by-article", "answer": " ".join(parts), "evaluated_tokens": evaluated,
                     "seconds": round(time.perf_counter() - started, 2)})
        for row in rows[-2:]:
            row["right"] = is_correct(row["answer"], g) if g["answers"] else None
            print(g["id"], row["variant"], row["right"], row["seconds"], row["answer"][:200], flush=True)
    graded = [r for r in rows if r["right"] is not None]
    summary = {name: {"right": sum(bool(r["right"]) for r in graded if r["variant"] == name),
                      "evaluated_tokens_p50": statistics.median(r["evaluated_tokens"] for r in graded if r["variant"] == name),
                      "seconds_p50": statistics.median(r["seconds"] for r in graded if r["variant"] == name)}
               for name in ("one", "by-article")}
    code = git("describe", "--always", "--dirty")
    out = ROOT / "eval" / "results" / "list_each"
    n = len(gold) - 1
    out.with_suffix(".json").write_text(json.dumps({"code": code, "cpu": cpu_name(), "questions": n, "summary": summary,
                                                    "rows": rows}, indent=1) + "\n")
    lines = [f"# Lists across articles ({n} seeds questions, and the issue's)", "",
             f"`python -m eval.experiments.list_each` at {code}, {cpu_name()}.", "",
             "| variant | right | prompt tokens evaluated p50 | seconds p50 |", "|---|---|---|---|"]
    lines += [f"| {name} | {s['right']} of {n} | {s['evaluated_tokens_p50']:.0f} | {s['seconds_p50']:.2f} |"
              for name, s in summary.items()]
    lines += ["", "| question | variant | right | answer |", "|---|---|---|---|"]
    lines += [f"| {r['id']} | {r['variant']} | {r['right']} | {r['answer'].replace('|', '/')} |" for r in rows]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
