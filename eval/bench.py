"""Performance benchmark: each stage against its raw engine, and how cost grows with the corpus.

Writes ``eval/results/bench.json`` and ``eval/results/bench.md``. Sections can be run
alone (``--only retrieval``); a later run updates only the sections it ran, so the file
always holds the latest figure of every section, each with the load average seen while
it ran.

    .venv/bin/python -m eval.bench                 # everything (about an hour on 2 cores; contention ~30 min)
    .venv/bin/python -m eval.bench --quick         # small sizes, a few questions: a smoke run
    .venv/bin/python -m eval.bench --only generation,e2e

What is measured (every figure is a median over repeated runs or a percentile over queries), one
module of ``eval/bench_sections/`` per section, whose docstring says more:

- indexing (``indexing.py``): chunks per second through ``Index.add`` against
  ``SentenceTransformer.encode`` alone, ``rag index``'s wall time, and the pipeline's own cost on
  synthetic corpora up to 100k chunks.
- batch (``batch.py``): ``SentenceTransformer.encode`` rate by batch size.
- embedders (``embedders.py``): each bundled embedder's load time, memory, passages per second
  against its raw engine, and query latency idle and beside a busy process.
- retrieval (``retrieval.py``): FAISS flat / HNSW / IVF and BM25 at 1k..1M synthetic chunks against
  the raw engines, recall@10, and ``Index.search`` latency per mode.
- stores (``stores.py``): the FAISS store beside Milvus Lite at 10k and 100k chunks.
- generation (``generation.py``): prefill and decode tokens per second through
  ``LlamaCppGenerator.stream`` against ``llama_cpp.Llama.generate`` on the same token ids.
- e2e (``e2e.py``): time to first token and total time of ``Assistant`` on the seeds gold questions.
- probes (``probes.py``): what the probe verifier costs an answer.
- contention (``contention.py``): the same answers idle and beside one and two busy-loop
  processes, for each thread variant of ``--contention-threads``.
- cold (``cold.py``): seconds from launching ``rag ask`` to the first byte of the answer.
- ray (``ray_cluster.py``): passages per second through ``Index.add`` embedded here against
  embedded by a local Ray (``rag index --ray``), for each split of the cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eval.bench_sections import (
    batch,
    cold,
    contention,
    e2e,
    embedders,
    generation,
    indexing,
    probes,
    ray_cluster,
    retrieval,
    stores,
)
from eval.bench_sections.measure import load_average, log
from eval.common import ROOT, cpu_name, git

# Each section's module, in the order a full run measures them.
SECTIONS = {"indexing": indexing, "batch": batch, "embedders": embedders, "retrieval": retrieval, "stores": stores,
            "generation": generation, "e2e": e2e, "probes": probes, "contention": contention, "cold": cold,
            "ray": ray_cluster}
# The order of their parts in bench.md.
REPORT = ("indexing", "batch", "retrieval", "generation", "e2e", "embedders", "stores", "contention", "cold", "probes", "ray")
MODELS = ("qwen-0.5b", "qwen-1.5b")


def render_markdown(results: dict[str, Any]) -> str:
    """The tables of ``bench.md`` from the ``bench.json`` structure (any subset of sections): a
    header on the machine, then each section's own part (its module's ``render``)."""
    m = results.get("machine", {})
    lines = ["# Performance benchmark", "",
             f"`eval/bench.py`; {m.get('cores', '?')} CPU cores, {m.get('cpu', '?')}, "
             f"{m.get('memory_gib', '?')} GiB, Python {m.get('python', '?')}; commit {m.get('git_head', '?')}"
             + (f" with uncommitted changes to {', '.join(m['modified_files'])}" if m.get("modified_files") else "")
             + ". Each section gives the load "
             "average (1 min) seen before and after it: other jobs shared the machine when it is above ~2."]
    for name in REPORT:
        part = SECTIONS[name].render(results[name]) if results.get(name) else []
        if part:
            lines += ["", *part]
    lines += ["", "How these figures set the defaults: [eval/README.md](../README.md#performance)."]
    return "\n".join(lines) + "\n"


def machine() -> dict[str, Any]:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30 if hasattr(os, "sysconf") else 0
    return {"cores": os.cpu_count(), "cpu": cpu_name(), "memory_gib": round(memory, 1), "python": platform.python_version(),
            "git_head": git("rev-parse", "--short", "HEAD"),
            # The prompt (and so prompt length and answer time) follows the working tree, not HEAD.
            "modified_files": git("diff", "--name-only", "HEAD").split()}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and few runs: a smoke test of every section")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections ({', '.join(SECTIONS)})")
    parser.add_argument("--out", type=Path, default=ROOT / "eval/results")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--bm25-max", type=int, default=None, help="largest corpus for BM25 and Index.search (default: all sizes)")
    parser.add_argument("--repeats", type=int, default=None, help="runs per timed figure (default 3; quick 2)")
    parser.add_argument("--batch-sizes", default=None, help="embedding batch sizes to compare, e.g. 16,32,64")
    parser.add_argument("--questions", type=int, default=None, help="end to end: only the first N seeds gold questions")
    parser.add_argument("--hnsw-max", type=int, default=None, help="largest corpus to build HNSW for (default: all sizes)")
    parser.add_argument("--contention-threads", default="auto,2/2,1/1,1/2,2/1",
                        help="busy machine: 'auto' (the default rule) and threads/batch threads variants, comma-separated")
    parser.add_argument("--busy", default="0,1,2", help="busy machine: busy-loop process counts, comma-separated")
    parser.add_argument("--contention-questions", type=int, default=None, help="busy machine: first N seeds questions")
    parser.add_argument("--embedders", default="minilm,e5-small-q4,embeddinggemma-300m",
                        help="embedders: the bundled embedders to measure, comma-separated")
    args = parser.parse_args(argv)
    overrides = {"bm25_max": args.bm25_max, "hnsw_max": args.hnsw_max, "questions": args.questions, "repeats": args.repeats,
                 "batch_sizes": [int(b) for b in args.batch_sizes.split(",")] if args.batch_sizes else None}
    args.sections = [s for s in args.only.split(",") if s]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    args.models = [m for m in args.models.split(",") if m]
    args.contention_threads = [v for v in args.contention_threads.split(",") if v]
    args.busy = [int(b) for b in args.busy.split(",") if b]
    args.embedders = [e for e in args.embedders.split(",") if e]
    args.query_embedding = True
    if args.quick:
        args.repeats, args.sizes, args.pipeline_sizes, args.queries = 2, [1000, 10_000], [1000], 50
        args.bm25_max, args.hnsw_max, args.prompts, args.gen_tokens = 10_000, 10_000, 1, 16
        args.questions, args.cold_runs, args.contention_questions = 3, 1, args.contention_questions or 2
        args.batch_sizes, args.batch_sample = [16, 32], 29
        args.embedder_passages, args.queries_per_embedder = 8, 5
        args.store_sizes, args.store_queries = [1000], 20
    else:
        args.repeats, args.sizes, args.pipeline_sizes, args.queries = 3, [1000, 10_000, 100_000, 1_000_000], [1000, 10_000, 100_000], 200
        args.bm25_max, args.hnsw_max, args.prompts, args.gen_tokens = 1_000_000, 1_000_000, 3, 64
        args.questions, args.cold_runs, args.contention_questions = 55, 3, args.contention_questions or 12
        args.batch_sizes, args.batch_sample = [8, 16, 32, 64, 128], 400
        args.embedder_passages, args.queries_per_embedder = 96, 40
        args.store_sizes, args.store_queries = [10_000, 100_000], 200
    for name, value in overrides.items():
        if value is not None:
            setattr(args, name, value)
    return args



def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    # A quick run goes to an ignored folder so it never overwrites or sits beside the real figures.
    json_file = (args.out / "bench-quick" if args.quick else args.out) / "bench.json"
    json_file.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(json_file.read_text()) if json_file.exists() else {}
    results["machine"] = machine()
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        work = Path(tmp)
        for name in args.sections:
            log(f"section {name}")
            before = load_average()
            t0 = time.perf_counter()
            section = SECTIONS[name].run(args, work)
            section.update(load_before=before, load_after=load_average(), seconds=round(time.perf_counter() - t0, 1),
                           finished=time.strftime("%Y-%m-%d %H:%M:%S"), quick=args.quick)
            results[name] = section
            json_file.write_text(json.dumps(results, indent=1, default=float))
            json_file.with_suffix(".md").write_text(render_markdown(results))
            log(f"section {name} done in {section['seconds']} s")
    print(f"wrote {json_file} and {json_file.with_suffix('.md')}")


if __name__ == "__main__":
    main()
