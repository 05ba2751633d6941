"""Lists and two-part questions: which prompt gathers every part?

The seeds gold set's questions that :func:`rag.answer.prompting.asks_for_several` flags (lists such
as "which two countries ...", two-part questions), each answered by the product's model from the
product's prompt, greedy, under three variants:

- ``hint``: the product before this experiment: the first round's passages plus the second hop,
  with ``SEVERAL_HINT`` after the question;
- ``hint+gather``: the same, plus the best passage of each article the first round missed
  (:func:`gather`, up to three, from a search three times as deep);
- ``asks+gather``: the same passages, with a hint that says the question asks for several.

The figure is the share answered right (every item of the gold list, :func:`is_correct`), with the
prompt's tokens. Chosen on the seeds (a dev set: the fitting pools hold no list questions with
every item marked): say so wherever it is quoted.

    .venv/bin/python -m eval.experiments.list_hint          # writes eval/results/list_hint.{json,md}

Decided (eval/README.md, "Lists and two-part questions"): neither ships. On the 10 questions at
130a32f (2-core Xeon, a verifier collection running beside it): hint 6 right, hint+gather 4,
asks+gather 6, for 76-82 more prompt tokens; each variant won questions the others lost (gathered
passages crowd out the sentence that held the list), so the product kept ``hint`` without gather.
Later measured end to end, through the verifier, against no line at all: the hint cost the seeds 4
right answers shown, and no line ships (``prompting.SEVERAL_HINTS``; eval/README.md).
"""

from __future__ import annotations

import json
import statistics
from typing import Any

from eval.common import ROOT, git
from rag.answer import prompting
from rag.answer.assistant import Assistant
from rag.core.types import Hit
from rag.evaluate.metrics import is_correct, load_gold
from rag.search import hops
from rag.search.index import Index

ASKS = "(The question asks for several: give all of them that the sources name, not only the first, each with its source.)"
WIDER, MOST = 3, 3


def gather(index: Index, question: str, first: list[Hit]) -> list[Hit]:
    """The best passage of each document that none of ``first`` comes from, in the order of a search
    ``WIDER`` times as deep as ``first``, up to ``MOST``."""
    have = {hit.doc_id for hit in first}
    out: list[Hit] = []
    for hit in index.search(question, k=max(len(first), 1) * WIDER):
        if len(out) < MOST and hit.doc_id not in have:
            have.add(hit.doc_id)
            out.append(hit)
    return out


VARIANTS = {"hint": (prompting.SEVERAL_HINT, False), "hint+gather": (prompting.SEVERAL_HINT, True),
            "asks+gather": (ASKS, True)}


def main() -> None:
    assistant = Assistant(Index.open(ROOT / ".rag" / "index"))
    generator = assistant.load()
    prompting.SEVERAL_HINTS = True  # the product's prompts carry no such line (prompting.SEVERAL_HINTS)
    gold = [g for g in load_gold(ROOT / "eval" / "gold" / "seeds.jsonl")
            if g.get("answers") and prompting.asks_for_several(g["question"])]
    rows: list[dict[str, Any]] = []
    for g in gold:
        hits = assistant.retrieve(g["question"])
        second = hops.follow(assistant.index, g["question"], hits)
        for name, (hint, gathers) in VARIANTS.items():
            extra = second + (gather(assistant.index, g["question"], [*hits, *second]) if gathers else [])
            prompting.SEVERAL_HINT = hint
            prompt = assistant.prompt(g["question"], [*hits, *extra], hops_from=len(hits) if extra else None)
            text = "".join(generator.stream(list(prompt.messages), max_tokens=assistant.settings.max_tokens)).strip()
            tokens = generator.stats.prompt_tokens if generator.stats else None  # type: ignore[attr-defined]
            rows.append({"id": g["id"], "variant": name, "right": is_correct(text, g), "answer": text, "prompt_tokens": tokens})
            print(g["id"], name, rows[-1]["right"], text[:120], flush=True)
    summary = {name: {"right": sum(r["right"] for r in rows if r["variant"] == name),
                      "prompt_tokens_p50": statistics.median(r["prompt_tokens"] or 0 for r in rows if r["variant"] == name)}
               for name in VARIANTS}
    code = git("describe", "--always", "--dirty")
    out = ROOT / "eval" / "results" / "list_hint"
    out.with_suffix(".json").write_text(json.dumps({"code": code, "questions": len(gold), "summary": summary, "rows": rows}, indent=1))
    lines = [f"# Lists and two-part questions ({len(gold)} seeds questions)", "",
             f"`python -m eval.experiments.list_hint` at {code}.", "",
             "| variant | right | prompt tokens p50 |", "|---|---|---|"]
    lines += [f"| {name} | {s['right']} of {len(gold)} | {s['prompt_tokens_p50']:.0f} |" for name, s in summary.items()]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
