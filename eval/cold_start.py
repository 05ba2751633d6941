"""Where the seconds of a cold `rag ask` go: each stage of a fresh process, timed from its launch.

Runs `python -m eval.cold_start --child` as a new process (page cache warm: the model file was
read before) and prints, for the median of ``--runs`` launches, the seconds each stage took,
one stage after the other ("serial", as `rag ask` ran before) and with the model loading in a
thread while the question is searched ("overlapped", `Assistant.load_in_background`, what
`rag ask` does); then a warm answer to another question in the same process for comparison:

    .venv/bin/python -m eval.cold_start --runs 3

Writes ``eval/results/cold_start.json`` and ``cold_start.md`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from eval.common import ROOT

QUESTION = "When did Bernard Quintin visit Doha?"
WARM_QUESTION = "Who directs the Centre for Cybersecurity Belgium?"
STAGES = (
    ("interpreter", "Python starts"),
    ("imports", "import rag.cli, rag.answer.assistant (torch, sentence-transformers, llama_cpp)"),
    ("index_open", "Index.open: manifest, chunk table, FAISS, BM25"),
    ("retrieve", "first search: embedder load, query embedding, fusion"),
    ("select", "sentence selection (embeds the candidate sentences)"),
    ("model_load", "llama.cpp maps the GGUF (overlapped: waiting for the model after the search)"),
    ("prefix", "the fixed prompt prefix evaluated once (the cache later answers reuse; overlapped: 0)"),
    ("first_token", "the question's own prompt tokens, to the first answer token"),
    ("rest", "the rest of the answer and its checks"),
)


def child(index_dir: Path, overlap: bool) -> None:
    started = time.time()
    marks = {"start": started}
    from rag.answer.assistant import Assistant  # noqa: F401 - what `rag ask` imports first
    from rag.answer.prompting import SOURCES_HEADER, fixed_prefix
    from rag.cli import main  # noqa: F401
    from rag.generate.registry import load_generator

    marks["imports"] = time.time()
    assistant = Assistant.open(index_dir)
    if overlap:
        assistant.load_in_background()
    marks["index_open"] = time.time()
    hits = assistant.retrieve(QUESTION)
    marks["retrieve"] = time.time()
    prompt = assistant.prompt(QUESTION, hits)
    marks["select"] = time.time()
    if overlap:
        generator = assistant.load()
        marks["model_load"] = marks["prefix"] = time.time()
    else:
        generator = load_generator(assistant.model, assistant.settings)
        marks["model_load"] = time.time()
        for _ in generator.stream([*fixed_prefix(), {"role": "user", "content": SOURCES_HEADER}], max_tokens=1):
            pass
        marks["prefix"] = time.time()
        assistant.generator = generator
    for _ in generator.stream(list(prompt.messages), max_tokens=1):
        marks.setdefault("first_token", time.time())
    marks.setdefault("first_token", time.time())
    stats = generator.stats
    answer = assistant.ask(QUESTION)  # the whole answer with its checks; the cache is warm now
    marks["rest"] = time.time()
    warm = assistant.ask(WARM_QUESTION)
    print(json.dumps({"marks": marks, "prefix_tokens": stats.cached_tokens if stats else None,
                      "question_tokens": stats.prompt_tokens - stats.cached_tokens if stats else None,
                      "warm_first_token_s": warm.timings.first_token_s, "warm_total_s": warm.timings.total_s,
                      "answer": answer.text}))


def launch(index_dir: Path, overlap: bool) -> dict:
    """One fresh process: its stages (seconds, from launch) and its warm answer."""
    launched = time.time()
    cmd = [sys.executable, "-m", "eval.cold_start", "--child", "--index-dir", str(index_dir)] + (["--overlap"] if overlap else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    result = json.loads(out.strip().splitlines()[-1])
    marks = result["marks"]
    previous, stages = launched, {}
    for name, _ in STAGES:
        key = "start" if name == "interpreter" else name
        stages[name] = marks[key] - previous
        previous = marks[key]
    return {**result, "stages": stages, "launch_to_first_token_s": marks["first_token"] - launched}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--index-dir", type=Path, default=ROOT / ".rag" / "index")
    parser.add_argument("--out", type=Path, default=ROOT / "eval" / "results")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--overlap", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.index_dir, args.overlap)
        return
    runs: dict[str, list[dict]] = {"serial": [], "overlapped": []}
    for i in range(args.runs):  # interleaved, so both modes see the same machine
        for mode in runs:
            runs[mode].append(launch(args.index_dir, mode == "overlapped"))
            print(f"{mode} {i + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in runs[mode][-1]["stages"].items()), flush=True)
    med = {mode: {name: statistics.median(r["stages"][name] for r in rs) for name, _ in STAGES} for mode, rs in runs.items()}
    first = {mode: statistics.median(r["launch_to_first_token_s"] for r in rs) for mode, rs in runs.items()}
    every = runs["serial"] + runs["overlapped"]
    warm_first = statistics.median(r["warm_first_token_s"] for r in every)
    model_load = med["serial"]["model_load"] + med["serial"]["prefix"]
    report = {"question": QUESTION, "warm_question": WARM_QUESTION, "load_average": os.getloadavg(), "runs": runs,
              "median_stages_s": med, "launch_to_first_token_s": first, "warm_first_token_s": warm_first,
              "model_load_s": model_load, "prefix_tokens": every[0]["prefix_tokens"],
              "cold_over_warm_plus_load": {m: round(first[m] / (warm_first + model_load), 2) for m in first}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cold_start.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    lines = ["# Cold start", "", f"`python -m eval.cold_start --runs {args.runs}`: a fresh process asks "
             f"\"{QUESTION}\"; median seconds of {args.runs} launches of each kind, interleaved, page cache warm.", "",
             "| stage | what | serial | overlapped |", "|---|---|---|---|"]
    lines += [f"| {name} | {what} | {med['serial'][name]:.2f} | {med['overlapped'][name]:.2f} |" for name, what in STAGES]
    lines += [f"| launch to first token | | {first['serial']:.2f} | {first['overlapped']:.2f} |",
              f"| ... / (warm first token + model load) | | {report['cold_over_warm_plus_load']['serial']} | "
              f"{report['cold_over_warm_plus_load']['overlapped']} |",
              "", f"Warm first token (\"{WARM_QUESTION}\", same process): {warm_first:.2f} s; model load (map + "
              f"prefix, serial): {model_load:.2f} s; prefix tokens cached: {report['prefix_tokens']}, the question's "
              f"own prompt tokens: {every[0]['question_tokens']}."]
    (args.out / "cold_start.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
