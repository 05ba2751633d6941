"""The contention section ("Busy machine" in bench.md): the same end-to-end answers idle and with
one and two busy-loop processes beside them (started by the benchmark, each bounded in time and
stopped after its run), for the thread variants of ``--contention-threads`` (threads/batch
threads: decode/prefill)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from eval.bench_sections.measure import Busy, load_note, log, ratio, sec, seeds_index, summary
from eval.common import SEEDS_GOLD, read_jsonl


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from rag.answer.assistant import Assistant
    from rag.generate.base import GenerationSettings
    from rag.search.index import Index

    gold = read_jsonl(SEEDS_GOLD)[: args.contention_questions]
    index = Index.open(seeds_index(work), create=False)
    model = args.models[-1]
    out: dict[str, Any] = {"model": model, "questions": len(gold), "busy": list(args.busy), "variants": []}
    for variant in args.contention_threads:
        if variant == "auto":  # the default: threads fitted to the free cores before each answer
            settings = GenerationSettings()
        else:
            threads, _, batch = variant.partition("/")
            settings = GenerationSettings(threads=int(threads), batch_threads=int(batch or threads), adapt_threads=False)
        assistant = Assistant(index, model=model, settings=settings)
        assistant.warm()
        rows = []
        for busy in args.busy:
            first, total, used = [], [], []
            with Busy(busy):
                for q in gold:
                    t = assistant.ask(q["question"]).timings
                    total.append(t.total_s)
                    used.append(getattr(assistant.generator, "threads", settings.threads))
                    if t.first_token_s is not None:
                        first.append(t.first_token_s)
            rows.append({"busy": busy, "first_token": summary(first) if first else None, "total": summary(total),
                         "threads_used": used})
            log(f"contention {variant} busy={busy}: {rows[-1]}")
        idle = next((r for r in rows if r["busy"] == 0), None)
        for r in rows:
            r["total_over_idle_p50"] = ratio(r["total"]["p50"], idle["total"]["p50"]) if idle else None
        out["variants"].append({"variant": variant, "threads": settings.threads, "batch_threads": settings.batch_threads,
                                "runs": rows})
        assistant.generator = None
    return out


def render(s: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    lines += [f"## Busy machine ({load_note(s)})", "",
              f"`Assistant.ask` ({s['model']}, judge on) on the first {s['questions']} seeds gold questions, idle "
              "and beside single-threaded busy-loop processes started by the benchmark; seconds p50 / p95; "
              "threads / batch threads are llama.cpp's n_threads (decode) / n_threads_batch (prefill). "
              + s.get("note", ""), "",
              "| threads / batch threads | busy processes | first token | total | total p50 / idle |",
              "|---|---|---|---|---|"]
    for v in s["variants"]:
        for r in v["runs"]:
            variant = v.get("variant") or f"{v['threads']}/{v['batch_threads']}"
            label = "auto (fitted per answer)" if variant == "auto" else variant.replace("/", " / ", 1)
            lines.append(f"| {label} | {r['busy']} | {sec(r['first_token'])} | "
                         f"{sec(r['total'])} | {r['total_over_idle_p50']} |")
    return lines
