"""The ray section: passages per second through ``Index.add`` on the HotpotQA corpus embedded in
this process against embedded by a local Ray on the same machine (``rag index --ray``:
rag/search/ray_embedding.py), for each split of the cores into worker processes x threads; Ray's
start is timed apart, the workers' model loading is inside the figure (each add starts them)."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from eval.bench_sections.measure import HOTPOT, load_note, log, median, passages, ratio, timed
from eval.common import SEEDS


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Index the HotpotQA corpus (the seeds in a quick run) into new indexes, embedding here and
    on a local Ray, alternating the order each repeat; chunks per second, medians."""
    try:
        import ray
    except ImportError:
        return {"note": "Ray is not installed (pip install '.[ray]')"}
    from rag.search.embedding import MINILM_NAME as DEFAULT_EMBEDDER
    from rag.search.embedding import Embedder
    from rag.search.index import Index
    from rag.search.ray_embedding import RayEmbedder

    path = SEEDS if args.quick else HOTPOT
    cores = os.cpu_count() or 1
    started = time.perf_counter()
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False, configure_logging=False)
    out: dict[str, Any] = {"corpus": path.name, "cores": cores, "ray_init_s": time.perf_counter() - started, "runs": []}
    local = Embedder()
    local.embed(["warm up the model"])

    def add(embedder: Any) -> tuple[float, int]:
        folder = Path(tempfile.mkdtemp(dir=work))
        index = Index.open(folder / "ix")
        index.embed_on(embedder)
        seconds, report = timed(lambda: index.add([path]))
        shutil.rmtree(folder)
        return seconds, report.chunks

    splits = sorted({(cores, 1), (1, cores)})
    try:
        for workers, threads in splits:
            remote = RayEmbedder(DEFAULT_EMBEDDER, workers=workers, threads=threads)
            here_s, ray_s = [], []
            for r in range(args.repeats):
                first, second = (local, remote) if r % 2 == 0 else (remote, local)
                for embedder in (first, second):
                    seconds, chunks = add(embedder)
                    (here_s if embedder is local else ray_s).append(seconds)
            row = {"workers": workers, "threads": threads, "chunks": chunks, "here_chunks_per_s": chunks / median(here_s),
                   "ray_chunks_per_s": chunks / median(ray_s)}
            row["ratio"] = ratio(row["ray_chunks_per_s"], row["here_chunks_per_s"])
            if workers == cores:
                # The workers' start (a process, torch, the model: fixed) against the passages'
                # flow: the same passages four times over, embedded only, once each side.
                texts = passages(path) * 4
                here_embed, _ = timed(lambda: local.embed(texts))
                ray_embed, _ = timed(lambda: remote.embed(texts))
                row.update(embed_passages=len(texts), here_embed_per_s=len(texts) / here_embed,
                           ray_embed_per_s=len(texts) / ray_embed, embed_ratio=ratio(here_embed, ray_embed))
            out["runs"].append(row)
            log(f"ray: {row}")
    finally:
        ray.shutdown()
    return out


def render(s: dict[str, Any]) -> list[str]:
    if not s.get("runs"):
        return []
    lines: list[str] = []
    lines += [f"## Embedding on a local Ray ({load_note(s)})", "",
              f"`Index.add` of {s['corpus']} into a new index, {s['cores']} cores; Ray started in "
              f"{s['ray_init_s']:.1f} s (not counted); the workers load the embedder inside each add.", "",
              "| workers x threads | chunks | this process | Ray | ratio |", "|---|---|---|---|---|"]
    for r in s["runs"]:
        lines.append(f"| {r['workers']} x {r['threads']} | {r['chunks']} | {r['here_chunks_per_s']:.1f}/s | "
                     f"{r['ray_chunks_per_s']:.1f}/s | {r['ratio']} |")
    for r in s["runs"]:
        if "embed_passages" in r:
            lines.append(f"| {r['workers']} x {r['threads']}, embedding only | {r['embed_passages']} | "
                         f"{r['here_embed_per_s']:.1f}/s | {r['ray_embed_per_s']:.1f}/s | {r['embed_ratio']} |")
    return lines
