"""What running the model in its own process costs per answer (rag/generate/process.py).

The same seeds questions are answered, with the checks, by an :class:`~rag.answer.assistant.Assistant`
whose llama.cpp generator is in its own process (``in-process``, as ``rag ask`` runs it) and by
one whose generator is a supervised child (``child``, as ``rag serve`` runs it). Each setting
runs in a fresh Python process that loads the model (timed: the cold cost) and answers every
question once; the settings alternate, process after process, so a change in the machine's load
falls on both. Per answer: the time to the first token and the total (search, generation,
checks), compared by their medians over the same questions.

    .venv/bin/python -m eval.engine_cost          # writes eval/results/engine_cost.{json,md}
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from eval.common import ROOT, SEEDS, SEEDS_GOLD, cpu_name, read_jsonl

# One process: open the assistant, load the model (timed), answer each question; one JSON line each.
CHILD = """
import json, sys, time
started = time.perf_counter()
from rag.answer.assistant import Assistant
from rag.generate.base import GenerationSettings
index, process, questions = sys.argv[1], sys.argv[2] == "child", json.loads(sys.argv[3])
assistant = Assistant.open(index, settings=GenerationSettings(process=process))
assistant.load()
print(json.dumps({"load_s": time.perf_counter() - started}), flush=True)
for question in questions:
    answer = assistant.ask(question)
    t = answer.timings
    print(json.dumps({"question": question, "first_token_s": t.first_token_s, "total_s": t.total_s,
                      "prompt_tokens": answer.tokens.prompt if answer.tokens else 0,
                      "refused": answer.refused, "text": answer.text}), flush=True)
"""
SETTINGS = ("in-process", "child")


def run(setting: str, index: Path, questions: list[str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(index), setting, json.dumps(questions)],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{setting} failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return {"load_s": lines[0]["load_s"], "answers": lines[1:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=10, help="answerable seeds questions per process")
    parser.add_argument("--rounds", type=int, default=4, help="processes per setting, alternating")
    parser.add_argument("--out", type=Path, default=ROOT / "eval" / "results" / "engine_cost")
    args = parser.parse_args()
    gold = read_jsonl(SEEDS_GOLD)
    questions = [q["question"] for q in gold if q.get("answerable", True)][: args.questions]
    load_before = os.getloadavg()[0]
    results: dict[str, list[dict[str, Any]]] = {s: [] for s in SETTINGS}
    with tempfile.TemporaryDirectory() as work:
        from rag.search.index import Index

        index = Path(work) / "seeds-index"
        Index.open(index).add([SEEDS])
        for round_ in range(args.rounds):
            for setting in SETTINGS if round_ % 2 == 0 else SETTINGS[::-1]:
                results[setting].append(run(setting, index, questions))
                print(f"round {round_ + 1} {setting}: load {results[setting][-1]['load_s']:.1f} s", file=sys.stderr)
    cpu = cpu_name()
    summary: dict[str, Any] = {
        "cpu": cpu, "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M"), "questions": len(questions),
        "rounds": args.rounds, "load_average_before": load_before, "load_average_after": os.getloadavg()[0],
        "settings": {},
    }
    for setting, runs in results.items():
        answers = [a for r in runs for a in r["answers"]]
        summary["settings"][setting] = {
            "answers": len(answers),
            "first_token_s": statistics.median(a["first_token_s"] for a in answers if a["first_token_s"] is not None),
            "total_s": statistics.median(a["total_s"] for a in answers),
            "prompt_tokens": statistics.median(a["prompt_tokens"] for a in answers),
            "load_s": statistics.median(r["load_s"] for r in runs),
            "refused": sum(a["refused"] for a in answers),
        }
    # The same text from both engines: the boundary must not change what is answered.
    texts = {s: [a["text"] for r in results[s] for a in r["answers"]] for s in SETTINGS}
    summary["same_answers"] = sum(a == b for a, b in zip(texts["in-process"], texts["child"], strict=True))
    inside, child = summary["settings"]["in-process"], summary["settings"]["child"]
    summary["ratios"] = {key: child[key] / inside[key] for key in ("first_token_s", "total_s", "load_s")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    rows = ["| engine | answers | first token p50 s | total p50 s | prompt tokens p50 | load s (cold) | refused |",
            "|---|---|---|---|---|---|---|"]
    for setting, s in summary["settings"].items():
        rows.append(f"| {setting} | {s['answers']} | {s['first_token_s']:.3f} | {s['total_s']:.3f} | "
                    f"{s['prompt_tokens']:.0f} | {s['load_s']:.2f} | {s['refused']} |")
    r = summary["ratios"]
    args.out.with_suffix(".md").write_text(
        f"# The model in its own process: cost per answer\n\nCommand: `python -m eval.engine_cost` ({summary['date']}, "
        f"CPU {cpu}, {summary['cores']} cores, {len(questions)} seeds questions x {args.rounds} processes per "
        f"setting, alternating; load average {load_before:.2f} before, {summary['load_average_after']:.2f} after).\n\n"
        + "\n".join(rows) + "\n\n"
        f"Child against in-process: first token x{r['first_token_s']:.3f}, total x{r['total_s']:.3f}, "
        f"cold load x{r['load_s']:.2f}; identical answer text in {summary['same_answers']} of "
        f"{len(texts['child'])}.\n"
    )
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
