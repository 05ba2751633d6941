"""The batch section: ``SentenceTransformer.encode`` rate by batch size on 400 HotpotQA passages."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from eval.bench_sections.measure import HOTPOT, load_note, log, median, passages, timed
from eval.common import SEEDS


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Raw encode rate by batch size on the HotpotQA passages (the seeds in a quick run).

    The sizes are timed in rounds, in reverse order every other round, so load drift does
    not favour the sizes that run first.
    """
    from rag.search.embedding import Embedder

    model = Embedder().model
    texts = passages(SEEDS if args.quick else HOTPOT)[: args.batch_sample]
    model.encode(texts[:32], batch_size=32)  # warm up
    runs: dict[int, list[float]] = {b: [] for b in args.batch_sizes}
    for r in range(args.repeats):
        for batch in args.batch_sizes if r % 2 == 0 else list(reversed(args.batch_sizes)):
            runs[batch].append(timed(lambda: model.encode(texts, batch_size=batch, normalize_embeddings=True))[0])
            log(f"encode batch {batch}: {len(texts) / runs[batch][-1]:.1f} chunks/s")
    sweep = [{"batch_size": b, "chunks": len(texts), "chunks_per_s": len(texts) / median(rs), "runs": len(rs)}
             for b, rs in runs.items()]
    return {"batch_sizes": sweep}


def render(s: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    lines += [f"## Embedding batch size ({load_note(s)})", "",
              f"`SentenceTransformer.encode` alone on {s['batch_sizes'][0]['chunks']} HotpotQA passages, "
              f"median of {s['batch_sizes'][0]['runs']} runs per size, sizes interleaved: "
              + ", ".join(f"{r['batch_size']}: {r['chunks_per_s']:.1f}" for r in s["batch_sizes"]) + " chunks/s."]
    return lines
