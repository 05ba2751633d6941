"""The indexing section: chunks per second through ``Index.add`` (what ``rag index`` runs) against
``SentenceTransformer.encode`` alone on the same passage texts with the same batch size, on the
seeds and HotpotQA; the ``rag index`` command's wall time; and the pipeline's non-embedding cost
(load, chunk, hash, FAISS, BM25, write) on synthetic corpora up to 100k chunks with a free
synthetic embedder, plus open time and memory per chunk."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eval.bench_sections.measure import (
    HOTPOT,
    TimedEmbedder,
    dir_bytes,
    load_note,
    log,
    median,
    passages,
    ratio,
    rss_bytes,
    timed,
)
from eval.bench_sections.synthetic import SyntheticEmbedder, synthetic_documents
from eval.common import ROOT, SEEDS


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from rag.search.embedding import DEFAULT_BATCH_SIZE, Embedder
    from rag.search.index import Index

    out: dict[str, Any] = {"batch_size": DEFAULT_BATCH_SIZE, "corpora": [], "synthetic": []}
    embedder = Embedder()  # what `rag index` uses, loaded once so both sides exclude model loading
    model = embedder.model
    model.encode(["warm up the model"] * 8, batch_size=DEFAULT_BATCH_SIZE)
    corpora = [("seeds", SEEDS)] + ([] if args.quick else [("hotpotqa", HOTPOT)])
    for name, path in corpora:
        texts = passages(path)
        raw_s, pipe_s, embed_s = [], [], []
        for r in range(args.repeats):
            def raw() -> Any:
                return model.encode(texts, batch_size=DEFAULT_BATCH_SIZE, normalize_embeddings=True, convert_to_numpy=True)

            def pipeline() -> Any:
                folder = Path(tempfile.mkdtemp(dir=work))
                timer = TimedEmbedder(embedder)
                seconds, report = timed(lambda: Index.open(folder / "ix", embedder=timer).add([path]))
                shutil.rmtree(folder)
                assert report.chunks == len(texts), (report.chunks, len(texts))
                return seconds, timer.seconds

            # Alternate the order so a load spike from other jobs does not always hit one side.
            if r % 2:
                p, e = pipeline()
                raw_s.append(timed(raw)[0])
            else:
                raw_s.append(timed(raw)[0])
                p, e = pipeline()
            pipe_s.append(p)
            embed_s.append(e)
            log(f"indexing {name}: raw {raw_s[-1]:.2f}s pipeline {p:.2f}s (embed {e:.2f}s)")
        n = len(texts)
        row = {
            "corpus": name, "chunks": n, "repeats": args.repeats,
            "raw_encode_s": median(raw_s), "pipeline_s": median(pipe_s), "pipeline_embed_s": median(embed_s),
            "raw_chunks_per_s": n / median(raw_s), "pipeline_chunks_per_s": n / median(pipe_s),
            "overhead_s": median([p - e for p, e in zip(pipe_s, embed_s)]),
        }
        row["ratio"] = ratio(row["pipeline_chunks_per_s"], row["raw_chunks_per_s"])
        # The command as a user runs it: interpreter start, imports and model loading included.
        folder = Path(tempfile.mkdtemp(dir=work))
        cli_s, _ = timed(lambda: subprocess.run(
            [str(ROOT / ".venv/bin/rag"), "index", str(path), "--index-dir", str(folder / "ix"), "--quiet"],
            check=True, capture_output=True,
        ))
        shutil.rmtree(folder)
        row["cli_wall_s"] = cli_s
        out["corpora"].append(row)
        log(f"indexing {name}: {row}")

    rates = [c["raw_chunks_per_s"] for c in out["corpora"] if c["corpus"] == "hotpotqa"] or [
        c["raw_chunks_per_s"] for c in out["corpora"]
    ]
    out["synthetic"] = pipeline_at_scale(args.pipeline_sizes, args.repeats, work, rates[0] if rates else None)
    return out


def pipeline_at_scale(sizes: Sequence[int], repeats: int, work: Path, encode_rate: float | None) -> list[dict[str, Any]]:
    """The index pipeline's own cost (load, chunk, hash, FAISS, BM25, write) with a free embedder.

    ``encode_rate`` (chunks/s of the real model alone) extrapolates what the real model would add.
    """
    from rag.search.index import Index
    from rag.stores.dense import resolve_kind

    rows = []
    for n in sizes:
        docs = synthetic_documents(n, seed=n)
        folder = Path(tempfile.mkdtemp(dir=work))
        fake = SyntheticEmbedder(seed=n)
        index = Index.open(folder / "ix", embedder=fake)
        rss0 = rss_bytes()
        add_s, report = timed(lambda: index.add_documents(docs))
        chunks = report.chunks
        del index
        gen = next(p for p in (folder / "ix").iterdir() if p.name.startswith("gen-"))
        files = {p.name: dir_bytes(p) for p in gen.iterdir()}
        opens, rss = [], []
        for _ in range(repeats):
            before = rss_bytes()
            seconds, opened = timed(lambda: Index.open(folder / "ix", embedder=fake, create=False))
            rss.append(rss_bytes() - before)
            opens.append(seconds)
            del opened
        row = {
            "chunks": chunks, "documents": len(docs), "dense_kind": resolve_kind("auto", chunks),
            "add_s": add_s, "synthetic_embed_s": fake.seconds, "overhead_s": add_s - fake.seconds,
            "overhead_chunks_per_s": chunks / max(1e-9, add_s - fake.seconds),
            "open_s": median(opens), "open_rss_bytes_per_chunk": median(rss) / chunks,
            "disk_bytes_per_chunk": sum(files.values()) / chunks,
            "disk_bytes_per_chunk_by_file": {k: round(v / chunks, 1) for k, v in sorted(files.items())},
            "add_rss_delta_bytes": rss_bytes() - rss0,
        }
        if encode_rate:
            encode = chunks / encode_rate
            row["extrapolated_real_s"] = encode + row["overhead_s"]
            row["extrapolated_ratio"] = round(encode / row["extrapolated_real_s"], 3)
        shutil.rmtree(folder)
        rows.append(row)
        log(f"pipeline synthetic {n}: {row}")
    return rows


def render(s: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    lines += [f"## Indexing ({load_note(s)}; {s['corpora'][0]['repeats'] if s['corpora'] else '?'} runs, median)", "",
              f"`Index.add` (load, clean, chunk, embed, FAISS, BM25, atomic write) against "
              f"`SentenceTransformer.encode` alone on the same passage texts, batch size {s['batch_size']}, "
              "model loaded beforehand on both sides.", "",
              "| corpus | chunks | encode alone | through the pipeline | ratio | pipeline overhead | `rag index` wall (cold process) |",
              "|---|---|---|---|---|---|---|"]
    for r in s["corpora"]:
        lines.append(f"| {r['corpus']} | {r['chunks']} | {r['raw_chunks_per_s']:.1f} chunks/s | "
                     f"{r['pipeline_chunks_per_s']:.1f} chunks/s | {r['ratio']:.2f} | {r['overhead_s']:.2f} s | "
                     + (f"{r['cli_wall_s']:.1f} s |" if r.get("cli_wall_s") == r.get("cli_wall_s") else "- |"))
    if s["synthetic"]:
        lines += ["", "Synthetic corpora (330-word documents, 4 chunks each) through `Index.add_documents` with a "
                  "free synthetic embedder: the pipeline's own cost; 'with the real model' adds the encode "
                  "time at HotpotQA's measured rate (extrapolated, not run).", "",
                  "| chunks | dense index | non-embedding time | non-embedding chunks/s | with the real model (extrapolated) | ratio (extrapolated) | open | disk per chunk | RSS per chunk after open |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in s["synthetic"]:
            lines.append(
                f"| {r['chunks']:,} | {r['dense_kind']} | {r['overhead_s']:.2f} s | {r['overhead_chunks_per_s']:,.0f} | "
                + (f"{r['extrapolated_real_s']:.0f} s | " if "extrapolated_real_s" in r else "- | ")
                + f"{r.get('extrapolated_ratio', '-')} | {r['open_s']:.2f} s | "
                f"{r['disk_bytes_per_chunk']:,.0f} B | {r['open_rss_bytes_per_chunk']:,.0f} B |")
        big = s["synthetic"][-1]
        lines += ["", f"Disk bytes per chunk by file at {big['chunks']:,} chunks: "
                  + ", ".join(f"{k} {v:,.0f}" for k, v in big["disk_bytes_per_chunk_by_file"].items()) + "."]
    return lines
