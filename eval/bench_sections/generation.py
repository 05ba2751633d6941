"""The generation section: prefill and decode tokens per second through ``LlamaCppGenerator.stream``
against ``llama_cpp.Llama.generate`` on the same token ids (same model, n_ctx, n_batch, threads),
with the KV cache reset before every run on both sides."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from eval.bench_sections.measure import load_note, log, median, ratio, seeds_index
from eval.common import SEEDS_GOLD, read_jsonl


def _chat_prompt_tokens(llm: Any, messages: list[dict[str, str]]) -> list[int]:
    """The token ids ``create_chat_completion`` evaluates for ``messages`` (the GGUF's chat template)."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llm.metadata["tokenizer.chat_template"]
    eos = llm._model.token_get_text(llm.token_eos())
    bos = llm._model.token_get_text(llm.token_bos()) if llm.token_bos() >= 0 else ""
    formatted = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)(messages=messages)
    return llm.tokenize(formatted.prompt.encode("utf-8"), add_bos=not formatted.added_special, special=True)


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from llama_cpp import Llama

    from rag.answer.assistant import Assistant
    from rag.core.bundled import gguf_path
    from rag.generate.base import GenerationSettings, as_messages
    from rag.generate.llamacpp import LlamaCppGenerator
    from rag.generate.runtime import guard
    from rag.search.index import Index

    guard()  # the raw engine loads as the project loads it (rag/generate/runtime.py), or crashes on AMX CPUs
    assistant = Assistant(Index.open(seeds_index(work), create=False))
    gold = read_jsonl(SEEDS_GOLD)
    questions = [q["question"] for q in gold if q.get("answerable", True)][: args.prompts]
    prompts = [assistant.prompt(q, assistant.retrieve(q)).text for q in questions]
    settings = GenerationSettings(threads=args.threads, adapt_threads=False)  # as the raw engine
    out: dict[str, Any] = {"threads": args.threads, "context_size": settings.context_size, "n_batch": 512,
                           "max_tokens": args.gen_tokens, "prompts": len(prompts), "models": []}
    for name in args.models:
        path = gguf_path(name)
        project = LlamaCppGenerator(path, settings, name=name)
        raw = Llama(model_path=str(path), n_ctx=settings.context_size, n_threads=args.threads,
                    n_threads_batch=args.threads, n_batch=512, verbose=False)
        runs: dict[str, list[dict[str, float]]] = {"project": [], "raw": []}

        def run_project(messages: list[dict[str, str]]) -> dict[str, float]:
            project._llm.reset()  # no prefix reuse: both sides evaluate the whole prompt
            pieces, t_first = [], None
            t0 = time.perf_counter()
            for piece in project.stream(messages, max_tokens=args.gen_tokens):
                if t_first is None:
                    t_first = time.perf_counter()
                pieces.append(piece)
            t_end = time.perf_counter()
            generated = max(1, project._llm.n_tokens - len(prompt_ids) + 1)
            return {"prompt_tokens": len(prompt_ids), "generated": generated, "ttft": t_first - t0,
                    "decode_s": t_end - t_first, "text": "".join(pieces)}

        def run_raw(tokens: list[int], generated: int) -> dict[str, float]:
            raw.reset()
            count, t_first = 0, None
            t0 = time.perf_counter()
            for _ in raw.generate(tokens, temp=0.0, top_k=1, reset=True):
                count += 1
                if t_first is None:
                    t_first = time.perf_counter()
                if count >= generated:
                    break
            t_end = time.perf_counter()
            return {"prompt_tokens": len(tokens), "generated": count, "ttft": t_first - t0, "decode_s": t_end - t_first}

        for messages in (as_messages(prompts[0]),):  # warm both (page cache, first-call setup)
            prompt_ids = _chat_prompt_tokens(project._llm, messages)
            run_project(messages)
            run_raw(prompt_ids, 4)
        for r in range(args.repeats):
            for text in prompts:
                messages = as_messages(text)
                prompt_ids = _chat_prompt_tokens(raw, messages)
                if r % 2 == 0:
                    p = run_project(messages)
                    q = run_raw(prompt_ids, p["generated"])
                else:
                    # Raw first this time (so load drift does not favour one side), with the
                    # token count the project produced for this prompt in the previous pass.
                    known = [x["generated"] for x in runs["project"] if x.get("prompt") == text]
                    q = run_raw(prompt_ids, known[-1] if known else args.gen_tokens)
                    p = run_project(messages)
                p["prompt"] = text
                runs["project"].append(p)
                runs["raw"].append(q)
                log(f"{name}: prompt {p['prompt_tokens']} tok, project ttft {p['ttft']:.2f}s "
                    f"decode {p['generated']} tok {p['decode_s']:.2f}s | raw ttft {q['ttft']:.2f}s "
                    f"decode {q['generated']} tok {q['decode_s']:.2f}s")
        rates = {}
        for side, rs in runs.items():
            rates[side] = {
                "prefill_tok_per_s": median([x["prompt_tokens"] / x["ttft"] for x in rs]),
                "decode_tok_per_s": median([(x["generated"] - 1) / x["decode_s"] for x in rs if x["generated"] > 1]),
                "ttft_s": median([x["ttft"] for x in rs]),
                "prompt_tokens": median([x["prompt_tokens"] for x in rs]),
                "generated": median([x["generated"] for x in rs]),
                "runs": len(rs),
            }
        out["models"].append({
            "model": name, **rates,
            "prefill_ratio": ratio(rates["project"]["prefill_tok_per_s"], rates["raw"]["prefill_tok_per_s"]),
            "decode_ratio": ratio(rates["project"]["decode_tok_per_s"], rates["raw"]["decode_tok_per_s"]),
        })
        log(f"generation {name}: {out['models'][-1]}")
        del project, raw
    # Threads: the raw engine on one prompt with 1..cores threads (the smallest model, to keep it short).
    out["threads_sweep"] = []
    for threads in sorted({1, max(1, args.threads // 2), args.threads, os.cpu_count() or 1}):
        llm = Llama(model_path=str(gguf_path(args.models[0])), n_ctx=settings.context_size, n_threads=threads,
                    n_threads_batch=threads, n_batch=512, verbose=False)
        ids = _chat_prompt_tokens(llm, as_messages(prompts[0]))
        rs = []
        for _ in range(args.repeats):
            llm.reset()
            count, t_first, t0 = 0, None, time.perf_counter()
            for _ in llm.generate(ids, temp=0.0, top_k=1, reset=True):
                count += 1
                t_first = t_first or time.perf_counter()
                if count >= args.gen_tokens:
                    break
            rs.append((len(ids) / (t_first - t0), (count - 1) / max(1e-9, time.perf_counter() - t_first)))
        out["threads_sweep"].append({"model": args.models[0], "threads": threads,
                                     "prefill_tok_per_s": median([a for a, _ in rs]),
                                     "decode_tok_per_s": median([b for _, b in rs]), "runs": len(rs)})
        log(f"threads {threads}: {out['threads_sweep'][-1]}")
        del llm
    return out


def render(s: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    lines += [f"## Generation ({load_note(s)})", "",
              f"{s['prompts']} RAG prompts from the seeds gold questions, {s['threads']} threads, n_ctx "
              f"{s['context_size']}, n_batch {s['n_batch']}, greedy, up to {s['max_tokens']} new tokens; KV cache "
              "reset before every run. 'project' is `LlamaCppGenerator.stream` (chat template, streaming, "
              "detokenising); 'raw' is `Llama.generate` on the same token ids, stopped after as many tokens. "
              "Prefill = prompt tokens / time to first token.", "",
              "| model | prompt tokens | prefill project | prefill raw | ratio | decode project | decode raw | ratio | runs |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in s["models"]:
        p, q = r["project"], r["raw"]
        lines.append(f"| {r['model']} | {p['prompt_tokens']:.0f} | {p['prefill_tok_per_s']:.1f} tok/s | "
                     f"{q['prefill_tok_per_s']:.1f} tok/s | {r['prefill_ratio']} | {p['decode_tok_per_s']:.1f} tok/s | "
                     f"{q['decode_tok_per_s']:.1f} tok/s | {r['decode_ratio']} | {p['runs']} |")
    if s.get("threads_sweep"):
        lines += ["", "Threads (raw engine, " + s["threads_sweep"][0]["model"] + ", one prompt): "
                  + "; ".join(f"{r['threads']}: prefill {r['prefill_tok_per_s']:.0f}, decode {r['decode_tok_per_s']:.1f} tok/s"
                              for r in s["threads_sweep"]) + "."]
    return lines
