"""Questions in two parts ("who ..., and when?"): which line after the question?

``eval/gold/two_parts.jsonl``: 10 two-part questions written over the seeds for this (a dev set:
say so), each answered right only with both parts (``all``). Each is answered by the product's
model from the product's prompt, greedy, with three lines after the question:

- ``list``: the list questions' line (``SEVERAL_HINT``), which every two-part question got before;
- ``two-parts``: a line of its own (``TWO_PARTS_HINT``);
- ``none``: no line.

Figures: right (both parts), and runaways: replies that cite a source the prompt lacks or carry
more than six citation markers (the model writing "[3] [4] [5] ..." until the token limit).

    .venv/bin/python -m eval.experiments.two_parts      # writes eval/results/two_parts.{json,md}
"""

from __future__ import annotations

import json
import re
from typing import Any

from eval.common import ROOT, cpu_name, git
from rag.answer import prompting
from rag.answer.assistant import Assistant
from rag.evaluate.metrics import is_correct, load_gold
from rag.search.index import Index

VARIANTS = {"list": prompting.SEVERAL_HINT, "two-parts": prompting.TWO_PARTS_HINT, "none": ""}
RUNAWAY_MARKERS = 6


def runaway(text: str, sources: int) -> bool:
    cited = [int(n) for n in re.findall(r"\[(\d+)\]", text)]
    return len(cited) > RUNAWAY_MARKERS or any(n > sources for n in cited)


def main() -> None:
    assistant = Assistant(Index.open(ROOT / ".rag" / "index"))
    generator = assistant.load()
    prompting.SEVERAL_HINTS = True  # the product's prompts carry no such line (prompting.SEVERAL_HINTS)
    gold = load_gold(ROOT / "eval" / "gold" / "two_parts.jsonl")
    rows: list[dict[str, Any]] = []
    for g in gold:
        hits = assistant.retrieve(g["question"])
        for name, hint in VARIANTS.items():
            prompting.TWO_PARTS_HINT = hint
            prompt = assistant.prompt(g["question"], hits)
            text = "".join(generator.stream(list(prompt.messages), max_tokens=assistant.settings.max_tokens)).strip()
            rows.append({"id": g["id"], "variant": name, "right": is_correct(text, g),
                         "runaway": runaway(text, len(prompt.sources)), "answer": text})
            print(g["id"], name, rows[-1]["right"], rows[-1]["runaway"], text[:140], flush=True)
    summary = {name: {"right": sum(r["right"] for r in rows if r["variant"] == name),
                      "runaway": sum(r["runaway"] for r in rows if r["variant"] == name)} for name in VARIANTS}
    code = git("describe", "--always", "--dirty")
    out = ROOT / "eval" / "results" / "two_parts"
    out.with_suffix(".json").write_text(json.dumps({"code": code, "cpu": cpu_name(), "questions": len(gold),
                                                    "summary": summary, "rows": rows}, indent=1) + "\n")
    lines = [f"# Questions in two parts ({len(gold)} written over the seeds)", "",
             f"`python -m eval.experiments.two_parts` at {code}, {cpu_name()}.", "",
             "| line after the question | right (both parts) | runaway replies |", "|---|---|---|"]
    lines += [f"| {name} | {s['right']} of {len(gold)} | {s['runaway']} |" for name, s in summary.items()]
    lines += ["", "| question | variant | right | answer |", "|---|---|---|---|"]
    lines += [f"| {r['id']} | {r['variant']} | {r['right']} | {r['answer'][:200].replace('|', '/')} |" for r in rows]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:10]))


if __name__ == "__main__":
    main()
