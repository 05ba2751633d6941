"""The e2e section: time to first token and total time of ``Assistant`` on the seeds gold questions."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from eval.bench_sections.measure import load_note, log, sec, seeds_index, summary, timed
from eval.common import SEEDS_GOLD, read_jsonl


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from rag.answer.assistant import Assistant
    from rag.generate.base import GenerationSettings
    from rag.search.index import Index

    gold = read_jsonl(SEEDS_GOLD)[: args.questions]
    out: dict[str, Any] = {"questions": len(gold), "threads": args.threads, "models": []}
    index = Index.open(seeds_index(work), create=False)
    for name in args.models:
        assistant = Assistant(index, model=name, settings=GenerationSettings(threads=args.threads))
        load_s, _ = timed(assistant.load)
        ttft, total, retrieve, refused_early = [], [], [], 0
        for q in gold:
            answer = assistant.ask(q["question"])
            t = answer.timings
            total.append(t.total_s)
            retrieve.append(t.retrieve_s)
            if t.first_token_s is None:
                refused_early += 1
            else:
                ttft.append(t.first_token_s)
        row = {"model": name, "load_s": load_s, "first_token": summary(ttft) if ttft else None,
               "total": summary(total), "retrieve": summary(retrieve), "refused_before_generation": refused_early}
        out["models"].append(row)
        log(f"e2e {name}: {row}")
        assistant.generator = None
    return out


def render(s: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    lines += [f"## End to end ({load_note(s)})", "",
              f"`Assistant.ask` on the first {s['questions']} seeds gold questions (hybrid, k=4, {s['threads']} "
              "threads), model loaded first; seconds p50 / p95 from the question to the first token and to the "
              "verified answer. Questions refused before generation have no first token.", "",
              "| model | model load | retrieve + select | first token | total | refused before generation |",
              "|---|---|---|---|---|---|"]
    for r in s["models"]:
        lines.append(f"| {r['model']} | {r['load_s']:.1f} s | {sec(r['retrieve'])} | {sec(r['first_token'])} | "
                     f"{sec(r['total'])} | {r['refused_before_generation']} |")
    return lines
