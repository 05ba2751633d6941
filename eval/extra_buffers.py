"""What llama.cpp's extra buffer types (AMX, CPU_REPACK weight repacking) are worth on this machine.

Each setting runs in a fresh process (``RAG_LLAMA_EXTRA_BUFFERS=0`` or ``1``, see
rag/generate/runtime.py): the bundled model loads through ``LlamaCppGenerator`` (as the product loads
it), then answers the same RAG prompts with the KV cache reset before each, so every run
evaluates the whole prompt. Prefill = prompt tokens / time to the first token; decode =
further tokens / the time after it. The two settings alternate, run after run, so a change in
the machine's load falls on both. A setting that crashes the process is reported as such
(on a CPU with AMX and a native build, "on" crashes: ggml-org/llama.cpp issue 20824).

    .venv/bin/python -m eval.extra_buffers                 # writes eval/results/extra_buffers.{json,md}
    PYTHONPATH=/tmp/noamx .venv/bin/python -m eval.extra_buffers --out eval/results/extra_buffers_noamx
        # the same with another build of llama-cpp-python on the path (e.g. one built without AMX)
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
from typing import Any

from eval.common import ROOT, SEEDS, cpu_name

# One process: load, then time each prompt; prints one JSON line per run.
CHILD = """
import json, sys, time
from pathlib import Path
from rag.generate.base import GenerationSettings
from rag.generate.llamacpp import LlamaCppGenerator
from rag.core.bundled import gguf_path
import llama_cpp
model, threads, tokens, prompts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
started = time.perf_counter()
gen = LlamaCppGenerator(gguf_path(model), GenerationSettings(threads=threads, adapt_threads=False), name=model)
print(json.dumps({"load_s": time.perf_counter() - started, "extra_buffers": gen._llm.model_params.use_extra_bufts,
                  "llama_cpp": llama_cpp.__file__, "system_info": llama_cpp.llama_print_system_info().decode()}), flush=True)
for prompt in prompts:
    gen._llm.reset()
    t0 = time.perf_counter(); first = None; count = 0
    for piece in gen.stream([{"role": "user", "content": prompt}], max_tokens=tokens):
        count += 1
        first = first or time.perf_counter()
    end = time.perf_counter()
    n = gen.stats.prompt_tokens; generated = len(gen.stats.token_logprobs)
    print(json.dumps({"prompt_tokens": n, "generated": generated, "prefill_tok_s": n / (first - t0),
                      "decode_tok_s": (generated - 1) / (end - first) if generated > 1 else None}), flush=True)
"""


def prompts(count: int, words: int) -> list[str]:
    """RAG-like prompts: a question over ``words`` words of each seed article."""
    texts = sorted(SEEDS.glob("*.txt"))
    out = []
    for path in texts[:count]:
        body = " ".join(path.read_text(encoding="utf-8").split()[:words])
        out.append(f"Answer from the source and cite it like [1].\n\n[1] {body}\n\nQuestion: What happened, and when?")
    return out


def run(setting: str, args: argparse.Namespace, texts: list[str]) -> dict[str, Any]:
    env = {**os.environ, "RAG_LLAMA_EXTRA_BUFFERS": "1" if setting == "on" else "0"}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, args.model, str(args.threads), str(args.tokens), json.dumps(texts)],
        capture_output=True, text=True, env=env, cwd=ROOT,
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0:
        signal = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit code {proc.returncode}"
        return {"setting": setting, "crashed": signal, "runs": lines[1:], "info": lines[:1]}
    return {"setting": setting, "info": lines[0], "runs": lines[1:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="qwen-1.5b")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--tokens", type=int, default=48, help="tokens generated per prompt")
    parser.add_argument("--prompts", type=int, default=3)
    parser.add_argument("--words", type=int, default=250, help="source words per prompt")
    parser.add_argument("--rounds", type=int, default=3, help="processes per setting, alternating")
    parser.add_argument("--out", type=Path, default=ROOT / "eval" / "results" / "extra_buffers")
    args = parser.parse_args()
    texts = prompts(args.prompts, args.words)
    results: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    for round_ in range(args.rounds):
        for setting in ("off", "on") if round_ % 2 == 0 else ("on", "off"):
            result = run(setting, args, texts)
            results[setting].append(result)
            print(f"round {round_ + 1} {setting}: {result.get('crashed') or 'ok'}", file=sys.stderr)
    cpu = cpu_name()
    summary: dict[str, Any] = {"cpu": cpu, "model": args.model, "threads": args.threads, "tokens": args.tokens,
                               "load_average_after": os.getloadavg()[0], "date": time.strftime("%Y-%m-%d %H:%M"),
                               "settings": {}}
    for setting, runs in results.items():
        crashed = [r["crashed"] for r in runs if "crashed" in r]
        done = [x for r in runs if "crashed" not in r for x in r["runs"]]
        info = next((r["info"] for r in runs if "crashed" not in r), {})
        summary["settings"][setting] = {
            "processes": len(runs), "crashed": crashed,
            "prefill_tok_s": statistics.median(x["prefill_tok_s"] for x in done) if done else None,
            "decode_tok_s": statistics.median(x["decode_tok_s"] for x in done if x["decode_tok_s"]) if done else None,
            "prompt_tokens": statistics.median(x["prompt_tokens"] for x in done) if done else None,
            "load_s": statistics.median(r["info"]["load_s"] for r in runs if "crashed" not in r) if done else None,
            "system_info": info.get("system_info", ""), "llama_cpp": info.get("llama_cpp", ""),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    rows = ["| extra buffer types | processes | crashed | prompt tokens | prefill tok/s | decode tok/s | load s |",
            "|---|---|---|---|---|---|---|"]

    def fmt(value: Any) -> str:
        return "-" if value is None else f"{value:.1f}" if isinstance(value, float) else str(value)

    for setting, s in summary["settings"].items():
        rows.append(f"| {setting} | {s['processes']} | {', '.join(s['crashed']) or 'none'} | {fmt(s['prompt_tokens'])} | "
                    f"{fmt(s['prefill_tok_s'])} | {fmt(s['decode_tok_s'])} | {fmt(s['load_s'])} |")
    off, on = summary["settings"]["off"], summary["settings"]["on"]
    ratio = ""
    if off["prefill_tok_s"] and on["prefill_tok_s"]:
        ratio = (f"\nOn against off: prefill x{on['prefill_tok_s'] / off['prefill_tok_s']:.2f}, "
                 f"decode x{on['decode_tok_s'] / off['decode_tok_s']:.2f}.\n")
    info = off["system_info"] or on["system_info"]
    args.out.with_suffix(".md").write_text(
        f"# llama.cpp extra buffer types on and off\n\nCommand: `{' '.join(['python', '-m', 'eval.extra_buffers', *sys.argv[1:]])}` ({summary['date']}, "
        f"CPU {cpu}, model {args.model}, {args.threads} threads, {args.prompts} prompts x {args.rounds} processes per "
        f"setting, {args.tokens} tokens each; load average after {summary['load_average_after']:.2f}).\n"
        f"llama.cpp: `{off['llama_cpp'] or on['llama_cpp']}`; {info.strip()}\n\n" + "\n".join(rows) + "\n" + ratio
    )
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
