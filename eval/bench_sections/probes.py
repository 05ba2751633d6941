"""The probes section: what the probe verifier costs an answer (rag/answer/verifier-probe.json)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from eval.bench_sections.measure import load_note, log, median, sec, seeds_index, summary
from eval.common import SEEDS_GOLD, read_jsonl


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """What the probe verifier costs an answer (rag/answer/verifier-probe.json): the seeds questions
    answered by qwen-1.5b keeping the hidden states its probes read, and by the same model
    without them (the verifier without probes), one after the other for each question, the
    order alternating; the raw answers must be the same."""
    from rag.answer.assistant import Assistant
    from rag.answer.verifier import probe_layers
    from rag.generate.base import GenerationSettings
    from rag.generate.registry import load_generator
    from rag.search.index import Index

    index = Index.open(seeds_index(work), create=False)
    layers = probe_layers("qwen-1.5b", index.settings.embedder)
    if not layers:
        return {"note": "no probe verifier applies (rag/answer/verifier-probe.json)"}
    gold = read_jsonl(SEEDS_GOLD)[: args.questions]
    settings = GenerationSettings(threads=args.threads)
    sides = {"probes": Assistant(index, model="qwen-1.5b", settings=settings),
             "plain": Assistant(index, generator=load_generator("qwen-1.5b", settings))}
    for assistant in sides.values():
        assistant.ask(gold[0]["question"])  # warm: the fixed prefix in each model's cache
    times: dict[str, list[float]] = {name: [] for name in sides}
    raw: dict[str, list[str]] = {name: [] for name in sides}
    scorers: list[str] = []
    for i, q in enumerate(gold):
        for name in (list(sides) if i % 2 == 0 else list(sides)[::-1]):
            answer = sides[name].ask(q["question"])
            if answer.timings.first_token_s is None:
                continue
            times[name].append(answer.timings.total_s)
            raw[name].append(answer.raw)
            if name == "probes" and answer.trust is not None:
                scorers.append(answer.trust.scorer)
    paired = [a / b for a, b in zip(times["probes"], times["plain"])]
    out = {"layers": list(layers), "threads": args.threads, "questions": len(gold), "answers": len(paired),
           "probes": summary(times["probes"]), "plain": summary(times["plain"]),
           "ratio_p50": median(paired) if paired else None,
           "same_raw": sum(a == b for a, b in zip(raw["probes"], raw["plain"])),
           "scored_with_probes": scorers.count("probes")}
    log(f"probes: {out}")
    return out


def render(s: dict[str, Any]) -> list[str]:
    if not s.get("answers"):
        return []
    lines: list[str] = []
    lines += [f"## The probe verifier's cost ({load_note(s)})", "",
              f"The seeds questions ({s['answers']} answered of {s['questions']}), qwen-1.5b on {s['threads']} threads, "
              f"keeping the hidden states at layers {', '.join(map(str, s['layers']))} and scored by "
              "rag/answer/verifier-probe.json, against the same model without them; each question on both, order alternating.", "",
              "| | answer, s (p50 / p95) |", "|---|---|",
              f"| with the probes | {sec(s['probes'])} |", f"| without | {sec(s['plain'])} |", "",
              f"Median per-question ratio {s['ratio_p50']:.3f}; the same raw answer on both sides for "
              f"{s['same_raw']} of {s['answers']}; {s['scored_with_probes']} answers scored with the probes."]
    return lines
