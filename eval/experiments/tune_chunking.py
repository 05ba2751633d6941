"""Decided: chunks of 120 words, 30 of overlap, embedded with their title (HotpotQA hit@1 0.90, 0.84 without).

Measure retrieval quality for several chunk sizes, overlaps and passage formats.

Writes ``eval/results/chunking.json`` and ``eval/results/chunking.md``; the defaults in
``rag/ingest/chunking.py`` and its passage format (``passage_text``) were chosen from this table.

    .venv/bin/python -m eval.experiments.tune_chunking

Metrics, per retrieval mode, over the answerable questions of each gold set:
hit@1 (the first chunk is from a gold document), hit@5 (a gold document among the
first five chunks) and, for HotpotQA where answers need two paragraphs, all@5 (both
gold documents among the first five chunks).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from eval.common import DEV_SETS, ROOT, read_jsonl
from rag.ingest.chunking import ChunkConfig
from rag.search.embedding import Embedder
from rag.search.index import Index

SETS = {name: DEV_SETS[name] for name in ("seeds", "hotpotqa")}  # (gold, corpus)
CONFIGS = [(60, 15), (90, 20), (100, 20), (120, 0), (120, 15), (120, 30), (160, 40), (200, 50)]
MODES = ("dense", "bm25", "hybrid")


class CachedEmbedder:
    """The real embedder, remembering vectors so repeated texts across configurations are free."""

    def __init__(self) -> None:
        self._inner = Embedder(progress=False)
        self.name, self.dim = self._inner.name, self._inner.dim
        self._cache: dict[str, np.ndarray] = {}

    def embed(self, texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            for text, vector in zip(missing, self._inner.embed(missing)):
                self._cache[text] = vector
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    embed_query = embed  # MiniLM embeds queries and documents alike


def evaluate(index: Index, gold: list[dict]) -> dict[str, dict[str, float]]:
    out = {}
    for mode in MODES:
        h1 = h5 = all5 = 0
        for q in gold:
            docs = [h.doc_id for h in index.search(q["question"], k=5, mode=mode)]
            sources = set(q["sources"])
            h1 += bool(docs) and docs[0] in sources
            h5 += bool(sources & set(docs))
            all5 += sources <= set(docs)
        n = len(gold)
        out[mode] = {"hit@1": h1 / n, "hit@5": h5 / n, "all@5": all5 / n}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "eval/results")
    args = parser.parse_args()
    embedder = CachedEmbedder()
    rows = []
    for set_name, (gold_file, corpus) in SETS.items():
        gold = [q for q in read_jsonl(gold_file) if q.get("answerable", True)]
        for title in (True, False):
            for size, overlap in CONFIGS:
                with tempfile.TemporaryDirectory() as tmp:
                    t0 = time.perf_counter()
                    index = Index.open(Path(tmp) / "ix", embedder=embedder, chunking=ChunkConfig(size, overlap),
                                       passage="title" if title else "text")
                    index.add([corpus])
                    build_s = time.perf_counter() - t0
                    metrics = evaluate(index, gold)
                row = {"set": set_name, "title": title, "size": size, "overlap": overlap,
                       "chunks": len(index), "build_s": round(build_s, 2), "metrics": metrics}
                rows.append(row)
                m = metrics["hybrid"]
                print(f"{set_name:8} title={title!s:5} size={size:3} overlap={overlap:2} chunks={len(index):4} "
                      f"hybrid hit@1={m['hit@1']:.3f} hit@5={m['hit@5']:.3f} all@5={m['all@5']:.3f}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "chunking.json").write_text(json.dumps(rows, indent=1))
    lines = ["| set | title | size/overlap | chunks | " + " | ".join(f"{m} h@1 / h@5 / all@5" for m in MODES) + " |",
             "|---|---|---|---|" + "---|" * len(MODES)]
    for r in rows:
        cells = [" / ".join(f"{r['metrics'][m][k]:.2f}" for k in ("hit@1", "hit@5", "all@5")) for m in MODES]
        lines.append(f"| {r['set']} | {'yes' if r['title'] else 'no'} | {r['size']}/{r['overlap']} | {r['chunks']} | "
                     + " | ".join(cells) + " |")
    (args.out / "chunking.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out / 'chunking.md'}")


if __name__ == "__main__":
    main()
